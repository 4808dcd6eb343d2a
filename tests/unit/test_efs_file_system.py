"""library/efs_file_system.py against the emulator: check mode, create, re-run, changes in place, teardown."""

from __future__ import annotations

from ansible_runner import run_counted
from emulator import Emulator

from embedded_aws.weather import WeatherProxy

MODULE = "efs_file_system"
DENY_PLAIN_NFS = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Sid": "DenyWithoutTLS",
            "Effect": "Deny",
            "Principal": {"AWS": "*"},
            "Action": "*",
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        }
    ],
}
ACCESS_POINT = {"name": "broker-data", "path": "/rabbitmq", "uid": 999, "gid": 999, "permissions": "0750"}


def network(emulator: Emulator) -> tuple[list[str], str, str]:
    ec2 = emulator.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.40.0.0/16")["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.40.{i}.0/24", AvailabilityZone=f"us-east-1{zone}")["Subnet"][
            "SubnetId"
        ]
        for i, zone in enumerate("ab", start=1)
    ]
    groups = [ec2.create_security_group(GroupName=n, Description=n, VpcId=vpc)["GroupId"] for n in ("nfs", "nfs2")]
    return subnets, groups[0], groups[1]


def test_the_broker_file_system_story(proxy: WeatherProxy, clean_emulator: Emulator):
    subnets, group, other_group = network(clean_emulator)
    args = {
        "name": "airflow-broker",
        "subnet_ids": subnets,
        "security_groups": [group],
        "access_points": [ACCESS_POINT],
        "policy": DENY_PLAIN_NFS,
        "tags": {"airflow-ecs:stack": "airflow"},
        "wait_timeout": 30,
    }
    client = clean_emulator.client("efs")

    planned, _ = run_counted(MODULE, proxy, args, check=True)
    assert planned["changed"] and planned["file_system"]["id"] is None, planned
    assert client.describe_file_systems()["FileSystems"] == []

    created, _ = run_counted(MODULE, proxy, args)
    fs_id = created["file_system"]["id"]
    assert created["changed"] and sorted(created["file_system"]["mount_targets"]) == sorted(subnets), created
    [fs] = client.describe_file_systems(FileSystemId=fs_id)["FileSystems"]
    assert fs["Encrypted"] is True and fs["ThroughputMode"] == "elastic" and fs["Name"] == "airflow-broker"
    [ap] = client.describe_access_points(FileSystemId=fs_id)["AccessPoints"]
    assert ap["PosixUser"] == {"Uid": 999, "Gid": 999} and ap["RootDirectory"]["Path"] == "/rabbitmq"
    assert created["file_system"]["access_points"]["broker-data"]["arn"] == ap["AccessPointArn"]

    again, calls = run_counted(MODULE, proxy, args)
    assert again["changed"] is False and again["file_system"] == created["file_system"], again["changes"]
    assert not any(op.split()[1].startswith(("Create", "Put", "Modify", "Delete", "Tag")) for op in calls), calls

    # Another security group and one subnet less: applied in place; another POSIX user: a new access point.
    moved = {**args, "subnet_ids": subnets[:1], "security_groups": [other_group],
             "access_points": [{**ACCESS_POINT, "uid": 1000}]}  # fmt: skip
    checked, _ = run_counted(MODULE, proxy, moved, check=True)
    assert sorted(checked["changes"]) == sorted(
        [
            f"delete mount target in {subnets[1]}",
            f"security groups of mount target in {subnets[0]}",
            "replace access point broker-data",
        ]
    )
    changed, _ = run_counted(MODULE, proxy, moved)
    targets = client.describe_mount_targets(FileSystemId=fs_id)["MountTargets"]
    assert [t["SubnetId"] for t in targets] == subnets[:1]
    assert client.describe_mount_target_security_groups(MountTargetId=targets[0]["MountTargetId"])[
        "SecurityGroups"
    ] == [other_group]
    [ap] = client.describe_access_points(FileSystemId=fs_id)["AccessPoints"]
    assert (
        ap["PosixUser"]["Uid"] == 1000
        and changed["file_system"]["access_points"]["broker-data"]["id"] == ap["AccessPointId"]
    )

    gone, _ = run_counted(MODULE, proxy, {"name": "airflow-broker", "state": "absent", "wait_timeout": 30})
    assert gone["changed"] and client.describe_file_systems()["FileSystems"] == []
    still_gone, _ = run_counted(MODULE, proxy, {"name": "airflow-broker", "state": "absent"})
    assert still_gone["changed"] is False
