"""Service Quotas for Fargate vCPU and Elastic IPs, which moto 5.2 knows nothing of (it serves only `vpc`).

GetAWSDefaultServiceQuota answers AWS's defaults (AWS General Reference, "Amazon ECS endpoints and quotas":
Fargate On-Demand and Spot vCPU resource count 6 each; Amazon EC2 user guide: 5 Elastic IPs per Region).
GetServiceQuota answers the account's applied value where it has one, NoSuchResourceException otherwise, as
AWS does for a quota never adjusted. The emulator's account plays an established one, with the Fargate vCPU
quotas AWS raises accounts to as they are used (APPLIED); EMBEDDED_AWS_SERVICE_QUOTAS, JSON
{"<service>/<quota code>": value or null}, replaces them in the server's environment (null: none applied, so
the default counts), which is how a test makes a new or a small account.
"""

from __future__ import annotations

import json
import os
from typing import Any

from moto.servicequotas.exceptions import NoSuchResource
from moto.servicequotas.models import ServiceQuotasBackend
from moto.servicequotas.responses import ServiceQuotasResponse

DEFAULTS: dict[tuple[str, str], tuple[str, str, float]] = {
    ("fargate", "L-3032A538"): ("AWS Fargate", "Fargate On-Demand vCPU resource count", 6.0),
    ("fargate", "L-36FBB829"): ("AWS Fargate", "Fargate Spot vCPU resource count", 6.0),
    ("ec2", "L-0263D0A3"): ("Amazon Elastic Compute Cloud (Amazon EC2)", "EC2-VPC Elastic IPs", 5.0),
}
APPLIED: dict[tuple[str, str], float] = {("fargate", "L-3032A538"): 4000.0, ("fargate", "L-36FBB829"): 4000.0}
ENVIRONMENT = "EMBEDDED_AWS_SERVICE_QUOTAS"

_moto_get_service_quota = ServiceQuotasBackend.get_service_quota


def applied() -> dict[tuple[str, str], float | None]:
    values: dict[tuple[str, str], float | None] = dict(APPLIED)
    for key, value in json.loads(os.environ.get(ENVIRONMENT) or "{}").items():
        service, _, code = key.partition("/")
        values[(service, code)] = None if value is None else float(value)
    return values


def quota(backend: ServiceQuotasBackend, service: str, code: str, value: float) -> dict[str, Any]:
    service_name, name, _ = DEFAULTS[(service, code)]
    partition = "aws-cn" if backend.region_name.startswith("cn-") else "aws"
    return {
        "ServiceCode": service,
        "ServiceName": service_name,
        "QuotaArn": f"arn:{partition}:servicequotas:{backend.region_name}:{backend.account_id}:{service}/{code}",
        "QuotaCode": code,
        "QuotaName": name,
        "Value": value,
        "Unit": "None",
        "Adjustable": True,
        "GlobalQuota": False,
    }


def get_service_quota(self: ServiceQuotasBackend, service_code: str, quota_code: str) -> dict[str, Any]:
    if (service_code, quota_code) not in DEFAULTS:
        return _moto_get_service_quota(self, service_code, quota_code)
    value = applied().get((service_code, quota_code))
    if value is None:
        raise NoSuchResource
    return quota(self, service_code, quota_code, value)


def get_aws_default_service_quota(self: ServiceQuotasBackend, service_code: str, quota_code: str) -> dict[str, Any]:
    if (service_code, quota_code) not in DEFAULTS:
        return _moto_get_service_quota(self, service_code, quota_code)  # moto's vpc table holds defaults
    return quota(self, service_code, quota_code, DEFAULTS[(service_code, quota_code)][2])


def get_aws_default_service_quota_response(self: ServiceQuotasResponse) -> str:
    params = json.loads(self.body)
    answer = self.backend.get_aws_default_service_quota(str(params.get("ServiceCode")), str(params.get("QuotaCode")))
    return json.dumps({"Quota": answer})


def install() -> None:
    ServiceQuotasBackend.get_service_quota = get_service_quota
    ServiceQuotasBackend.get_aws_default_service_quota = get_aws_default_service_quota
    ServiceQuotasResponse.get_aws_default_service_quota = get_aws_default_service_quota_response
