"""Start moto server with the project's extensions: python -m embedded_aws -H 127.0.0.1 -p 5000.

EMBEDDED_AWS_ENFORCE_IAM=1 enforces IAM (iam.py); EMBEDDED_AWS_CREDENTIALS_PORT serves role
credentials as ECS's container credentials endpoint does (credentials.py).

moto answers DescribeOrderableDBInstanceOptions only for Aurora and Neptune; the preflight asks it for
PostgreSQL to refuse an instance class or engine version the region does not offer, so the emulator
answers it from offerings.json, a sample of what RDS offers (read from the RDS user guide).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from moto.rds.models import RDSBackend
from moto.server import main

from embedded_aws import credentials, iam

OFFERINGS = json.loads((Path(__file__).with_name("offerings.json")).read_text())
_moto_orderable = RDSBackend.describe_orderable_db_instance_options


def describe_orderable_db_instance_options(self: RDSBackend, engine: str, engine_version: str) -> list[dict[str, Any]]:
    table = OFFERINGS["rds"].get(engine)
    if table is None:
        return _moto_orderable(self, engine, engine_version)
    return [
        {
            "Engine": engine,
            "EngineVersion": version,
            "DBInstanceClass": instance_class,
            "LicenseModel": "postgresql-license",
            "AvailabilityZones": [{"Name": f"{self.region_name}{zone}"} for zone in "abc"],
            "MultiAZCapable": True,
            "StorageType": "gp3",
            "SupportsStorageAutoscaling": True,
        }
        for version in table["versions"]
        if not engine_version or version == engine_version
        for instance_class in table["instance_classes"]
    ]


RDSBackend.describe_orderable_db_instance_options = describe_orderable_db_instance_options

if __name__ == "__main__":
    iam.enable_from_environment()
    credentials.start_from_environment()
    main()
