"""List what a stack left in an AWS account, through the AWS API (teardown and bad-input checks)."""

from __future__ import annotations

from collections.abc import Callable

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
    iam = emulator.client("iam")
    found = [f"iam role {r['RoleName']}" for r in iam.list_roles()["Roles"]]
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
]


def leftover_resources(emulator: Emulator) -> list[str]:
    """Every resource in the emulator that a fresh account does not have."""
    return [item for check in CHECKS for item in check(emulator)]
