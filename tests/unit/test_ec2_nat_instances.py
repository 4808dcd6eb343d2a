"""library/ec2_nat_instances.py against a moto server, through the real `ansible` CLI.

This file starts a moto server of its own with moto's request recorder on, so that the tests can count the
EC2 calls of a run (the recorder names an EC2 Query action by its body; the one SSM call, a JSON request,
shows as "?").
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from ansible_runner import run_module
from emulator import Emulator
from recording import recorded_actions, reset_recording, start_recording_emulator

MODULE = "ec2_nat_instances"
OWNER = {"airflow-ecs:stack": "t", "airflow-ecs:tier": "nat"}
NAMES = ("t-nat-us-east-1a", "t-nat-us-east-1b")
PARAMETER = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-arm64"
OTHER_PARAMETER = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-6.1-arm64"
USER_DATA = "#!/bin/bash\necho 1 > /proc/sys/net/ipv4/ip_forward\n"
READS = Counter({"DescribeInstances": 1, "DescribeAddresses": 1})
WRITES = {
    "RunInstances",
    "TerminateInstances",
    "StopInstances",
    "StartInstances",
    "ModifyInstanceAttribute",
    "ModifyInstanceMetadataOptions",
    "AllocateAddress",
    "AssociateAddress",
    "DisassociateAddress",
    "ReleaseAddress",
    "CreateTags",
    "DeleteTags",
}


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    """This module's moto server (overrides the session one), recording every request to a file."""
    server = start_recording_emulator(tmp_path_factory.mktemp("moto_nat"))
    yield server
    server.stop()


@pytest.fixture
def network(clean_emulator: Emulator) -> dict[str, Any]:
    """A VPC with a public subnet in each of two AZs and the NAT instances' security group."""
    ec2 = clean_emulator.client("ec2")
    vpc_id = ec2.create_vpc(CidrBlock="10.40.0.0/16")["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(VpcId=vpc_id, CidrBlock=f"10.40.{i}.0/24", AvailabilityZone=az)["Subnet"]["SubnetId"]
        for i, az in enumerate(("us-east-1a", "us-east-1b"))
    ]
    group = ec2.create_security_group(VpcId=vpc_id, GroupName="t-nat", Description="NAT")["GroupId"]
    other = ec2.create_security_group(VpcId=vpc_id, GroupName="t-other", Description="other")["GroupId"]
    return {"vpc_id": vpc_id, "subnets": subnets, "group": group, "other_group": other}


def nat_args(network: dict[str, Any], count: int = 1, **overrides: Any) -> dict[str, Any]:
    """The network role's call: one NAT instance (or one per AZ) with the stack's tags."""
    return {
        "vpc_id": network["vpc_id"],
        "owner_tags": OWNER,
        "instances": [{"name": NAMES[i], "subnet_id": network["subnets"][i]} for i in range(count)],
        "instance_type": "t4g.nano",
        "security_groups": [network["group"]],
        "user_data": USER_DATA,
        "tags": {"airflow-ecs:stack": "t", "team": "data"},
        **overrides,
    }


def writes(actions: Counter[str]) -> set[str]:
    return set(actions) & WRITES


def tags(resource: dict) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in resource.get("Tags") or []}


def live_instances(emulator: Emulator) -> dict[str, dict]:
    """Every instance not terminated: id -> what EC2 says of it."""
    ec2 = emulator.client("ec2")
    filters = [{"Name": "instance-state-name", "Values": ["pending", "running", "stopping", "stopped"]}]
    reservations = ec2.describe_instances(Filters=filters)["Reservations"]
    return {i["InstanceId"]: i for r in reservations for i in r["Instances"]}


def addresses(emulator: Emulator) -> dict[str, dict]:
    """Every Elastic IP: public IP -> its tags and the instance it is associated with."""
    return {
        a["PublicIp"]: {"name": tags(a).get("Name"), "instance": a.get("InstanceId"), "tags": tags(a)}
        for a in emulator.client("ec2").describe_addresses()["Addresses"]
    }


def test_create_check_mode_and_noop_call_counts(clean_emulator: Emulator, network: dict[str, Any]) -> None:
    env = clean_emulator.env()
    args = nat_args(network)
    wanted_tags = {"Name": NAMES[0], **OWNER, "team": "data"}

    reset_recording(clean_emulator)
    planned = run_module(MODULE, args, env=env, check=True, diff=True)
    assert planned["changed"] is True, planned
    # Nothing launched, and no image resolved for it.
    assert recorded_actions(clean_emulator) == READS
    assert live_instances(clean_emulator) == {} and addresses(clean_emulator) == {}
    [plan] = planned["instances"]
    assert plan["id"] is None and plan["network_interface_id"] is None and plan["public_ip"] is None
    assert plan["subnet_id"] == network["subnets"][0] and plan["security_groups"] == [network["group"]]
    assert plan["tags"] == wanted_tags
    assert planned["diff"]["before"] == {} and planned["diff"]["after"][NAMES[0]]["id"] is None

    reset_recording(clean_emulator)
    created = run_module(MODULE, args, env=env, diff=True)
    assert created["changed"] is True, created
    # The image once (SSM GetParameters, shown as "?", and DescribeImages), then launched, waited for until it
    # runs, its source/destination check turned off, an address allocated and associated, and read back.
    assert recorded_actions(clean_emulator) == READS + Counter(
        {
            "?": 1,
            "DescribeImages": 1,
            "RunInstances": 1,
            "DescribeInstances": 2,
            "ModifyInstanceAttribute": 1,
            "AllocateAddress": 1,
            "AssociateAddress": 1,
        }
    )
    [instance] = live_instances(clean_emulator).values()
    image = clean_emulator.client("ssm").get_parameters(Names=[PARAMETER])["Parameters"][0]["Value"]
    assert instance["ImageId"] == image
    assert instance["InstanceType"] == "t4g.nano"
    assert instance["SubnetId"] == network["subnets"][0]
    assert instance["SourceDestCheck"] is False
    assert instance["MetadataOptions"]["HttpTokens"] == "required"
    assert "KeyName" not in instance and "IamInstanceProfile" not in instance
    assert [g["GroupId"] for g in instance["SecurityGroups"]] == [network["group"]]
    assert tags(instance) == wanted_tags
    ec2 = clean_emulator.client("ec2")
    [root] = instance["BlockDeviceMappings"]
    volume = ec2.describe_volumes(VolumeIds=[root["Ebs"]["VolumeId"]])["Volumes"][0]
    assert (volume["VolumeType"], volume["Encrypted"], tags(volume)) == ("gp3", True, wanted_tags)
    user_data = ec2.describe_instance_attribute(InstanceId=instance["InstanceId"], Attribute="userData")
    assert user_data["UserData"]["Value"]  # base64 of USER_DATA
    [(public_ip, address)] = addresses(clean_emulator).items()
    assert address == {"name": NAMES[0], "instance": instance["InstanceId"], "tags": wanted_tags}
    [view] = created["instances"]
    assert view["id"] == instance["InstanceId"] and view["public_ip"] == public_ip
    assert view["network_interface_id"] == instance["NetworkInterfaces"][0]["NetworkInterfaceId"]
    assert view["source_dest_check"] is False and view["state"] == "running"
    assert created["diff"]["after"][NAMES[0]]["id"] == instance["InstanceId"]

    reset_recording(clean_emulator)
    again = run_module(MODULE, args, env=env, diff=True)
    assert again["changed"] is False, again
    assert recorded_actions(clean_emulator) == READS
    assert again["instances"] == created["instances"]
    assert again["diff"]["before"] == again["diff"]["after"]

    reset_recording(clean_emulator)
    assert run_module(MODULE, args, env=env, check=True)["changed"] is False
    assert recorded_actions(clean_emulator) == READS


def test_an_instance_terminated_out_of_band_is_relaunched_with_the_same_address(
    clean_emulator: Emulator, network: dict[str, Any]
) -> None:
    env = clean_emulator.env()
    created = run_module(MODULE, nat_args(network), env=env)["instances"][0]
    # moto keeps the address associated with the terminated instance (AWS disassociates it): moved over anyway.
    clean_emulator.client("ec2").terminate_instances(InstanceIds=[created["id"]])

    planned = run_module(MODULE, nat_args(network), env=env, check=True)
    assert planned["changed"] is True and planned["instances"][0]["id"] is None, planned

    replaced = run_module(MODULE, nat_args(network), env=env)
    assert replaced["changed"] is True, replaced
    [view] = replaced["instances"]
    assert view["id"] != created["id"] and view["network_interface_id"] != created["network_interface_id"]
    assert (view["public_ip"], view["allocation_id"]) == (created["public_ip"], created["allocation_id"])
    assert addresses(clean_emulator) == {
        created["public_ip"]: {
            "name": NAMES[0],
            "instance": view["id"],
            "tags": {"Name": NAMES[0], **OWNER, "team": "data"},
        }
    }
    assert run_module(MODULE, nat_args(network), env=env)["changed"] is False


def test_drift_is_repaired_in_place(clean_emulator: Emulator, network: dict[str, Any]) -> None:
    env = clean_emulator.env()
    created = run_module(MODULE, nat_args(network), env=env)["instances"][0]
    ec2 = clean_emulator.client("ec2")
    instance_id = created["id"]
    ec2.modify_instance_attribute(InstanceId=instance_id, SourceDestCheck={"Value": True})
    ec2.modify_instance_metadata_options(InstanceId=instance_id, HttpTokens="optional")
    ec2.modify_instance_attribute(InstanceId=instance_id, Groups=[network["other_group"]])
    ec2.create_tags(Resources=[instance_id], Tags=[{"Key": "by-hand", "Value": "1"}])
    ec2.stop_instances(InstanceIds=[instance_id])
    ec2.disassociate_address(AssociationId=ec2.describe_addresses()["Addresses"][0]["AssociationId"])

    reset_recording(clean_emulator)
    preview = run_module(MODULE, nat_args(network), env=env, check=True, diff=True)
    assert preview["changed"] is True, preview
    assert not writes(recorded_actions(clean_emulator))
    before, after = preview["diff"]["before"][NAMES[0]], preview["diff"]["after"][NAMES[0]]
    assert (before["state"], before["source_dest_check"], before["http_tokens"]) == ("stopped", True, "optional")
    assert before["security_groups"] == [network["other_group"]] and before["tags"]["by-hand"] == "1"
    assert (after["state"], after["source_dest_check"], after["http_tokens"]) == ("running", False, "required")
    assert after["security_groups"] == [network["group"]] and "by-hand" not in after["tags"]

    reset_recording(clean_emulator)
    repaired = run_module(MODULE, nat_args(network), env=env)
    assert repaired["changed"] is True, repaired
    actions = recorded_actions(clean_emulator)
    assert "RunInstances" not in actions and "?" not in actions  # the same instance, no image read
    assert actions["StartInstances"] == 1 and actions["AssociateAddress"] == 1 and actions["DeleteTags"] == 1
    instance = live_instances(clean_emulator)[instance_id]
    assert instance["State"]["Name"] == "running"
    assert instance["SourceDestCheck"] is False and instance["MetadataOptions"]["HttpTokens"] == "required"
    assert [g["GroupId"] for g in instance["SecurityGroups"]] == [network["group"]]
    assert "by-hand" not in tags(instance)
    assert addresses(clean_emulator)[created["public_ip"]]["instance"] == instance_id
    assert run_module(MODULE, nat_args(network), env=env)["changed"] is False


def test_a_new_instance_type_is_applied_by_stop_and_start(clean_emulator: Emulator, network: dict[str, Any]) -> None:
    env = clean_emulator.env()
    created = run_module(MODULE, nat_args(network), env=env)["instances"][0]

    reset_recording(clean_emulator)
    resized = run_module(MODULE, nat_args(network, instance_type="t4g.micro"), env=env)
    assert resized["changed"] is True, resized
    actions = recorded_actions(clean_emulator)
    assert (actions["StopInstances"], actions["ModifyInstanceAttribute"], actions["StartInstances"]) == (1, 1, 1)
    assert not {"RunInstances", "AllocateAddress", "AssociateAddress"} & set(actions)
    [view] = resized["instances"]
    assert (view["id"], view["instance_type"], view["state"]) == (created["id"], "t4g.micro", "running")
    assert view["public_ip"] == created["public_ip"]
    assert run_module(MODULE, nat_args(network, instance_type="t4g.micro"), env=env)["changed"] is False


def test_a_later_image_does_not_replace_a_running_instance(clean_emulator: Emulator, network: dict[str, Any]) -> None:
    """The image is resolved at launch only: another parameter value (a new AMI release) changes nothing."""
    env = clean_emulator.env()
    created = run_module(MODULE, nat_args(network), env=env)["instances"][0]
    ssm = clean_emulator.client("ssm")
    other_image = ssm.get_parameters(Names=[OTHER_PARAMETER])["Parameters"][0]["Value"]
    assert other_image != created["image_id"]

    reset_recording(clean_emulator)
    kept = run_module(MODULE, nat_args(network, image_parameter=OTHER_PARAMETER), env=env)
    assert kept["changed"] is False, kept
    assert recorded_actions(clean_emulator) == READS  # the parameter is not even read
    assert kept["instances"][0]["id"] == created["id"] and kept["instances"][0]["image_id"] == created["image_id"]

    # A second NAT launched now takes the image the parameter names now.
    grown = run_module(MODULE, nat_args(network, count=2, image_parameter=OTHER_PARAMETER), env=env)
    assert [v["image_id"] for v in grown["instances"]] == [created["image_id"], other_image]


def test_purge_terminates_the_unlisted_instances_and_releases_their_addresses(
    clean_emulator: Emulator, network: dict[str, Any]
) -> None:
    env = clean_emulator.env()
    both = run_module(MODULE, nat_args(network, count=2), env=env)["instances"]
    # Another owner's NAT instance in the same VPC, and a spare address of ours, made by hand.
    ec2 = clean_emulator.client("ec2")
    image = both[0]["image_id"]
    theirs = ec2.run_instances(
        ImageId=image,
        InstanceType="t4g.nano",
        MinCount=1,
        MaxCount=1,
        SubnetId=network["subnets"][0],
        TagSpecifications=[
            {
                "ResourceType": "instance",
                "Tags": [{"Key": "Name", "Value": NAMES[1]}, {"Key": "airflow-ecs:stack", "Value": "u"}],
            }
        ],
    )["Instances"][0]["InstanceId"]
    spec = [{"Key": k, "Value": v} for k, v in {"Name": "t-nat-old", **OWNER}.items()]
    spare = ec2.allocate_address(Domain="vpc", TagSpecifications=[{"ResourceType": "elastic-ip", "Tags": spec}])

    reset_recording(clean_emulator)
    one = run_module(MODULE, nat_args(network), env=env)
    assert one["changed"] is False, one  # fewer listed, without purge: nothing removed, but said
    assert one["purgeable"] == {
        "instances": [both[1]["id"]],
        "addresses": sorted([both[1]["allocation_id"], spare["AllocationId"]]),
    }
    assert not writes(recorded_actions(clean_emulator))

    planned = run_module(MODULE, nat_args(network, purge=True), env=env, check=True, diff=True)
    assert planned["changed"] is True and planned["deleted"]["instances"] == [both[1]["id"]], planned
    assert NAMES[1] in planned["diff"]["before"] and NAMES[1] not in planned["diff"]["after"]
    assert len(live_instances(clean_emulator)) == 3

    purged = run_module(MODULE, nat_args(network, purge=True), env=env)
    assert purged["changed"] is True, purged
    assert purged["deleted"] == planned["deleted"]
    assert set(live_instances(clean_emulator)) == {both[0]["id"], theirs}
    assert list(addresses(clean_emulator)) == [both[0]["public_ip"]]
    assert run_module(MODULE, nat_args(network, purge=True), env=env)["changed"] is False


def test_absent_terminates_and_releases_only_the_owned(clean_emulator: Emulator, network: dict[str, Any]) -> None:
    env = clean_emulator.env()
    both = run_module(MODULE, nat_args(network, count=2), env=env)["instances"]
    other_stack = run_module(
        MODULE, nat_args(network, owner_tags={"airflow-ecs:stack": "u", "airflow-ecs:tier": "nat"}, tags={}), env=env
    )["instances"][0]
    one = {"vpc_id": network["vpc_id"], "owner_tags": OWNER, "instances": [{"name": NAMES[1]}], "state": "absent"}

    removed = run_module(MODULE, one, env=env)
    assert removed["changed"] is True, removed
    assert removed["deleted"] == {"instances": [both[1]["id"]], "addresses": [both[1]["allocation_id"]]}
    assert set(live_instances(clean_emulator)) == {both[0]["id"], other_stack["id"]}

    every = {"vpc_id": network["vpc_id"], "owner_tags": OWNER, "purge": True, "state": "absent"}
    reset_recording(clean_emulator)
    planned = run_module(MODULE, every, env=env, check=True, diff=True)
    assert planned["changed"] is True and planned["deleted"]["instances"] == [both[0]["id"]], planned
    assert list(planned["diff"]["before"]) == [NAMES[0]] and planned["diff"]["after"] == {}
    assert recorded_actions(clean_emulator) == READS

    reset_recording(clean_emulator)
    gone = run_module(MODULE, every, env=env)
    assert gone["changed"] is True, gone
    # moto keeps a terminated instance's association, so it is removed before the address is released.
    assert recorded_actions(clean_emulator) == READS + Counter(
        {"TerminateInstances": 1, "DescribeInstances": 1, "DisassociateAddress": 1, "ReleaseAddress": 1}
    )
    assert set(live_instances(clean_emulator)) == {other_stack["id"]}
    assert list(addresses(clean_emulator)) == [other_stack["public_ip"]]

    reset_recording(clean_emulator)
    again = run_module(MODULE, every, env=env)
    assert again["changed"] is False and again["deleted"] == {"instances": [], "addresses": []}, again
    assert recorded_actions(clean_emulator) == READS


def test_an_instance_in_another_subnet_is_refused(clean_emulator: Emulator, network: dict[str, Any]) -> None:
    env = clean_emulator.env()
    created = run_module(MODULE, nat_args(network), env=env)["instances"][0]
    moved = nat_args(network, instances=[{"name": NAMES[0], "subnet_id": network["subnets"][1]}])

    reset_recording(clean_emulator)
    refused = run_module(MODULE, moved, env=env)
    assert refused.get("failed") is True, refused
    assert f"NAT instance {NAMES[0]} ({created['id']}) is in subnet {network['subnets'][0]}" in refused["msg"]
    assert "Nothing was changed" in refused["msg"]
    assert not writes(recorded_actions(clean_emulator))


def test_two_live_instances_of_one_name_are_refused(clean_emulator: Emulator, network: dict[str, Any]) -> None:
    env = clean_emulator.env()
    created = run_module(MODULE, nat_args(network), env=env)["instances"][0]
    spec = [{"Key": k, "Value": v} for k, v in {"Name": NAMES[0], **OWNER}.items()]
    twin = clean_emulator.client("ec2").run_instances(
        ImageId=created["image_id"],
        InstanceType="t4g.nano",
        MinCount=1,
        MaxCount=1,
        SubnetId=network["subnets"][0],
        TagSpecifications=[{"ResourceType": "instance", "Tags": spec}],
    )["Instances"][0]["InstanceId"]

    reset_recording(clean_emulator)
    refused = run_module(MODULE, nat_args(network), env=env)
    assert refused.get("failed") is True, refused
    assert f"has 2 live NAT instances named {NAMES[0]}" in refused["msg"]
    assert created["id"] in refused["msg"] and twin in refused["msg"]
    assert not writes(recorded_actions(clean_emulator))


def test_a_group_named_is_looked_up_and_a_missing_one_planned(
    clean_emulator: Emulator, network: dict[str, Any]
) -> None:
    env = clean_emulator.env()
    by_name = run_module(MODULE, nat_args(network, security_groups=["t-nat"]), env=env, check=True)
    assert by_name["instances"][0]["security_groups"] == [network["group"]], by_name

    # In check mode a group still to be created is named in the plan; for real it must exist.
    planned = run_module(MODULE, nat_args(network, security_groups=["t-new"]), env=env, check=True)
    assert planned["changed"] is True and planned["instances"][0]["security_groups"] == ["t-new"], planned
    refused = run_module(MODULE, nat_args(network, security_groups=["t-new"]), env=env)
    assert refused.get("failed") is True and "Security group t-new does not exist" in refused["msg"], refused
    assert live_instances(clean_emulator) == {}


def test_a_missing_image_parameter_fails_naming_it(clean_emulator: Emulator, network: dict[str, Any]) -> None:
    refused = run_module(MODULE, nat_args(network, image_parameter="/aws/service/none"), env=clean_emulator.env())
    assert refused.get("failed") is True, refused
    assert "The SSM parameter /aws/service/none does not exist" in refused["msg"]
    assert live_instances(clean_emulator) == {} and addresses(clean_emulator) == {}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"owner_tags": {}}, "owner_tags names no tag"),
        ({"owner_tags": {**OWNER, "Name": "x"}}, "owner_tags may not hold Name"),
        ({"tags": {"airflow-ecs:tier": "db"}}, "tags gives airflow-ecs:tier='db', but airflow-ecs:tier is 'nat'"),
        ({"tags": {"Name": "x"}}, "tags may not hold Name"),
        ({"instance_type": None}, "instance_type is needed with state=present"),
        ({"security_groups": None}, "security_groups is needed with state=present"),
        ({"instances": [{"name": NAMES[0]}]}, f"instances[0] ({NAMES[0]}) has no subnet_id"),
    ],
)
def test_bad_input_is_refused_before_any_call(
    clean_emulator: Emulator, network: dict[str, Any], overrides: dict, message: str
) -> None:
    reset_recording(clean_emulator)
    refused = run_module(MODULE, nat_args(network, **overrides), env=clean_emulator.env())
    assert refused.get("failed") is True, refused
    assert message in refused["msg"] and "Nothing was changed" in refused["msg"], refused["msg"]
    assert recorded_actions(clean_emulator) == {}


def test_a_name_listed_twice_is_refused(clean_emulator: Emulator, network: dict[str, Any]) -> None:
    twice = [{"name": NAMES[0], "subnet_id": s} for s in network["subnets"]]
    reset_recording(clean_emulator)
    refused = run_module(MODULE, nat_args(network, instances=twice), env=clean_emulator.env())
    assert refused.get("failed") is True and "names the same NAT instance twice" in refused["msg"], refused
    assert recorded_actions(clean_emulator) == {}
