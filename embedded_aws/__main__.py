"""Start moto server with the project's extensions: python -m embedded_aws -H 127.0.0.1 -p 5000.

EMBEDDED_AWS_ENFORCE_IAM=1 enforces IAM (iam.py); EMBEDDED_AWS_CREDENTIALS_PORT serves role
credentials as ECS's container credentials endpoint does (credentials.py); EMBEDDED_AWS_RUNTIME_DIR
starts the local ECS agent (agent.py), which runs every task and database the emulator holds.
Use launcher.py rather than this module directly: it sets these and stops what the agent started.

moto answers DescribeOrderableDBInstanceOptions only for Aurora and Neptune; the preflight asks it for
PostgreSQL to refuse an instance class or engine version the region does not offer, so the emulator
answers it from offerings.json, a sample of what RDS offers (read from the RDS user guide). As RDS does,
an instance created or modified with a major version only ("17") runs that major's default minor (here
the newest offered), which DescribeDBInstances reports.

ECR gets pull-through cache rules and GetDownloadUrlForLayer (registry.py); CodeBuild's StartBuild runs
the build (codebuild.py), in both modes. Service-linked roles get AWS's names, and ECS's first cluster with
capacity providers in an account without ECS's role fails as on a new account (service_linked_roles.py).
Service Quotas answers the Fargate vCPU and Elastic IP quotas the preflight reads (service_quotas.py).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
from pathlib import Path
from typing import Any

import moto.server
from moto.rds.models import DBInstance, RDSBackend

from embedded_aws import codebuild, credentials, iam, registry, service_linked_roles, service_quotas

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


def default_minor(engine: str, version: str) -> str:
    """The version RDS runs for `version`: a major alone becomes its default minor."""
    table = OFFERINGS["rds"].get(engine)
    if table is None or "." in str(version):
        return version
    minors = [v for v in table["versions"] if v.split(".")[0] == str(version)]
    return max(minors, key=lambda v: tuple(int(part) for part in v.split("."))) if minors else version


def _set_engine_version(self: DBInstance, value: str) -> None:
    self._engine_version = default_minor(self.engine, value) if value else value


DBInstance.engine_version = property(DBInstance.engine_version.fget, _set_engine_version)


_moto_modify_subnet_group = RDSBackend.modify_db_subnet_group


def modify_db_subnet_group(self: RDSBackend, subnet_name: str, description: str, subnets: list) -> Any:
    """ModifyDBSubnetGroup keeps the group (moto 5.2.5 pops it from its store and never puts it back)."""
    group = _moto_modify_subnet_group(self, subnet_name, description, subnets)
    self.subnet_groups[subnet_name] = group
    return group


RDSBackend.modify_db_subnet_group = modify_db_subnet_group


def server_port() -> int:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("-p", "--port", type=int, default=5000)
    return parser.parse_known_args(sys.argv[1:])[0].port


def start_agent() -> None:
    """The local ECS agent, when EMBEDDED_AWS_RUNTIME_DIR is set; SIGTERM/SIGINT stop its tasks first."""
    runtime_dir = os.environ.get("EMBEDDED_AWS_RUNTIME_DIR")
    if not runtime_dir:
        from embedded_aws import ecs_state  # noqa: PLC0415

        ecs_state.install_api_only()
        return
    from embedded_aws.agent import Agent, Settings  # noqa: PLC0415 - only with the runtime on

    port = server_port()
    agent = Agent(
        Settings(
            runtime_dir=Path(runtime_dir),
            endpoint_url=f"http://127.0.0.1:{port}",
            credentials_url=f"http://127.0.0.1:{os.environ['EMBEDDED_AWS_CREDENTIALS_PORT']}{credentials.PREFIX}",
            credentials_token=os.environ["EMBEDDED_AWS_CREDENTIALS_TOKEN"],
        )
    )
    agent.start()
    stopping = threading.Lock()

    def shutdown() -> None:
        agent.shutdown()
        os._exit(0)

    def stop(signum: int, _frame: Any) -> None:
        # The server keeps answering while the tasks stop (they may still call it: logs, credentials).
        if stopping.acquire(blocking=False):
            threading.Thread(target=shutdown, name="shutdown").start()

    moto.server.signal_handler = stop  # moto's main() installs it for SIGINT and SIGTERM


if __name__ == "__main__":
    iam.enable_from_environment()
    credentials.start_from_environment()
    registry.install()
    service_linked_roles.install()
    service_quotas.install()
    codebuild.install(f"http://127.0.0.1:{server_port()}")
    start_agent()
    moto.server.main()
