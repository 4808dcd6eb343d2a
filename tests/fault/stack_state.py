"""A stack's resources by name, ids left out: two deploys that converge describe alike."""

from __future__ import annotations

from typing import Any

from emulator import Emulator


def _tags(resource: dict[str, Any]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in resource.get("Tags", [])}


def describe_stack(emulator: Emulator, stack: str) -> dict[str, Any]:
    """Names (and counts where names are not unique) of everything the stack owns, read through the AWS API."""
    ec2 = emulator.client("ec2")
    vpcs = ec2.describe_vpcs(Filters=[{"Name": "tag:airflow-ecs:stack", "Values": [stack]}])["Vpcs"]
    vpc_ids = [v["VpcId"] for v in vpcs] or ["vpc-none"]
    in_vpc = [{"Name": "vpc-id", "Values": vpc_ids}]
    nats = ec2.describe_nat_gateways(Filters=in_vpc)["NatGateways"]
    nats = [n for n in nats if n["State"] in ("pending", "available")]
    nat_ips = {a["PublicIp"] for n in nats for a in n.get("NatGatewayAddresses", [])}
    # NAT instances (network_egress nat_instance, the default) and their Elastic IPs, by Name.
    reservations = ec2.describe_instances(Filters=[*in_vpc, {"Name": "tag:airflow-ecs:tier", "Values": ["nat"]}])
    nat_instances = [
        i for r in reservations["Reservations"] for i in r["Instances"] if i["State"]["Name"] in ("pending", "running")
    ]
    instance_ips = {
        a["PublicIp"]
        for a in ec2.describe_addresses()["Addresses"]
        if a.get("InstanceId") in {i["InstanceId"] for i in nat_instances}
    }

    sd = emulator.client("servicediscovery")
    namespaces = [n for n in sd.list_namespaces()["Namespaces"] if n["Name"] == f"{stack}.internal"]
    ecs = emulator.client("ecs")
    clusters = [c for c in ecs.describe_clusters(clusters=[stack])["clusters"] if c["status"] == "ACTIVE"]
    service_arns = ecs.list_services(cluster=stack)["serviceArns"] if clusters else []
    services = []
    for start in range(0, len(service_arns), 10):
        services += ecs.describe_services(cluster=stack, services=service_arns[start : start + 10])["services"]
    # Families with an ACTIVE revision (the emulator's ListTaskDefinitionFamilies ignores its status filter).
    active = ecs.list_task_definitions(status="ACTIVE")["taskDefinitionArns"]
    families = {arn.rsplit("/", 1)[1].rsplit(":", 1)[0] for arn in active}
    families = [f for f in families if f.startswith(f"{stack}-")]
    elb = emulator.client("elbv2")
    cloudwatch = emulator.client("cloudwatch")
    topics = [t["TopicArn"].rsplit(":", 1)[1] for t in emulator.client("sns").list_topics()["Topics"]]

    return {
        "vpcs": sorted(_tags(v).get("Name", "") for v in vpcs),
        "subnets": sorted(_tags(s).get("Name", "") for s in ec2.describe_subnets(Filters=in_vpc)["Subnets"]),
        "internet_gateways": len(
            ec2.describe_internet_gateways(Filters=[{"Name": "attachment.vpc-id", "Values": vpc_ids}])[
                "InternetGateways"
            ]
        ),
        "nat_gateways": len(nats),
        "elastic_ips_of_nat_gateways": len(nat_ips),
        "nat_instances": sorted(_tags(i).get("Name", "") for i in nat_instances),
        "elastic_ips_of_nat_instances": len(instance_ips),
        "route_tables": sorted(
            _tags(t).get("Name", "")
            for t in ec2.describe_route_tables(Filters=in_vpc)["RouteTables"]
            if _tags(t).get("airflow-ecs:stack") == stack
        ),
        "security_groups": sorted(
            g["GroupName"]
            for g in ec2.describe_security_groups(Filters=in_vpc)["SecurityGroups"]
            if g["GroupName"] != "default"
        ),
        "secrets": sorted(
            s["Name"]
            for s in emulator.client("secretsmanager").list_secrets()["SecretList"]
            if s["Name"].startswith(f"{stack}/")
        ),
        "db_instances": sorted(
            d["DBInstanceIdentifier"]
            for d in emulator.client("rds").describe_db_instances()["DBInstances"]
            if d["DBInstanceIdentifier"].startswith(f"{stack}-")
        ),
        "namespaces": sorted(n["Name"] for n in namespaces),
        # The emulator ignores the NAMESPACE_ID filter (and summaries carry no namespace): read each service.
        "discovery_services": sorted(
            service["Name"]
            for n in namespaces
            for summary in sd.list_services(Filters=[{"Name": "NAMESPACE_ID", "Values": [n["Id"]]}])["Services"]
            if (service := sd.get_service(Id=summary["Id"])["Service"])["NamespaceId"] == n["Id"]
        ),
        "clusters": sorted(c["clusterName"] for c in clusters),
        "ecs_services": sorted(s["serviceName"] for s in services if s["status"] == "ACTIVE"),
        "task_definition_families": sorted(families),
        "log_groups": sorted(
            g["logGroupName"]
            for g in emulator.client("logs").describe_log_groups(logGroupNamePrefix=f"/ecs/{stack}/")["logGroups"]
        ),
        "iam_roles": sorted(
            r["RoleName"] for r in emulator.client("iam").list_roles()["Roles"] if r["RoleName"].startswith(f"{stack}-")
        ),
        "buckets": sorted(
            b["Name"] for b in emulator.client("s3").list_buckets()["Buckets"] if b["Name"].startswith(f"{stack}-")
        ),
        "load_balancers": sorted(
            lb["LoadBalancerName"]
            for lb in elb.describe_load_balancers()["LoadBalancers"]
            if lb["LoadBalancerName"].startswith(f"{stack}-")
        ),
        "alarms": sorted(
            a["AlarmName"] for a in cloudwatch.describe_alarms(AlarmNamePrefix=f"{stack}-")["MetricAlarms"]
        ),
        "dashboards": sorted(
            d["DashboardName"]
            for d in cloudwatch.list_dashboards(DashboardNamePrefix=stack)["DashboardEntries"]
            if d["DashboardName"].startswith(f"{stack}-")
        ),
        "sns_topics": sorted(t for t in topics if t.startswith(f"{stack}-")),
        "target_groups": sorted(
            t["TargetGroupName"]
            for t in elb.describe_target_groups()["TargetGroups"]
            if t["TargetGroupName"].startswith(f"{stack}-")
        ),
    }


def renamed(description: dict[str, Any], old: str, new: str) -> dict[str, Any]:
    """The description with every name's stack prefix `old` replaced by `new` (counts stay)."""

    def rename(name: str) -> str:
        for sep in ("-", "/", "."):
            if name.startswith(old + sep):
                return new + name[len(old) :]
        return name.replace(f"/ecs/{old}/", f"/ecs/{new}/") if name.startswith("/ecs/") else name

    return {
        key: sorted(rename(n) if n != old else new for n in value) if isinstance(value, list) else value
        for key, value in description.items()
    }


def changed_tasks(output: str) -> list[str]:
    """The `TASK [...]` banners followed by a `changed:` line, for a readable changed=0 failure."""
    found, task = [], ""
    for line in output.splitlines():
        if line.startswith("TASK ["):
            task = line
        elif line.startswith("changed:") and task not in found:
            found.append(task)
    return found
