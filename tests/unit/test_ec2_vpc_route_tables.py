"""library/ec2_vpc_route_tables.py against a moto server, through the real `ansible` CLI.

Every claim of the module is checked against what EC2 says (DescribeRouteTables through boto3).
"""

from __future__ import annotations

from typing import Any

import pytest
from ansible_runner import run_module
from emulator import Emulator

MODULE = "ec2_vpc_route_tables"
PUBLIC, PRIVATE = "t-public", "t-private"
STACK = {"airflow-ecs:stack": "t"}


@pytest.fixture
def network(clean_emulator: Emulator, vpc_id: str) -> dict[str, Any]:
    """Four subnets (two public, two private), an internet gateway and a NAT gateway in `vpc_id`."""
    ec2 = clean_emulator.client("ec2")
    subnets = [
        ec2.create_subnet(VpcId=vpc_id, CidrBlock=f"10.20.{index}.0/24")["Subnet"]["SubnetId"] for index in range(4)
    ]
    igw = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=vpc_id)
    allocation = ec2.allocate_address(Domain="vpc")["AllocationId"]
    nat = ec2.create_nat_gateway(SubnetId=subnets[0], AllocationId=allocation)["NatGateway"]["NatGatewayId"]
    return {"vpc_id": vpc_id, "public": subnets[:2], "private": subnets[2:], "igw": igw, "nat": nat}


def make_table(emulator: Emulator, vpc_id: str, tags: dict[str, str], subnet: str | None = None) -> str:
    """A route table made by hand (another owner's, as far as the module knows), optionally with a subnet."""
    ec2 = emulator.client("ec2")
    spec = [{"ResourceType": "route-table", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}] if tags else []
    table_id = ec2.create_route_table(VpcId=vpc_id, TagSpecifications=spec)["RouteTable"]["RouteTableId"]
    if subnet:
        ec2.associate_route_table(RouteTableId=table_id, SubnetId=subnet)
    return table_id


def tables_args(net: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    return {
        "vpc_id": net["vpc_id"],
        "route_tables": [
            {
                "name": PUBLIC,
                "subnets": net["public"],
                "routes": [{"dest": "0.0.0.0/0", "gateway_id": net["igw"]}],
                "tags": STACK,
            },
            {
                "name": PRIVATE,
                "subnets": net["private"],
                "routes": [{"dest": "0.0.0.0/0", "nat_gateway_id": net["nat"]}],
                "tags": STACK,
            },
        ],
        **overrides,
    }


def in_aws(emulator: Emulator, vpc_id: str) -> dict[str, dict]:
    """What EC2 says: per Name tag, the table's id, subnets, non-local routes and tags (main table left out)."""
    ec2 = emulator.client("ec2")
    found = ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["RouteTables"]
    view = {}
    for table in found:
        if any(a.get("Main") for a in table["Associations"]):
            continue
        tags = {t["Key"]: t["Value"] for t in table.get("Tags", [])}
        routes = {}
        for route in table["Routes"]:
            if route.get("GatewayId") == "local":
                continue
            routes[route["DestinationCidrBlock"]] = route.get("NatGatewayId") or route.get("GatewayId")
        view[tags.get("Name", table["RouteTableId"])] = {
            "id": table["RouteTableId"],
            "subnets": sorted(a["SubnetId"] for a in table["Associations"] if a.get("SubnetId")),
            "routes": routes,
            "tags": tags,
        }
    return view


def test_create_is_planned_then_made_then_unchanged(clean_emulator: Emulator, network: dict[str, Any]) -> None:
    env, vpc_id = clean_emulator.env(), network["vpc_id"]
    args = tables_args(network)

    planned = run_module(MODULE, args, env=env, check=True, diff=True)
    assert planned["changed"] is True, planned
    assert in_aws(clean_emulator, vpc_id) == {}
    assert [(t["name"], t["id"]) for t in planned["route_tables"]] == [(PUBLIC, None), (PRIVATE, None)]
    assert planned["route_tables"][0]["routes"] == [{"dest": "0.0.0.0/0", "gateway_id": network["igw"]}]
    assert planned["diff"]["before"] == {}
    assert planned["diff"]["after"][PRIVATE] == {
        "subnets": sorted(network["private"]),
        "routes": [f"0.0.0.0/0 -> {network['nat']}"],
        "tags": {"Name": PRIVATE, **STACK},
    }

    created = run_module(MODULE, args, env=env, diff=True)
    assert created["changed"] is True, created
    aws = in_aws(clean_emulator, vpc_id)
    assert set(aws) == {PUBLIC, PRIVATE}
    assert aws[PUBLIC]["subnets"] == sorted(network["public"])
    assert aws[PUBLIC]["routes"] == {"0.0.0.0/0": network["igw"]}
    assert aws[PUBLIC]["tags"] == {"Name": PUBLIC, **STACK}
    assert aws[PRIVATE]["subnets"] == sorted(network["private"])
    assert aws[PRIVATE]["routes"] == {"0.0.0.0/0": network["nat"]}
    assert aws[PRIVATE]["tags"] == {"Name": PRIVATE, **STACK}
    assert [t["id"] for t in created["route_tables"]] == [aws[PUBLIC]["id"], aws[PRIVATE]["id"]]
    assert created["route_tables"][1] == {
        "id": aws[PRIVATE]["id"],
        "name": PRIVATE,
        "subnets": sorted(network["private"]),
        "routes": [{"dest": "0.0.0.0/0", "nat_gateway_id": network["nat"]}],
        "tags": {"Name": PRIVATE, **STACK},
    }

    again = run_module(MODULE, args, env=env, diff=True)
    assert again["changed"] is False, again
    assert again["route_tables"] == created["route_tables"]
    assert again["diff"]["before"] == again["diff"]["after"]
    assert run_module(MODULE, args, env=env, check=True)["changed"] is False
    assert in_aws(clean_emulator, vpc_id) == aws


def test_subnet_moves_route_target_and_tags_change(clean_emulator: Emulator, network: dict[str, Any]) -> None:
    env, vpc_id = clean_emulator.env(), network["vpc_id"]
    run_module(MODULE, tables_args(network), env=env)
    before = in_aws(clean_emulator, vpc_id)

    # The second public subnet moves to the private table, whose default route now goes to the internet
    # gateway, gains a second route, and whose tags change (the stack tag purged).
    moved = network["public"][1]
    args = tables_args(network)
    public, private = args["route_tables"]
    public["subnets"] = network["public"][:1]
    private["subnets"] = [*network["private"], moved]
    private["routes"] = [
        {"dest": "0.0.0.0/0", "gateway_id": network["igw"]},
        {"dest": "192.168.0.0/16", "nat_gateway_id": network["nat"]},
    ]
    private["tags"] = {"owner": "me"}

    preview = run_module(MODULE, args, env=env, check=True, diff=True)
    assert preview["changed"] is True, preview
    assert in_aws(clean_emulator, vpc_id) == before
    assert preview["route_tables"][1]["subnets"] == sorted([*network["private"], moved])
    assert preview["diff"]["before"][PRIVATE]["routes"] == [f"0.0.0.0/0 -> {network['nat']}"]
    assert preview["diff"]["after"][PRIVATE]["routes"] == [
        f"0.0.0.0/0 -> {network['igw']}",
        f"192.168.0.0/16 -> {network['nat']}",
    ]
    assert preview["diff"]["after"][PRIVATE]["tags"] == {"Name": PRIVATE, "owner": "me"}

    updated = run_module(MODULE, args, env=env)
    assert updated["changed"] is True, updated
    after = in_aws(clean_emulator, vpc_id)
    assert {name: t["id"] for name, t in after.items()} == {name: t["id"] for name, t in before.items()}
    assert after[PUBLIC]["subnets"] == network["public"][:1]
    assert after[PRIVATE]["subnets"] == sorted([*network["private"], moved])
    assert after[PRIVATE]["routes"] == {"0.0.0.0/0": network["igw"], "192.168.0.0/16": network["nat"]}
    assert after[PRIVATE]["tags"] == {"Name": PRIVATE, "owner": "me"}
    assert after[PUBLIC] == before[PUBLIC] | {"subnets": network["public"][:1]}
    assert [t["subnets"] for t in updated["route_tables"]] == [after[PUBLIC]["subnets"], after[PRIVATE]["subnets"]]
    assert run_module(MODULE, args, env=env)["changed"] is False

    # Dropping a subnet and a route: the subnet falls back to the main table, the route is deleted.
    private["subnets"] = network["private"]
    private["routes"] = [{"dest": "0.0.0.0/0", "nat_gateway_id": network["nat"]}]
    assert run_module(MODULE, args, env=env)["changed"] is True
    after = in_aws(clean_emulator, vpc_id)
    assert after[PRIVATE]["subnets"] == sorted(network["private"])
    assert after[PRIVATE]["routes"] == {"0.0.0.0/0": network["nat"]}
    assert moved not in after[PUBLIC]["subnets"]


def test_absent_by_tag_deletes_every_stack_table(clean_emulator: Emulator, network: dict[str, Any]) -> None:
    env, vpc_id = clean_emulator.env(), network["vpc_id"]
    run_module(MODULE, tables_args(network), env=env)
    ec2 = clean_emulator.client("ec2")
    # Tables of other owners in the same VPC stay: named, another stack's, and one with no tag at all.
    other = make_table(clean_emulator, vpc_id, {"Name": "other"})
    foreign = make_table(clean_emulator, vpc_id, {"Name": "foreign", "airflow-ecs:stack": "u"})
    untagged = make_table(clean_emulator, vpc_id, {})
    theirs = {
        "other": {"id": other, "subnets": [], "routes": {}, "tags": {"Name": "other"}},
        "foreign": {"id": foreign, "subnets": [], "routes": {}, "tags": {"Name": "foreign", "airflow-ecs:stack": "u"}},
        untagged: {"id": untagged, "subnets": [], "routes": {}, "tags": {}},
    }
    absent = {"vpc_id": vpc_id, "purge_owned_by": STACK, "state": "absent"}

    plan = run_module(MODULE, absent, env=env, check=True, diff=True)
    assert plan["changed"] is True, plan
    assert {t["name"] for t in plan["deleted"]} == {PUBLIC, PRIVATE}
    assert set(plan["diff"]["before"]) == {PUBLIC, PRIVATE} and plan["diff"]["after"] == {}
    assert set(in_aws(clean_emulator, vpc_id)) == {PUBLIC, PRIVATE, *theirs}

    deleted = run_module(MODULE, absent, env=env)
    assert deleted["changed"] is True, deleted
    assert in_aws(clean_emulator, vpc_id) == theirs
    # The subnets are back on the main table: no explicit association is left.
    associated = ec2.describe_route_tables(
        Filters=[{"Name": "association.subnet-id", "Values": network["public"] + network["private"]}]
    )["RouteTables"]
    assert associated == []
    again = run_module(MODULE, absent, env=env)
    assert again["changed"] is False, again
    assert again["deleted"] == []


@pytest.mark.parametrize("state", ["absent", "present"])
def test_purge_without_owner_tags_is_refused(clean_emulator: Emulator, network: dict[str, Any], state: str) -> None:
    """The issue: `all_tagged: {}` deleted every non-main table of the VPC, an empty one made by hand too."""
    env, vpc_id = clean_emulator.env(), network["vpc_id"]
    run_module(MODULE, tables_args(network), env=env)
    make_table(clean_emulator, vpc_id, {"Name": "by-hand"})
    make_table(clean_emulator, vpc_id, {})
    before = in_aws(clean_emulator, vpc_id)
    args = tables_args(network, purge_owned_by={}, state=state)
    if state == "absent":
        args["route_tables"] = []

    for check in (True, False):
        refused = run_module(MODULE, args, env=env, check=check)
        assert refused.get("failed") is True, refused
        assert refused["msg"].startswith("purge_owned_by names no tag: give the tags that mark the route tables")
        assert in_aws(clean_emulator, vpc_id) == before


def test_purge_when_present_deletes_only_owned_unlisted_tables(
    clean_emulator: Emulator, network: dict[str, Any]
) -> None:
    env, vpc_id = clean_emulator.env(), network["vpc_id"]
    ec2 = clean_emulator.client("ec2")
    run_module(MODULE, tables_args(network), env=env)
    spare = ec2.create_subnet(VpcId=vpc_id, CidrBlock="10.20.9.0/24")["Subnet"]["SubnetId"]
    # Owned but no longer wanted: PRIVATE (its subnets go to a new table) and a leftover without a Name.
    leftover = make_table(clean_emulator, vpc_id, STACK)
    # Not owned: another stack's table with a subnet, and an empty one made by hand.
    foreign = make_table(clean_emulator, vpc_id, {"Name": "foreign", "airflow-ecs:stack": "u"}, subnet=spare)
    make_table(clean_emulator, vpc_id, {"Name": "by-hand"})
    before = in_aws(clean_emulator, vpc_id)

    args = tables_args(network, purge_owned_by=STACK)
    args["route_tables"][1]["name"] = "t-private-new"
    preview = run_module(MODULE, args, env=env, check=True, diff=True)
    assert preview["changed"] is True, preview
    assert sorted(preview["deleted"], key=str) == sorted(
        [{"id": before[PRIVATE]["id"], "name": PRIVATE}, {"id": leftover, "name": None}], key=str
    )
    assert set(preview["diff"]["before"]) == {PUBLIC, PRIVATE, leftover}
    assert set(preview["diff"]["after"]) == {PUBLIC, "t-private-new"}
    assert in_aws(clean_emulator, vpc_id) == before

    purged = run_module(MODULE, args, env=env)
    assert purged["changed"] is True, purged
    after = in_aws(clean_emulator, vpc_id)
    assert set(after) == {PUBLIC, "t-private-new", "foreign", "by-hand"}
    assert after["t-private-new"]["subnets"] == sorted(network["private"])
    assert after[PUBLIC] == before[PUBLIC]
    assert (
        after["foreign"]
        == before["foreign"]
        == {
            "id": foreign,
            "subnets": [spare],
            "routes": {},
            "tags": {"Name": "foreign", "airflow-ecs:stack": "u"},
        }
    )
    assert after["by-hand"] == before["by-hand"]

    again = run_module(MODULE, args, env=env)
    assert again["changed"] is False, again
    assert again["deleted"] == []


def test_absent_by_name_and_conflicting_input(clean_emulator: Emulator, network: dict[str, Any]) -> None:
    env, vpc_id = clean_emulator.env(), network["vpc_id"]
    args = tables_args(network)
    args["route_tables"][1]["subnets"] = [network["public"][0]]
    failed = run_module(MODULE, args, env=env)
    assert failed.get("failed") is True, failed
    assert f"Subnet {network['public'][0]} is listed for route tables '{PUBLIC}' and '{PRIVATE}'" in failed["msg"]
    assert in_aws(clean_emulator, vpc_id) == {}

    run_module(MODULE, tables_args(network), env=env)
    gone = run_module(MODULE, {"vpc_id": vpc_id, "route_tables": [{"name": PUBLIC}], "state": "absent"}, env=env)
    assert gone["changed"] is True, gone
    assert set(in_aws(clean_emulator, vpc_id)) == {PRIVATE}
