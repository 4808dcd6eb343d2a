"""library/ec2_vpc_subnets.py against a moto server, through the real `ansible` CLI.

This file starts a moto server of its own, with moto's request recorder on, so that the tests can count
the API calls of a run (the recorder writes every request, body included, to a file).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import pytest
from ansible_runner import run_module
from emulator import Emulator
from in_use import InUseClient, ModuleFailed, StubModule
from recording import recorded_actions, reset_recording, start_recording_emulator

MODULE = "ec2_vpc_subnets"
AZ_A, AZ_B = "us-east-1a", "us-east-1b"
PUBLIC_A, PUBLIC_B, PRIVATE_A, PRIVATE_B = "10.20.0.0/24", "10.20.1.0/24", "10.20.10.0/24", "10.20.11.0/24"
STACK = {"airflow-ecs:stack": "t"}


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    """This module's moto server (overrides the session one), recording every request to a file."""
    server = start_recording_emulator(tmp_path_factory.mktemp("moto_subnets"))
    yield server
    server.stop()


def subnets_args(vpc_id: str, **overrides: Any) -> dict[str, Any]:
    """2 public + 2 private subnets in 2 AZs, with the stack tag; map_public on the first one only."""
    subnets = [
        {"cidr": cidr, "az": az, "tags": {"Name": f"t-{tier}-{az}", "tier": tier, **STACK}}
        for tier, az, cidr in (
            ("public", AZ_A, PUBLIC_A),
            ("public", AZ_B, PUBLIC_B),
            ("private", AZ_A, PRIVATE_A),
            ("private", AZ_B, PRIVATE_B),
        )
    ]
    subnets[0]["map_public"] = True
    return {"vpc_id": vpc_id, "subnets": subnets, **overrides}


def in_aws(emulator: Emulator, vpc_id: str) -> dict[str, dict]:
    """What EC2 says: per CIDR block, the subnet's id, zone, public IP setting and tags."""
    found = emulator.client("ec2").describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["Subnets"]
    return {
        s["CidrBlock"]: {
            "id": s["SubnetId"],
            "az": s["AvailabilityZone"],
            "map_public": s["MapPublicIpOnLaunch"],
            "tags": {t["Key"]: t["Value"] for t in s.get("Tags", [])},
        }
        for s in found
    }


def test_create_check_mode_and_idempotence(clean_emulator: Emulator, vpc_id: str) -> None:
    env = clean_emulator.env()
    args = subnets_args(vpc_id)

    reset_recording(clean_emulator)
    planned = run_module(MODULE, args, env=env, check=True, diff=True)
    assert planned["changed"] is True, planned
    assert recorded_actions(clean_emulator) == {"DescribeSubnets": 1}
    assert in_aws(clean_emulator, vpc_id) == {}
    assert [s["cidr"] for s in planned["subnets"]] == [PUBLIC_A, PUBLIC_B, PRIVATE_A, PRIVATE_B]
    assert all(s["id"] is None for s in planned["subnets"])
    assert planned["subnets"][0] == {
        "id": None,
        "cidr": PUBLIC_A,
        "az": AZ_A,
        "map_public": True,
        "tags": {"Name": f"t-public-{AZ_A}", "tier": "public", **STACK},
    }
    assert planned["diff"]["before"] == {}
    assert set(planned["diff"]["after"]) == {PUBLIC_A, PUBLIC_B, PRIVATE_A, PRIVATE_B}

    reset_recording(clean_emulator)
    created = run_module(MODULE, args, env=env, diff=True)
    assert created["changed"] is True, created
    # 1 describe, 4 creates (tagged at creation), 1 attribute change; moto answers `available` at once.
    assert recorded_actions(clean_emulator) == {"DescribeSubnets": 1, "CreateSubnet": 4, "ModifySubnetAttribute": 1}
    aws = in_aws(clean_emulator, vpc_id)
    assert set(aws) == {PUBLIC_A, PUBLIC_B, PRIVATE_A, PRIVATE_B}
    for wanted in args["subnets"]:
        subnet = aws[wanted["cidr"]]
        assert subnet["az"] == wanted["az"]
        assert subnet["tags"] == wanted["tags"]
        assert subnet["map_public"] is (wanted["cidr"] == PUBLIC_A)
    assert [s["id"] for s in created["subnets"]] == [aws[c]["id"] for c in (PUBLIC_A, PUBLIC_B, PRIVATE_A, PRIVATE_B)]
    assert [s["map_public"] for s in created["subnets"]] == [True, False, False, False]
    assert created["diff"]["after"][PRIVATE_B]["id"] == aws[PRIVATE_B]["id"]
    assert created["deleted"] == []

    reset_recording(clean_emulator)
    again = run_module(MODULE, args, env=env, diff=True)
    assert again["changed"] is False, again
    assert recorded_actions(clean_emulator) == {"DescribeSubnets": 1}
    assert again["subnets"] == created["subnets"]
    assert again["diff"]["before"] == again["diff"]["after"]
    assert run_module(MODULE, args, env=env, check=True)["changed"] is False
    assert in_aws(clean_emulator, vpc_id) == aws


def test_tags_and_map_public_are_synced_in_place(clean_emulator: Emulator, vpc_id: str) -> None:
    env = clean_emulator.env()
    created = run_module(MODULE, subnets_args(vpc_id), env=env)
    aws = in_aws(clean_emulator, vpc_id)

    changed_args = subnets_args(vpc_id)
    public_a, public_b, private_a, private_b = changed_args["subnets"]
    public_a["map_public"] = False
    public_b["map_public"] = True
    private_a["tags"] = {"Name": "renamed", "owner": "me"}  # `tier` and the stack tag purged, `owner` added
    del private_b["tags"]  # not given: left alone
    preview = run_module(MODULE, changed_args, env=env, check=True, diff=True)
    assert preview["changed"] is True, preview
    assert in_aws(clean_emulator, vpc_id) == aws
    assert preview["diff"]["before"][PRIVATE_A]["tags"] == {
        "Name": f"t-private-{AZ_A}",
        "tier": "private",
        **STACK,
    }
    assert preview["diff"]["after"][PRIVATE_A]["tags"] == {"Name": "renamed", "owner": "me"}
    assert [s["map_public"] for s in preview["subnets"]] == [False, True, False, False]

    reset_recording(clean_emulator)
    updated = run_module(MODULE, changed_args, env=env)
    assert updated["changed"] is True, updated
    assert recorded_actions(clean_emulator) == {
        "DescribeSubnets": 1,
        "ModifySubnetAttribute": 2,
        "DeleteTags": 1,
        "CreateTags": 1,
    }
    after = in_aws(clean_emulator, vpc_id)
    assert {cidr: s["id"] for cidr, s in after.items()} == {cidr: s["id"] for cidr, s in aws.items()}
    assert after[PUBLIC_A]["map_public"] is False
    assert after[PUBLIC_B]["map_public"] is True
    assert after[PRIVATE_A]["tags"] == {"Name": "renamed", "owner": "me"}
    assert after[PRIVATE_B]["tags"] == aws[PRIVATE_B]["tags"]
    assert updated["subnets"][3]["tags"] == aws[PRIVATE_B]["tags"]
    assert [s["id"] for s in updated["subnets"]] == [s["id"] for s in created["subnets"]]
    assert run_module(MODULE, changed_args, env=env)["changed"] is False

    # purge_tags=false only adds.
    private_a["tags"] = {"extra": "1"}
    kept = run_module(MODULE, {**changed_args, "purge_tags": False}, env=env)
    assert kept["changed"] is True
    assert in_aws(clean_emulator, vpc_id)[PRIVATE_A]["tags"] == {"Name": "renamed", "owner": "me", "extra": "1"}


def test_az_mismatch_and_bad_input_are_refused_before_any_change(clean_emulator: Emulator, vpc_id: str) -> None:
    env = clean_emulator.env()
    run_module(MODULE, {"vpc_id": vpc_id, "subnets": [{"cidr": PUBLIC_A, "az": AZ_A}]}, env=env)
    aws = in_aws(clean_emulator, vpc_id)

    moved = {"vpc_id": vpc_id, "subnets": [{"cidr": PRIVATE_A, "az": AZ_A}, {"cidr": PUBLIC_A, "az": AZ_B}]}
    result = run_module(MODULE, moved, env=env)
    assert result.get("failed") is True, result
    assert f"subnet {PUBLIC_A} ({aws[PUBLIC_A]['id']}) exists in availability zone {AZ_A}, not {AZ_B}" in result["msg"]
    assert "cannot move" in result["msg"] and "Nothing was changed" in result["msg"]
    assert in_aws(clean_emulator, vpc_id) == aws  # PRIVATE_A, listed first, was not created either

    no_az = run_module(MODULE, {"vpc_id": vpc_id, "subnets": [{"cidr": PRIVATE_A}]}, env=env)
    assert no_az.get("failed") is True and "az is needed to create it" in no_az["msg"], no_az
    # An existing subnet may be listed without its zone.
    assert run_module(MODULE, {"vpc_id": vpc_id, "subnets": [{"cidr": PUBLIC_A}]}, env=env)["changed"] is False

    for subnets, message in (
        ([{"cidr": "10.20.0.1/24", "az": AZ_A}], "has host bits set; did you mean 10.20.0.0/24?"),
        ([{"cidr": "nope", "az": AZ_A}], "'nope' is not a CIDR block"),
        ([{"cidr": PRIVATE_A, "az": AZ_A}, {"cidr": PRIVATE_A, "az": AZ_B}], "names the same CIDR block twice"),
    ):
        bad = run_module(MODULE, {"vpc_id": vpc_id, "subnets": subnets}, env=env)
        assert bad.get("failed") is True and message in bad["msg"], bad
    assert in_aws(clean_emulator, vpc_id) == aws


def make_subnet(emulator: Emulator, vpc_id: str, cidr: str, tags: dict[str, str]) -> str:
    """A subnet made by hand (another owner's, as far as the module knows, unless it has the stack tag)."""
    spec = [{"ResourceType": "subnet", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}] if tags else []
    ec2 = emulator.client("ec2")
    return ec2.create_subnet(VpcId=vpc_id, CidrBlock=cidr, AvailabilityZone=AZ_A, TagSpecifications=spec)["Subnet"][
        "SubnetId"
    ]


def test_absent_listed_subnets(clean_emulator: Emulator, vpc_id: str) -> None:
    env = clean_emulator.env()
    run_module(MODULE, subnets_args(vpc_id), env=env)
    aws = in_aws(clean_emulator, vpc_id)

    listed = {"vpc_id": vpc_id, "subnets": [{"cidr": PUBLIC_A}, {"cidr": "10.20.99.0/24"}], "state": "absent"}
    plan = run_module(MODULE, listed, env=env, check=True, diff=True)
    assert plan["changed"] is True, plan
    assert plan["diff"] == {"before": {PUBLIC_A: {**aws[PUBLIC_A]}}, "after": {}}
    assert plan["deleted"] == [{"id": aws[PUBLIC_A]["id"], "cidr": PUBLIC_A}]
    assert in_aws(clean_emulator, vpc_id) == aws
    deleted = run_module(MODULE, listed, env=env)
    assert deleted["changed"] is True, deleted
    assert deleted["subnets"] == []
    assert deleted["deleted"] == [{"id": aws[PUBLIC_A]["id"], "cidr": PUBLIC_A}]
    assert set(in_aws(clean_emulator, vpc_id)) == {PUBLIC_B, PRIVATE_A, PRIVATE_B}
    again = run_module(MODULE, listed, env=env)
    assert again["changed"] is False, again
    assert again["deleted"] == []


def test_absent_by_owner_tags_deletes_only_the_stack_subnets(clean_emulator: Emulator, vpc_id: str) -> None:
    env = clean_emulator.env()
    ec2 = clean_emulator.client("ec2")
    run_module(MODULE, subnets_args(vpc_id), env=env)
    ours = in_aws(clean_emulator, vpc_id)
    # Subnets of other owners in the same VPC stay: made by hand (named, and untagged), another stack's.
    make_subnet(clean_emulator, vpc_id, "10.20.20.0/24", {"Name": "by-hand"})
    make_subnet(clean_emulator, vpc_id, "10.20.21.0/24", {})
    make_subnet(clean_emulator, vpc_id, "10.20.22.0/24", {"Name": "foreign", "airflow-ecs:stack": "u"})
    theirs = {cidr: s for cidr, s in in_aws(clean_emulator, vpc_id).items() if cidr not in ours}
    assert set(theirs) == {"10.20.20.0/24", "10.20.21.0/24", "10.20.22.0/24"}
    # The same CIDR block with the stack tag in another VPC: not in this VPC, so untouched.
    other_vpc = ec2.create_vpc(CidrBlock="10.20.0.0/16")["Vpc"]["VpcId"]
    other = make_subnet(clean_emulator, other_vpc, PUBLIC_A, STACK)
    absent = {"vpc_id": vpc_id, "purge_owned_by": STACK, "state": "absent"}

    reset_recording(clean_emulator)
    plan = run_module(MODULE, absent, env=env, check=True, diff=True)
    assert plan["changed"] is True, plan
    assert recorded_actions(clean_emulator) == {"DescribeSubnets": 1}
    ordered = [PUBLIC_A, PUBLIC_B, PRIVATE_A, PRIVATE_B]
    assert plan["deleted"] == [{"id": ours[cidr]["id"], "cidr": cidr} for cidr in ordered]
    assert plan["diff"] == {"before": ours, "after": {}}
    assert in_aws(clean_emulator, vpc_id) == ours | theirs

    reset_recording(clean_emulator)
    deleted = run_module(MODULE, absent, env=env, diff=True)
    assert deleted["changed"] is True, deleted
    assert recorded_actions(clean_emulator) == {"DescribeSubnets": 1, "DeleteSubnet": 4}
    assert deleted["deleted"] == plan["deleted"]
    assert in_aws(clean_emulator, vpc_id) == theirs
    assert in_aws(clean_emulator, other_vpc)[PUBLIC_A]["id"] == other

    reset_recording(clean_emulator)
    again = run_module(MODULE, absent, env=env)
    assert again["changed"] is False, again
    assert again["deleted"] == []
    assert recorded_actions(clean_emulator) == {"DescribeSubnets": 1}
    assert in_aws(clean_emulator, vpc_id) == theirs
    # A VPC that is gone already (a teardown run twice): nothing to do, no error.
    for subnet in theirs.values():
        ec2.delete_subnet(SubnetId=subnet["id"])
    ec2.delete_vpc(VpcId=vpc_id)
    assert run_module(MODULE, absent, env=env)["changed"] is False


@pytest.mark.parametrize("state", ["absent", "present"])
def test_purge_without_owner_tags_is_refused(clean_emulator: Emulator, vpc_id: str, state: str) -> None:
    """The issue: `all_in_vpc: true` deleted every subnet of the VPC, one made by hand too."""
    env = clean_emulator.env()
    run_module(MODULE, subnets_args(vpc_id), env=env)
    make_subnet(clean_emulator, vpc_id, "10.20.20.0/24", {"Name": "by-hand"})
    make_subnet(clean_emulator, vpc_id, "10.20.21.0/24", {})
    before = in_aws(clean_emulator, vpc_id)
    args = subnets_args(vpc_id, purge_owned_by={}, state=state)
    if state == "absent":
        args["subnets"] = []

    for check in (True, False):
        reset_recording(clean_emulator)
        refused = run_module(MODULE, args, env=env, check=check)
        assert refused.get("failed") is True, refused
        assert refused["msg"] == (
            "purge_owned_by names no tag: give the tags that mark the subnets this run owns (such as the stack tag "
            "airflow-ecs:stack); with none, every subnet of the VPC would count as owned. Nothing was changed."
        )
        assert recorded_actions(clean_emulator) == {}  # refused before any call
        assert in_aws(clean_emulator, vpc_id) == before


def test_purge_when_present_deletes_only_owned_unlisted_subnets(clean_emulator: Emulator, vpc_id: str) -> None:
    env = clean_emulator.env()
    run_module(MODULE, subnets_args(vpc_id), env=env)
    by_hand = make_subnet(clean_emulator, vpc_id, "10.20.20.0/24", {"Name": "by-hand"})
    foreign = make_subnet(clean_emulator, vpc_id, "10.20.22.0/24", {"Name": "foreign", "airflow-ecs:stack": "u"})
    before = in_aws(clean_emulator, vpc_id)

    # The two private /24 blocks give way to one /23 over both: they are deleted before it is created.
    merged = "10.20.10.0/23"
    args = subnets_args(vpc_id, purge_owned_by=STACK)
    public_a, public_b, _, _ = args["subnets"]
    args["subnets"] = [public_a, public_b, {"cidr": merged, "az": AZ_A, "tags": {"Name": "t-private", **STACK}}]
    purged = [{"id": before[cidr]["id"], "cidr": cidr} for cidr in (PRIVATE_A, PRIVATE_B)]

    reset_recording(clean_emulator)
    preview = run_module(MODULE, args, env=env, check=True, diff=True)
    assert preview["changed"] is True, preview
    assert recorded_actions(clean_emulator) == {"DescribeSubnets": 1}
    assert preview["deleted"] == purged
    assert set(preview["diff"]["before"]) == {PUBLIC_A, PUBLIC_B, PRIVATE_A, PRIVATE_B}
    assert set(preview["diff"]["after"]) == {PUBLIC_A, PUBLIC_B, merged}
    assert in_aws(clean_emulator, vpc_id) == before

    reset_recording(clean_emulator)
    done = run_module(MODULE, args, env=env)
    assert done["changed"] is True, done
    assert recorded_actions(clean_emulator) == {"DescribeSubnets": 1, "DeleteSubnet": 2, "CreateSubnet": 1}
    assert done["deleted"] == purged
    after = in_aws(clean_emulator, vpc_id)
    assert set(after) == {PUBLIC_A, PUBLIC_B, merged, "10.20.20.0/24", "10.20.22.0/24"}
    assert {cidr: after[cidr] for cidr in (PUBLIC_A, PUBLIC_B)} == {cidr: before[cidr] for cidr in (PUBLIC_A, PUBLIC_B)}
    assert after["10.20.20.0/24"] == before["10.20.20.0/24"] and after["10.20.20.0/24"]["id"] == by_hand
    assert after["10.20.22.0/24"] == before["10.20.22.0/24"] and after["10.20.22.0/24"]["id"] == foreign
    assert [s["id"] for s in done["subnets"]] == [after[cidr]["id"] for cidr in (PUBLIC_A, PUBLIC_B, merged)]

    reset_recording(clean_emulator)
    again = run_module(MODULE, args, env=env)
    assert again["changed"] is False, again
    assert again["deleted"] == []
    assert recorded_actions(clean_emulator) == {"DescribeSubnets": 1}
    assert in_aws(clean_emulator, vpc_id) == after


# --- A subnet still in use: moto deletes it anyway, so a stub client gives AWS's DependencyViolation ---


def test_absent_fails_clearly_when_a_subnet_is_still_in_use(
    clean_emulator: Emulator, vpc_id: str, load_library_module: Callable[[str], ModuleType]
) -> None:
    ec2 = clean_emulator.client("ec2")
    first = make_subnet(clean_emulator, vpc_id, PUBLIC_A, STACK)
    busy = make_subnet(clean_emulator, vpc_id, PUBLIC_B, STACK)
    library = load_library_module(MODULE)
    module = StubModule({"vpc_id": vpc_id, "subnets": [], "purge_owned_by": STACK, "state": "absent"})
    with pytest.raises(ModuleFailed) as failed:
        library.ensure_absent(module, InUseClient(ec2, "delete_subnet", "SubnetId", busy))
    message, extra = failed.value.args
    assert f"Cannot delete subnet {busy} ({PUBLIC_B}) of VPC {vpc_id}: it still holds network interfaces" in message
    assert "DependencyViolation" in message
    assert extra == {"changed": True}  # the first subnet was deleted
    left = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["Subnets"]
    assert [s["SubnetId"] for s in left] == [busy]
    assert first not in [s["SubnetId"] for s in left]


def test_the_recorder_counts_api_calls(emulator: Emulator) -> None:
    """The call counts above rest on moto's recorder: one boto3 call, one recorded action."""
    reset_recording(emulator)
    emulator.client("ec2").describe_vpcs()
    assert recorded_actions(emulator) == {"DescribeVpcs": 1}
