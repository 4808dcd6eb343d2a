#!/usr/bin/python
"""Refuse a stack the account's Fargate vCPU and Elastic IP quotas cannot hold, before anything is created."""

from __future__ import annotations

DOCUMENTATION = r"""
module: service_quota_checks
short_description: Refuse a stack whose worst case does not fit the account's Fargate and Elastic IP quotas
description:
  - Reads the Fargate On-Demand and Spot vCPU quotas (Service Quotas C(fargate) L-3032A538, L-36FBB829) and the
    EC2-VPC Elastic IP quota (C(ec2) L-0263D0A3) with GetServiceQuota, falling back to GetAWSDefaultServiceQuota
    when the account has no applied value.
  - Adds what the account already uses outside the stack (Fargate vCPU from the C(AWS/Usage) metric
    C(ResourceCount), less the stack's own running tasks; Elastic IPs from DescribeAddresses, less those tagged
    with the stack) to what the stack can need at most, and fails with one line per quota that cannot hold it.
  - Makes only read calls (check mode changes nothing either way).
options:
  stack_name:
    description: The stack name (its own tasks and addresses are not counted twice).
    type: str
    required: true
  cluster: {description: The stack's ECS cluster., type: str, required: true}
  needs:
    description: fargate_on_demand_vcpu, fargate_spot_vcpu, elastic_ips and detail (the stack_quota_needs filter).
    type: dict
    required: true
extends_documentation_fragment: [amazon.aws.common.modules, amazon.aws.region.modules, amazon.aws.boto3]
"""

EXAMPLES = r"""
- name: Refuse a stack the account's quotas cannot hold
  service_quota_checks:
    stack_name: airflow
    cluster: airflow
    needs: {fargate_on_demand_vcpu: 2.5, fargate_spot_vcpu: 8, elastic_ips: 1, detail: "..."}
"""

RETURN = r"""
quotas:
  description: Per quota, its value, where it came from (applied or default), the usage outside the stack and the need.
  type: dict
  returned: always
  sample: {fargate_on_demand_vcpu: {code: L-3032A538, value: 6, source: default, others: 0, need: 2.5}}
"""

import contextlib
import datetime
from typing import Any

with contextlib.suppress(ImportError):  # AnsibleAWSModule reports a missing botocore
    from botocore.exceptions import BotoCoreError, ClientError

from ansible.module_utils.aws_retry import jittered_backoff
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule

STACK_TAG = "airflow-ecs:stack"
# (key, service code, quota code, name, capacity provider / None, the variables that change the need)
QUOTAS = (
    ("fargate_on_demand_vcpu", "fargate", "L-3032A538", "Fargate On-Demand vCPU resource count", "FARGATE",
     "the services' airflow_nodes_*_cpu and _count, airflow_ecs_executor_cpu or airflow_ecs_executor_max_tasks"),
    ("fargate_spot_vcpu", "fargate", "L-36FBB829", "Fargate Spot vCPU resource count", "FARGATE_SPOT",
     "airflow_nodes_worker_cpu, airflow_nodes_worker_max_count or airflow_nodes_worker_capacity_provider"),
    ("elastic_ips", "ec2", "L-0263D0A3", "EC2-VPC Elastic IPs", None,
     "network_nat_per_az (false: one NAT for every AZ) or network_az_count"),
)  # fmt: skip
# The AWS/Usage metric of running Fargate vCPU (ECS developer guide, "AWS Fargate usage metrics").
USAGE_CLASS = {"FARGATE": "Standard/OnDemand", "FARGATE_SPOT": "Standard/Spot"}


def error_code(err: Exception) -> str:
    return err.response.get("Error", {}).get("Code", "") if isinstance(err, ClientError) else ""


class QuotaChecks:
    def __init__(self, module: AnsibleAWSModule) -> None:
        self.module = module
        self.params = module.params
        self._clients: dict[str, Any] = {}

    def client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = self.module.client(service, retry_decorator=jittered_backoff())
        return self._clients[service]

    def quota(self, service: str, code: str) -> tuple[float, str]:
        """The account's applied value, else AWS's default for it."""
        sq = self.client("service-quotas")
        try:
            answer = sq.get_service_quota(ServiceCode=service, QuotaCode=code, aws_retry=True)
            return float(answer["Quota"]["Value"]), "applied"
        except ClientError as err:
            if error_code(err) != "NoSuchResourceException":
                raise
        answer = sq.get_aws_default_service_quota(ServiceCode=service, QuotaCode=code, aws_retry=True)
        return float(answer["Quota"]["Value"]), "default"

    def fargate_usage(self) -> dict[str, float]:
        """The account's running Fargate vCPU per capacity provider: the latest minute of AWS/Usage ResourceCount."""
        end = datetime.datetime.now(datetime.UTC)
        queries = [
            {
                "Id": provider.lower(),
                "MetricStat": {
                    "Metric": {
                        "Namespace": "AWS/Usage",
                        "MetricName": "ResourceCount",
                        "Dimensions": [
                            {"Name": "Service", "Value": "Fargate"},
                            {"Name": "Type", "Value": "Resource"},
                            {"Name": "Resource", "Value": "vCPU"},
                            {"Name": "Class", "Value": usage_class},
                        ],
                    },
                    "Period": 60,
                    "Stat": "Maximum",
                },
            }
            for provider, usage_class in USAGE_CLASS.items()
        ]
        answer = self.client("cloudwatch").get_metric_data(
            MetricDataQueries=queries, StartTime=end - datetime.timedelta(minutes=15), EndTime=end,
            ScanBy="TimestampDescending", aws_retry=True,
        )  # fmt: skip
        found = {r["Id"]: (r.get("Values") or [0.0])[0] for r in answer["MetricDataResults"]}
        return {provider: float(found.get(provider.lower(), 0.0)) for provider in USAGE_CLASS}

    def own_fargate_vcpu(self) -> dict[str, float]:
        """The vCPU of the stack's running tasks per capacity provider (already in the account's usage)."""
        ecs, own = self.client("ecs"), dict.fromkeys(USAGE_CLASS, 0.0)
        try:
            arns = [a for page in ecs.get_paginator("list_tasks").paginate(cluster=self.params["cluster"])
                    for a in page["taskArns"]]  # fmt: skip
        except ClientError as err:
            if error_code(err) == "ClusterNotFoundException":
                return own
            raise
        for start in range(0, len(arns), 100):
            for task in ecs.describe_tasks(cluster=self.params["cluster"], tasks=arns[start : start + 100],
                                           aws_retry=True)["tasks"]:  # fmt: skip
                provider = task.get("capacityProviderName") or "FARGATE"
                if provider in own and task.get("lastStatus") != "STOPPED":
                    own[provider] += int(task.get("cpu") or 0) / 1024
        return own

    def addresses(self) -> tuple[int, int]:
        """(Elastic IPs of the account in the region, those of this stack)."""
        addresses = self.client("ec2").describe_addresses(aws_retry=True)["Addresses"]
        own = [a for a in addresses if {"Key": STACK_TAG, "Value": self.params["stack_name"]} in a.get("Tags", [])]
        return len(addresses), len(own)

    def run(self) -> tuple[dict[str, dict], list[str]]:
        needs = self.params["needs"]
        usage = self.fargate_usage()
        own = self.own_fargate_vcpu()
        total_ips, own_ips = self.addresses()
        others = {
            "fargate_on_demand_vcpu": max(0.0, usage["FARGATE"] - own["FARGATE"]),
            "fargate_spot_vcpu": max(0.0, usage["FARGATE_SPOT"] - own["FARGATE_SPOT"]),
            "elastic_ips": float(total_ips - own_ips),
        }
        report, problems = {}, []
        for key, service, code, name, _provider, levers in QUOTAS:
            need = float(needs.get(key) or 0)
            value, source = self.quota(service, code)
            report[key] = {"code": code, "value": value, "source": source, "others": others[key], "need": need}
            if need and others[key] + need > value:
                in_use = f" + {others[key]:g} the account already uses" if others[key] else ""
                detail = f" ({needs['detail']})" if key != "elastic_ips" and needs.get("detail") else ""
                problems.append(
                    f"{name} ({service} {code}, {source} value {value:g} in {self.module.region}): the stack can need "
                    f"{need:g}{detail}{in_use} = {need + others[key]:g}; request an increase to at least "
                    f"{need + others[key]:g} in Service Quotas, or lower {levers}"
                )
        return report, problems


def main() -> None:
    module = AnsibleAWSModule(
        argument_spec={
            "stack_name": {"type": "str", "required": True},
            "cluster": {"type": "str", "required": True},
            "needs": {"type": "dict", "required": True},
        },
        supports_check_mode=True,
    )
    try:
        report, problems = QuotaChecks(module).run()
    except (BotoCoreError, ClientError) as err:
        module.fail_json_aws(err, msg="Could not read the account's service quotas")
    if problems:
        lines = ["Refused before any change: the account's quotas cannot hold the stack", *problems]
        module.fail_json(msg="\n".join(lines), quotas=report)
    module.exit_json(changed=False, quotas=report)


if __name__ == "__main__":
    main()
