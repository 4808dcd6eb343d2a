"""List what a stack left in an AWS account, through the AWS API (teardown and bad-input checks)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from emulator import Emulator


def _ec2(emulator: Emulator) -> list[str]:
    ec2 = emulator.client("ec2")
    default_vpcs = {v["VpcId"] for v in ec2.describe_vpcs(Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"]}
    found = [f"vpc {v['VpcId']}" for v in ec2.describe_vpcs()["Vpcs"] if v["VpcId"] not in default_vpcs]
    found += [f"subnet {s['SubnetId']}" for s in ec2.describe_subnets()["Subnets"] if s["VpcId"] not in default_vpcs]
    found += [
        f"security group {g['GroupName']}"
        for g in ec2.describe_security_groups()["SecurityGroups"]
        if g["VpcId"] not in default_vpcs and g["GroupName"] != "default"
    ]
    found += [
        f"internet gateway {g['InternetGatewayId']}" for g in ec2.describe_internet_gateways()["InternetGateways"]
    ]
    found += [
        f"nat gateway {n['NatGatewayId']}"
        for n in ec2.describe_nat_gateways()["NatGateways"]
        if n["State"] not in ("deleted", "deleting")
    ]
    found += [
        f"ec2 instance {i['InstanceId']}"
        for r in ec2.describe_instances()["Reservations"]
        for i in r["Instances"]
        if i["State"]["Name"] not in ("terminated", "shutting-down")
    ]
    found += [f"elastic ip {a['PublicIp']}" for a in ec2.describe_addresses()["Addresses"]]
    found += [
        f"route table {t['RouteTableId']}"
        for t in ec2.describe_route_tables()["RouteTables"]
        if t["VpcId"] not in default_vpcs and not any(a.get("Main") for a in t.get("Associations", []))
    ]
    return found


def _secrets(emulator: Emulator) -> list[str]:
    return [f"secret {s['Name']}" for s in emulator.client("secretsmanager").list_secrets()["SecretList"]]


def _rds(emulator: Emulator) -> list[str]:
    rds = emulator.client("rds")
    found = [f"db instance {d['DBInstanceIdentifier']}" for d in rds.describe_db_instances()["DBInstances"]]
    found += [f"db subnet group {g['DBSubnetGroupName']}" for g in rds.describe_db_subnet_groups()["DBSubnetGroups"]]
    return found


def _ecs(emulator: Emulator) -> list[str]:
    ecs = emulator.client("ecs")
    found = []
    for arn in ecs.list_clusters()["clusterArns"]:
        cluster = ecs.describe_clusters(clusters=[arn])["clusters"][0]
        if cluster["status"] == "ACTIVE":
            found.append(f"ecs cluster {cluster['clusterName']}")
        service_arns = ecs.list_services(cluster=arn)["serviceArns"]
        for start in range(0, len(service_arns), 10):
            described = ecs.describe_services(cluster=arn, services=service_arns[start : start + 10])["services"]
            found += [f"ecs service {s['serviceName']}" for s in described if s["status"] != "INACTIVE"]
    found += [f"task definition {t}" for t in ecs.list_task_definitions(status="ACTIVE")["taskDefinitionArns"]]
    return found


def _logs(emulator: Emulator) -> list[str]:
    return [f"log group {g['logGroupName']}" for g in emulator.client("logs").describe_log_groups()["logGroups"]]


def _iam(emulator: Emulator) -> list[str]:
    """Not the services' own roles (path /aws-service-role/): account-wide, kept by the teardown (ECS's is made
    by the ecs_cluster role)."""
    iam = emulator.client("iam")
    roles = iam.list_roles()["Roles"]
    found = [f"iam role {r['RoleName']}" for r in roles if not r["Path"].startswith("/aws-service-role/")]
    found += [f"iam policy {p['PolicyName']}" for p in iam.list_policies(Scope="Local")["Policies"]]
    return found


def _s3(emulator: Emulator) -> list[str]:
    return [f"s3 bucket {b['Name']}" for b in emulator.client("s3").list_buckets()["Buckets"]]


def _cloud_map(emulator: Emulator) -> list[str]:
    sd = emulator.client("servicediscovery")
    found = [f"cloud map namespace {n['Name']}" for n in sd.list_namespaces()["Namespaces"]]
    found += [f"cloud map service {s['Name']}" for s in sd.list_services()["Services"]]
    return found


def _elb(emulator: Emulator) -> list[str]:
    elb = emulator.client("elbv2")
    found = [f"load balancer {lb['LoadBalancerName']}" for lb in elb.describe_load_balancers()["LoadBalancers"]]
    found += [f"target group {t['TargetGroupName']}" for t in elb.describe_target_groups()["TargetGroups"]]
    return found


def _autoscaling(emulator: Emulator) -> list[str]:
    scaling = emulator.client("application-autoscaling")
    found = [
        f"scalable target {t['ResourceId']}"
        for t in scaling.describe_scalable_targets(ServiceNamespace="ecs")["ScalableTargets"]
    ]
    found += [
        f"scaling policy {p['PolicyName']}"
        for p in scaling.describe_scaling_policies(ServiceNamespace="ecs")["ScalingPolicies"]
    ]
    found += [f"alarm {a['AlarmName']}" for a in emulator.client("cloudwatch").describe_alarms()["MetricAlarms"]]
    return found


def _mq(emulator: Emulator) -> list[str]:
    return [f"mq broker {b['BrokerName']}" for b in emulator.client("mq").list_brokers()["BrokerSummaries"]]


def _images(emulator: Emulator) -> list[str]:
    ecr = emulator.client("ecr")
    found = [f"ecr repository {r['repositoryName']}" for r in ecr.describe_repositories()["repositories"]]
    found += [
        f"ecr pull-through cache rule {r['ecrRepositoryPrefix']}"
        for r in ecr.describe_pull_through_cache_rules()["pullThroughCacheRules"]
    ]
    found += [f"codebuild project {p}" for p in emulator.client("codebuild").list_projects()["projects"]]
    return found


CHECKS: list[Callable[[Emulator], list[str]]] = [
    _ec2,
    _secrets,
    _rds,
    _ecs,
    _logs,
    _iam,
    _s3,
    _cloud_map,
    _elb,
    _autoscaling,
    _mq,
    _images,
]


def leftover_resources(emulator: Emulator) -> list[str]:
    """Every resource in the emulator that a fresh account does not have."""
    return [item for check in CHECKS for item in check(emulator)]


def _without(data: Any, keys: frozenset[str]) -> Any:
    """`data` without the keys that change by themselves (timestamps, request ids)."""
    if isinstance(data, dict):
        return {k: _without(v, keys) for k, v in data.items() if k not in keys}
    if isinstance(data, list):
        return [_without(v, keys) for v in data]
    return data


VOLATILE = frozenset(
    {"ResponseMetadata", "LastModifiedDate", "LastAccessedDate", "LastChangedDate", "RoleLastUsed", "updatedAt",
     "events", "runningCount", "pendingCount", "deployments", "LastUpdateTime", "StateUpdatedTimestamp",
     "LatestRestorableTime"}
)  # fmt: skip


def stack_snapshot(emulator: Emulator) -> dict[str, Any]:
    """The stack's resources with their settings, for 'nothing was created, changed or deleted' checks."""
    ec2, rds, ecs = emulator.client("ec2"), emulator.client("rds"), emulator.client("ecs")
    iam, s3, sd = emulator.client("iam"), emulator.client("s3"), emulator.client("servicediscovery")
    snapshot: dict[str, Any] = {
        "resources": sorted(leftover_resources(emulator)),
        "vpcs": ec2.describe_vpcs()["Vpcs"],
        "subnets": sorted(ec2.describe_subnets()["Subnets"], key=lambda s: s["SubnetId"]),
        "security_groups": sorted(ec2.describe_security_groups()["SecurityGroups"], key=lambda g: g["GroupId"]),
        "db_instances": rds.describe_db_instances()["DBInstances"],
        "secrets": sorted(
            (s["Name"], sorted(s.get("SecretVersionsToStages", {})))
            for s in emulator.client("secretsmanager").list_secrets()["SecretList"]
        ),
        "namespaces": sd.list_namespaces()["Namespaces"],
        "cloud_map_services": sd.list_services()["Services"],
        "log_groups": emulator.client("logs").describe_log_groups()["logGroups"],
        "load_balancers": emulator.client("elbv2").describe_load_balancers()["LoadBalancers"],
        "task_definitions": ecs.list_task_definitions()["taskDefinitionArns"],
    }
    roles = []
    for role in iam.list_roles()["Roles"]:
        name = role["RoleName"]
        policies = {p: iam.get_role_policy(RoleName=name, PolicyName=p)["PolicyDocument"]
                    for p in iam.list_role_policies(RoleName=name)["PolicyNames"]}  # fmt: skip
        roles.append((name, iam.list_role_tags(RoleName=name)["Tags"], policies))
    snapshot["iam_roles"] = roles
    buckets = []
    for bucket in s3.list_buckets()["Buckets"]:
        versions = s3.list_object_versions(Bucket=bucket["Name"])
        keys = sorted(
            (v["Key"], v["VersionId"]) for v in versions.get("Versions", []) + versions.get("DeleteMarkers", [])
        )
        buckets.append((bucket["Name"], keys))
    snapshot["buckets"] = buckets
    services = []
    for arn in ecs.list_clusters()["clusterArns"]:
        names = ecs.list_services(cluster=arn)["serviceArns"]
        for start in range(0, len(names), 10):
            services += ecs.describe_services(cluster=arn, services=names[start : start + 10])["services"]
    snapshot["ecs_services"] = sorted(services, key=lambda s: s["serviceArn"])
    return _without(snapshot, VOLATILE)
