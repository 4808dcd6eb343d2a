"""library/ec2_vpc_network.py against a moto server, through the real `ansible` CLI.

This file starts a moto server of its own, with moto's request recorder on, so that the tests can count
the API calls of a run (the recorder writes every request, body included, to a file).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from ansible_runner import run_module
from emulator import Emulator
from recording import recorded_actions, reset_recording, start_recording_emulator

MODULE = "ec2_vpc_network"
NAME, IGW_NAME, CIDR = "t-vpc", "t-igw", "10.40.0.0/16"
STACK = {"airflow-ecs:stack": "t"}
READS_OF_A_NOOP = Counter({"DescribeVpcs": 1, "DescribeVpcAttribute": 2, "DescribeInternetGateways": 1})


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    """This module's moto server (overrides the session one), recording every request to a file."""
    server = start_recording_emulator(tmp_path_factory.mktemp("moto_vpc"))
    yield server
    server.stop()


WRITES = {
    "CreateVpc",
    "DeleteVpc",
    "ModifyVpcAttribute",
    "CreateTags",
    "DeleteTags",
    "CreateInternetGateway",
    "AttachInternetGateway",
    "DetachInternetGateway",
    "DeleteInternetGateway",
}


def writes(actions: Counter[str]) -> set[str]:
    return set(actions) & WRITES


def vpc_args(**overrides: Any) -> dict[str, Any]:
    """The network role's call: the stack's VPC and its internet gateway, with the stack tag and a user tag."""
    return {
        "name": NAME,
        "owner_tags": STACK,
        "cidr_block": CIDR,
        "tags": {**STACK, "team": "data"},
        "internet_gateway": {"name": IGW_NAME, "tags": {**STACK, "team": "data"}},
        **overrides,
    }


def tags(resource: dict) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in resource.get("Tags", [])}


def in_aws(emulator: Emulator) -> dict[str, dict]:
    """What EC2 says: per VPC id, its range, DNS attributes, tags and attached gateways (id -> tags)."""
    ec2 = emulator.client("ec2")
    found = {}
    for vpc in ec2.describe_vpcs()["Vpcs"]:
        if vpc.get("IsDefault"):
            continue
        vpc_id = vpc["VpcId"]
        attached = ec2.describe_internet_gateways(Filters=[{"Name": "attachment.vpc-id", "Values": [vpc_id]}])
        found[vpc_id] = {
            "cidr": vpc["CidrBlock"],
            "dns_support": ec2.describe_vpc_attribute(VpcId=vpc_id, Attribute="enableDnsSupport")["EnableDnsSupport"][
                "Value"
            ],
            "dns_hostnames": ec2.describe_vpc_attribute(VpcId=vpc_id, Attribute="enableDnsHostnames")[
                "EnableDnsHostnames"
            ]["Value"],
            "tags": tags(vpc),
            "gateways": {g["InternetGatewayId"]: tags(g) for g in attached["InternetGateways"]},
        }
    return found


def all_gateways(emulator: Emulator) -> dict[str, list[str]]:
    """Every internet gateway: id -> the VPCs it is attached to."""
    gateways = emulator.client("ec2").describe_internet_gateways()["InternetGateways"]
    return {g["InternetGatewayId"]: [a["VpcId"] for a in g.get("Attachments", [])] for g in gateways}


def make_vpc(emulator: Emulator, vpc_tags: dict[str, str], cidr: str = CIDR) -> str:
    """A VPC made by hand, with the given tags."""
    spec = [{"ResourceType": "vpc", "Tags": [{"Key": k, "Value": v} for k, v in vpc_tags.items()]}]
    return emulator.client("ec2").create_vpc(CidrBlock=cidr, TagSpecifications=spec)["Vpc"]["VpcId"]


def test_create_check_mode_and_noop_call_counts(clean_emulator: Emulator) -> None:
    env = clean_emulator.env()
    args = vpc_args()
    wanted_tags = {"Name": NAME, **STACK, "team": "data"}
    igw_tags = {"Name": IGW_NAME, **STACK, "team": "data"}

    reset_recording(clean_emulator)
    planned = run_module(MODULE, args, env=env, check=True, diff=True)
    assert planned["changed"] is True, planned
    # The VPC does not exist: nothing else to read (no attributes, no gateway attached to it), but a gateway
    # left detached by an interrupted run would be reused.
    assert recorded_actions(clean_emulator) == {"DescribeVpcs": 1, "DescribeInternetGateways": 1}
    assert in_aws(clean_emulator) == {}
    assert planned["vpc"] == {
        "id": None,
        "name": NAME,
        "cidr_block": CIDR,
        "dns_support": True,
        "dns_hostnames": True,
        "tags": wanted_tags,
    }
    assert planned["internet_gateway"] == {"id": None, "vpc_id": None, "tags": igw_tags}
    assert planned["diff"]["before"] == {}
    assert planned["diff"]["after"]["vpc"]["id"] is None

    reset_recording(clean_emulator)
    created = run_module(MODULE, args, env=env, diff=True)
    assert created["changed"] is True, created
    # Tagged at creation; DNS support is on in a new VPC, hostnames are set; moto answers `available` at once.
    assert recorded_actions(clean_emulator) == {
        "DescribeVpcs": 1,
        "CreateVpc": 1,
        "ModifyVpcAttribute": 1,
        "DescribeInternetGateways": 1,
        "CreateInternetGateway": 1,
        "AttachInternetGateway": 1,
    }
    aws = in_aws(clean_emulator)
    [(vpc_id, vpc)] = aws.items()
    [igw_id] = vpc["gateways"]
    assert vpc == {
        "cidr": CIDR,
        "dns_support": True,
        "dns_hostnames": True,
        "tags": wanted_tags,
        "gateways": {igw_id: igw_tags},
    }
    assert created["vpc"]["id"] == vpc_id
    assert created["internet_gateway"] == {"id": igw_id, "vpc_id": vpc_id, "tags": igw_tags}
    assert created["diff"]["after"]["internet_gateway"] == {"id": igw_id, "tags": igw_tags}
    assert created["deleted"] == {}

    reset_recording(clean_emulator)
    again = run_module(MODULE, args, env=env, diff=True)
    assert again["changed"] is False, again
    assert recorded_actions(clean_emulator) == READS_OF_A_NOOP
    assert again["vpc"] == created["vpc"]
    assert again["internet_gateway"] == created["internet_gateway"]
    assert again["diff"]["before"] == again["diff"]["after"]

    reset_recording(clean_emulator)
    assert run_module(MODULE, args, env=env, check=True)["changed"] is False
    assert recorded_actions(clean_emulator) == READS_OF_A_NOOP
    assert in_aws(clean_emulator) == aws

    # Without internet_gateway the gateway is left alone and not even read.
    reset_recording(clean_emulator)
    alone = run_module(MODULE, vpc_args(internet_gateway=None), env=env)
    assert alone["changed"] is False, alone
    assert alone["internet_gateway"] == {}
    assert recorded_actions(clean_emulator) == {"DescribeVpcs": 1, "DescribeVpcAttribute": 2}


def test_check_mode_on_an_existing_vpc_changes_nothing(clean_emulator: Emulator) -> None:
    env = clean_emulator.env()
    created = run_module(MODULE, vpc_args(), env=env)
    ec2 = clean_emulator.client("ec2")
    vpc_id, igw_id = created["vpc"]["id"], created["internet_gateway"]["id"]
    ec2.modify_vpc_attribute(VpcId=vpc_id, EnableDnsHostnames={"Value": False})
    ec2.create_tags(Resources=[vpc_id], Tags=[{"Key": "by-hand", "Value": "1"}])
    ec2.detach_internet_gateway(InternetGatewayId=igw_id, VpcId=vpc_id)
    ec2.delete_internet_gateway(InternetGatewayId=igw_id)
    drifted = in_aws(clean_emulator)

    reset_recording(clean_emulator)
    preview = run_module(MODULE, vpc_args(), env=env, check=True, diff=True)
    assert preview["changed"] is True, preview
    assert not writes(recorded_actions(clean_emulator))
    assert in_aws(clean_emulator) == drifted
    assert preview["diff"]["before"]["vpc"]["dns_hostnames"] is False
    assert preview["diff"]["before"]["vpc"]["tags"]["by-hand"] == "1"
    assert preview["diff"]["after"]["vpc"]["dns_hostnames"] is True
    assert "by-hand" not in preview["diff"]["after"]["vpc"]["tags"]
    assert "internet_gateway" not in preview["diff"]["before"]
    assert preview["internet_gateway"]["id"] is None
    assert preview["vpc"]["id"] == vpc_id


def test_dns_attribute_drift_is_repaired(clean_emulator: Emulator) -> None:
    env = clean_emulator.env()
    vpc_id = run_module(MODULE, vpc_args(), env=env)["vpc"]["id"]
    ec2 = clean_emulator.client("ec2")
    ec2.modify_vpc_attribute(VpcId=vpc_id, EnableDnsHostnames={"Value": False})

    reset_recording(clean_emulator)
    repaired = run_module(MODULE, vpc_args(), env=env, diff=True)
    assert repaired["changed"] is True, repaired
    assert recorded_actions(clean_emulator) == READS_OF_A_NOOP + Counter({"ModifyVpcAttribute": 1})
    assert in_aws(clean_emulator)[vpc_id]["dns_hostnames"] is True
    assert repaired["diff"]["before"]["vpc"]["dns_hostnames"] is False
    assert repaired["diff"]["after"]["vpc"]["dns_hostnames"] is True

    # Both off (hostnames first, as AWS wants), then both on again (support first).
    off = run_module(MODULE, vpc_args(dns_support=False, dns_hostnames=False), env=env)
    assert off["changed"] is True, off
    assert (in_aws(clean_emulator)[vpc_id]["dns_support"], in_aws(clean_emulator)[vpc_id]["dns_hostnames"]) == (
        False,
        False,
    )
    assert run_module(MODULE, vpc_args(dns_support=False, dns_hostnames=False), env=env)["changed"] is False
    on = run_module(MODULE, vpc_args(), env=env)
    assert on["changed"] is True, on
    assert (in_aws(clean_emulator)[vpc_id]["dns_support"], in_aws(clean_emulator)[vpc_id]["dns_hostnames"]) == (
        True,
        True,
    )


def test_tags_are_synced_in_place(clean_emulator: Emulator) -> None:
    env = clean_emulator.env()
    created = run_module(MODULE, vpc_args(), env=env)
    vpc_id, igw_id = created["vpc"]["id"], created["internet_gateway"]["id"]
    changed = vpc_args(
        tags={**STACK, "team": "platform"},
        internet_gateway={"name": IGW_NAME, "tags": {"cost": "net"}},
    )

    reset_recording(clean_emulator)
    updated = run_module(MODULE, changed, env=env)
    assert updated["changed"] is True, updated
    # VPC: `team` changed (CreateTags); gateway: `team` removed (DeleteTags), `cost` added (CreateTags).
    assert recorded_actions(clean_emulator) == READS_OF_A_NOOP + Counter({"CreateTags": 2, "DeleteTags": 1})
    aws = in_aws(clean_emulator)
    assert list(aws) == [vpc_id]
    assert aws[vpc_id]["tags"] == {"Name": NAME, **STACK, "team": "platform"}
    assert aws[vpc_id]["gateways"] == {igw_id: {"Name": IGW_NAME, **STACK, "cost": "net"}}
    assert updated["internet_gateway"]["tags"] == {"Name": IGW_NAME, **STACK, "cost": "net"}
    assert run_module(MODULE, changed, env=env)["changed"] is False

    # Tags not given: the others stay, the name and owner tags are ensured; purge_tags=false only adds.
    gateway = changed["internet_gateway"]
    assert run_module(MODULE, vpc_args(tags=None, internet_gateway=gateway), env=env)["changed"] is False
    kept = run_module(MODULE, vpc_args(tags={"extra": "1"}, purge_tags=False, internet_gateway=gateway), env=env)
    assert kept["changed"] is True
    assert in_aws(clean_emulator)[vpc_id]["tags"] == {"Name": NAME, **STACK, "team": "platform", "extra": "1"}


def test_internet_gateway_deleted_out_of_band_is_recreated(clean_emulator: Emulator) -> None:
    env = clean_emulator.env()
    created = run_module(MODULE, vpc_args(), env=env)
    vpc_id, igw_id = created["vpc"]["id"], created["internet_gateway"]["id"]
    ec2 = clean_emulator.client("ec2")
    ec2.detach_internet_gateway(InternetGatewayId=igw_id, VpcId=vpc_id)
    ec2.delete_internet_gateway(InternetGatewayId=igw_id)

    reset_recording(clean_emulator)
    repaired = run_module(MODULE, vpc_args(), env=env)
    assert repaired["changed"] is True, repaired
    assert recorded_actions(clean_emulator) == READS_OF_A_NOOP + Counter(
        {"DescribeInternetGateways": 1, "CreateInternetGateway": 1, "AttachInternetGateway": 1}
    )
    [(new_id, new_tags)] = in_aws(clean_emulator)[vpc_id]["gateways"].items()
    assert new_id != igw_id
    assert new_tags == {"Name": IGW_NAME, **STACK, "team": "data"}
    assert repaired["internet_gateway"] == {"id": new_id, "vpc_id": vpc_id, "tags": new_tags}
    assert run_module(MODULE, vpc_args(), env=env)["changed"] is False


def test_a_detached_gateway_of_the_stack_is_attached_again_not_duplicated(clean_emulator: Emulator) -> None:
    env = clean_emulator.env()
    created = run_module(MODULE, vpc_args(), env=env)
    vpc_id, igw_id = created["vpc"]["id"], created["internet_gateway"]["id"]
    clean_emulator.client("ec2").detach_internet_gateway(InternetGatewayId=igw_id, VpcId=vpc_id)

    reset_recording(clean_emulator)
    repaired = run_module(MODULE, vpc_args(), env=env)
    assert repaired["changed"] is True, repaired
    assert recorded_actions(clean_emulator) == READS_OF_A_NOOP + Counter(
        {"DescribeInternetGateways": 1, "AttachInternetGateway": 1}
    )
    assert all_gateways(clean_emulator) == {igw_id: [vpc_id]}
    assert repaired["internet_gateway"]["id"] == igw_id


def test_cidr_change_is_refused_before_any_write(clean_emulator: Emulator) -> None:
    env = clean_emulator.env()
    vpc_id = run_module(MODULE, vpc_args(), env=env)["vpc"]["id"]
    before = in_aws(clean_emulator)
    # Everything else differs too: nothing of it may be changed.
    args = vpc_args(cidr_block="10.50.0.0/16", dns_hostnames=False, tags={"other": "tag"})

    for check in (True, False):
        reset_recording(clean_emulator)
        refused = run_module(MODULE, args, env=env, check=check)
        assert refused.get("failed") is True, refused
        assert refused["msg"].startswith(f"VPC {vpc_id} ({NAME}) has the range {CIDR}, not 10.50.0.0/16")
        assert "cannot change" in refused["msg"] and "Nothing was changed" in refused["msg"]
        assert recorded_actions(clean_emulator) == {"DescribeVpcs": 1}
        assert in_aws(clean_emulator) == before


def test_duplicate_vpcs_are_refused_with_their_ids(clean_emulator: Emulator) -> None:
    env = clean_emulator.env()
    first = make_vpc(clean_emulator, {"Name": NAME, **STACK})
    second = make_vpc(clean_emulator, {"Name": NAME, **STACK, "extra": "x"}, cidr="10.41.0.0/16")
    # Not the stack's: another stack's VPC of the same name, a VPC of the same name without the tag.
    make_vpc(clean_emulator, {"Name": NAME, "airflow-ecs:stack": "u"})
    make_vpc(clean_emulator, {"Name": NAME})
    before = in_aws(clean_emulator)
    ids = ", ".join(sorted([first, second]))

    for args in (vpc_args(), vpc_args(state="absent")):
        reset_recording(clean_emulator)
        refused = run_module(MODULE, args, env=env)
        assert refused.get("failed") is True, refused
        assert f"2 VPCs carry the name {NAME} and the owner tags" in refused["msg"]
        assert ids in refused["msg"] and "Nothing was changed" in refused["msg"]
        assert recorded_actions(clean_emulator) == {"DescribeVpcs": 1}
        assert in_aws(clean_emulator) == before

    # The other owners' VPCs of the same name do not count: with one of ours gone, it is found and used.
    clean_emulator.client("ec2").delete_vpc(VpcId=second)
    found = run_module(MODULE, vpc_args(), env=env)
    assert found["changed"] is True and found["vpc"]["id"] == first, found
    assert len(in_aws(clean_emulator)) == 3


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"owner_tags": {}}, "owner_tags names no tag"),
        ({"owner_tags": {**STACK, "Name": NAME}}, "owner_tags may not hold Name"),
        ({"cidr_block": "10.40.0.1/16"}, "has host bits set (did you mean 10.40.0.0/16?)"),
        ({"cidr_block": "10.32.0.0/12"}, "a VPC's range is /16 to /28"),
        ({"cidr_block": "nope"}, "cidr_block 'nope' is not a CIDR block"),
        ({"cidr_block": None}, "cidr_block is needed with state=present"),
        ({"dns_support": False}, "dns_hostnames needs dns_support"),
        ({"tags": {"Name": "other"}}, "tags gives Name='other', but Name is 't-vpc'"),
        ({"tags": {"airflow-ecs:stack": "u"}}, "tags gives airflow-ecs:stack='u', but airflow-ecs:stack is 't'"),
        ({"internet_gateway": {"name": IGW_NAME, "tags": {"Name": "x"}}}, "internet_gateway.tags gives Name='x'"),
        ({"vpc_id": "vpc-12345678"}, "vpc_id is only for state=absent"),
    ],
)
def test_bad_input_is_refused_before_any_call(clean_emulator: Emulator, overrides: dict, message: str) -> None:
    reset_recording(clean_emulator)
    refused = run_module(MODULE, vpc_args(**overrides), env=clean_emulator.env())
    assert refused.get("failed") is True, refused
    assert message in refused["msg"] and "Nothing was changed" in refused["msg"], refused["msg"]
    assert recorded_actions(clean_emulator) == {}


def test_absent_deletes_the_gateway_then_the_vpc(clean_emulator: Emulator) -> None:
    env = clean_emulator.env()
    created = run_module(MODULE, vpc_args(), env=env)
    vpc_id, igw_id = created["vpc"]["id"], created["internet_gateway"]["id"]
    # A gateway of the stack left detached by an interrupted teardown goes too; another stack's VPC stays.
    ec2 = clean_emulator.client("ec2")
    igw_tags = [{"Key": k, "Value": v} for k, v in {"Name": IGW_NAME, **STACK}.items()]
    leftover = ec2.create_internet_gateway(TagSpecifications=[{"ResourceType": "internet-gateway", "Tags": igw_tags}])
    leftover_id = leftover["InternetGateway"]["InternetGatewayId"]
    other = make_vpc(clean_emulator, {"Name": NAME, "airflow-ecs:stack": "u"})
    absent = {"name": NAME, "owner_tags": STACK, "internet_gateway": {"name": IGW_NAME}, "state": "absent"}

    reset_recording(clean_emulator)
    plan = run_module(MODULE, absent, env=env, check=True, diff=True)
    assert plan["changed"] is True, plan
    assert recorded_actions(clean_emulator) == {"DescribeVpcs": 1, "DescribeInternetGateways": 2}
    assert plan["deleted"] == {"vpc": vpc_id, "internet_gateways": [igw_id, leftover_id]}
    assert plan["diff"]["before"]["vpc"]["id"] == vpc_id and plan["diff"]["after"] == {}
    assert set(in_aws(clean_emulator)) == {vpc_id, other}
    assert set(all_gateways(clean_emulator)) == {igw_id, leftover_id}

    reset_recording(clean_emulator)
    deleted = run_module(MODULE, absent, env=env)
    assert deleted["changed"] is True, deleted
    assert recorded_actions(clean_emulator) == {
        "DescribeVpcs": 1,
        "DescribeInternetGateways": 2,
        "DetachInternetGateway": 1,
        "DeleteInternetGateway": 2,
        "DeleteVpc": 1,
    }
    assert deleted["deleted"] == plan["deleted"]
    assert deleted["vpc"] == {} and deleted["internet_gateway"] == {}
    assert set(in_aws(clean_emulator)) == {other}
    assert all_gateways(clean_emulator) == {}

    reset_recording(clean_emulator)
    again = run_module(MODULE, absent, env=env)
    assert again["changed"] is False, again
    assert again["deleted"] == {"vpc": None, "internet_gateways": []}
    assert recorded_actions(clean_emulator) == {"DescribeVpcs": 1, "DescribeInternetGateways": 1}


def test_absent_by_id_as_the_role_calls_it(clean_emulator: Emulator) -> None:
    env = clean_emulator.env()
    vpc_id = run_module(MODULE, vpc_args(), env=env)["vpc"]["id"]
    other = make_vpc(clean_emulator, {"Name": NAME, "airflow-ecs:stack": "u"})
    by_id = {"vpc_id": vpc_id, "name": NAME, "owner_tags": STACK, "state": "absent"}

    # Another owner's VPC named by id is refused, before any write.
    reset_recording(clean_emulator)
    refused = run_module(MODULE, {**by_id, "vpc_id": other}, env=env)
    assert refused.get("failed") is True, refused
    assert f"VPC {other} does not carry the name {NAME} and the owner tags" in refused["msg"]
    assert recorded_actions(clean_emulator) == {"DescribeVpcs": 1}

    deleted = run_module(MODULE, by_id, env=env)
    assert deleted["changed"] is True, deleted
    assert set(in_aws(clean_emulator)) == {other}
    assert all_gateways(clean_emulator) == {}
    gone = run_module(MODULE, by_id, env=env)
    assert gone["changed"] is False and gone.get("failed") is not True, gone


def test_absent_leaves_a_gateway_it_does_not_own_and_the_vpc(clean_emulator: Emulator) -> None:
    env = clean_emulator.env()
    vpc_id = run_module(MODULE, vpc_args(internet_gateway=None), env=env)["vpc"]["id"]
    ec2 = clean_emulator.client("ec2")
    theirs = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    ec2.attach_internet_gateway(InternetGatewayId=theirs, VpcId=vpc_id)

    reset_recording(clean_emulator)
    refused = run_module(MODULE, {"name": NAME, "owner_tags": STACK, "state": "absent"}, env=env)
    assert refused.get("failed") is True, refused
    assert f"Internet gateway {theirs} attached to VPC {vpc_id} does not carry the owner tags" in refused["msg"]
    assert not writes(recorded_actions(clean_emulator))
    assert all_gateways(clean_emulator) == {theirs: [vpc_id]}
    assert set(in_aws(clean_emulator)) == {vpc_id}


def test_absent_names_what_still_holds_the_vpc(clean_emulator: Emulator) -> None:
    env = clean_emulator.env()
    created = run_module(MODULE, vpc_args(), env=env)
    vpc_id = created["vpc"]["id"]
    clean_emulator.client("ec2").create_subnet(VpcId=vpc_id, CidrBlock="10.40.99.0/24")

    failed = run_module(MODULE, {"name": NAME, "owner_tags": STACK, "state": "absent"}, env=env)
    assert failed.get("failed") is True, failed
    assert failed["msg"].startswith(f"Cannot delete VPC {vpc_id} ({NAME}): it still holds subnets"), failed["msg"]
    assert failed["changed"] is True  # its gateway was deleted
    assert all_gateways(clean_emulator) == {}
    assert set(in_aws(clean_emulator)) == {vpc_id}


def test_the_recorder_counts_api_calls(emulator: Emulator) -> None:
    """The call counts above rest on moto's recorder: one boto3 call, one recorded action."""
    reset_recording(emulator)
    emulator.client("ec2").describe_vpcs()
    assert recorded_actions(emulator) == {"DescribeVpcs": 1}
