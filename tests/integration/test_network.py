"""The deployed network, read back through the EC2 API."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.xdist_group("stack")


@pytest.fixture(scope="module")
def ec2(deployed):
    return deployed.emulator.client("ec2")


@pytest.fixture(scope="module")
def vpc(ec2) -> dict:
    vpcs = ec2.describe_vpcs(Filters=[{"Name": "tag:Name", "Values": ["airflow-vpc"]}])["Vpcs"]
    assert len(vpcs) == 1
    return vpcs[0]


def _vpc_filter(vpc: dict) -> list[dict]:
    return [{"Name": "vpc-id", "Values": [vpc["VpcId"]]}]


def _tag(resource: dict, key: str) -> str | None:
    return {t["Key"]: t["Value"] for t in resource.get("Tags", [])}.get(key)


def test_vpc_has_range_dns_and_stack_tag(ec2, vpc):
    assert vpc["CidrBlock"] == "10.40.0.0/16"
    assert _tag(vpc, "airflow-ecs:stack") == "airflow"
    attr = ec2.describe_vpc_attribute(VpcId=vpc["VpcId"], Attribute="enableDnsHostnames")
    assert attr["EnableDnsHostnames"]["Value"] is True


def test_one_public_and_one_private_subnet_per_az_in_two_azs(ec2, vpc):
    subnets = ec2.describe_subnets(Filters=_vpc_filter(vpc))["Subnets"]
    tiers = sorted((_tag(s, "airflow-ecs:tier"), s["AvailabilityZone"]) for s in subnets)
    assert tiers == [
        ("private", "us-east-1a"),
        ("private", "us-east-1b"),
        ("public", "us-east-1a"),
        ("public", "us-east-1b"),
    ]
    assert not any(s["MapPublicIpOnLaunch"] for s in subnets)


def _default_route_targets(ec2, vpc, tier: str) -> set[str]:
    subnets = ec2.describe_subnets(Filters=[*_vpc_filter(vpc), {"Name": "tag:airflow-ecs:tier", "Values": [tier]}])
    targets = set()
    for subnet in subnets["Subnets"]:
        tables = ec2.describe_route_tables(Filters=[{"Name": "association.subnet-id", "Values": [subnet["SubnetId"]]}])[
            "RouteTables"
        ]
        assert len(tables) == 1, f"{tier} subnet {subnet['SubnetId']} has no explicit route table"
        default = [r for r in tables[0]["Routes"] if r.get("DestinationCidrBlock") == "0.0.0.0/0"]
        assert len(default) == 1
        targets.add(default[0].get("GatewayId") or default[0].get("NatGatewayId"))
    return targets


def test_public_subnets_route_to_the_internet_gateway(ec2, vpc):
    igw = ec2.describe_internet_gateways(Filters=[{"Name": "attachment.vpc-id", "Values": [vpc["VpcId"]]}])
    assert _default_route_targets(ec2, vpc, "public") == {igw["InternetGateways"][0]["InternetGatewayId"]}


def test_private_subnets_route_to_a_nat_gateway_in_a_public_subnet(ec2, vpc):
    targets = _default_route_targets(ec2, vpc, "private")
    assert len(targets) == 1 and next(iter(targets)).startswith("nat-")
    nat = ec2.describe_nat_gateways(NatGatewayIds=list(targets))["NatGateways"][0]
    public = ec2.describe_subnets(SubnetIds=[nat["SubnetId"]])["Subnets"][0]
    assert _tag(public, "airflow-ecs:tier") == "public"


def test_only_the_alb_admits_traffic_from_outside_the_vpc(ec2, vpc):
    groups = {
        g["GroupName"]: g
        for g in ec2.describe_security_groups(Filters=_vpc_filter(vpc))["SecurityGroups"]
        if g["GroupName"] != "default"
    }
    assert set(groups) >= {"airflow-alb", "airflow-airflow", "airflow-broker", "airflow-database"}
    for name, group in groups.items():
        for rule in group["IpPermissions"]:
            open_ranges = [r["CidrIp"] for r in rule.get("IpRanges", [])] + [
                r["CidrIpv6"] for r in rule.get("Ipv6Ranges", [])
            ]
            if name == "airflow-alb":
                assert rule["FromPort"] == 80 and rule["ToPort"] == 80
            else:
                assert not open_ranges, f"{name} admits {open_ranges} on port {rule.get('FromPort')}"


@pytest.mark.parametrize(
    ("group", "port", "allowed"),
    [
        ("airflow-airflow", 8080, {"airflow-alb", "airflow-airflow"}),
        ("airflow-airflow", 8793, {"airflow-airflow"}),
        ("airflow-airflow", 5555, {"airflow-airflow"}),
        ("airflow-broker", 5672, {"airflow-airflow"}),
        ("airflow-broker", 15672, {"airflow-airflow"}),
        ("airflow-database", 5432, {"airflow-airflow"}),
    ],
)
def test_tier_ports_admit_only_the_calling_tier(ec2, vpc, group, port, allowed):
    groups = {g["GroupName"]: g for g in ec2.describe_security_groups(Filters=_vpc_filter(vpc))["SecurityGroups"]}
    sources = {
        pair["GroupId"]
        for rule in groups[group]["IpPermissions"]
        if rule["FromPort"] <= port <= rule["ToPort"]
        for pair in rule.get("UserIdGroupPairs", [])
    }
    assert sources == {groups[name]["GroupId"] for name in allowed}
