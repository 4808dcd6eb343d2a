"""embedded_aws/efs.py: an ECS task's EFS volume on the local runtime, against moto's EFS, EC2 and IAM in process.

The volume is a host directory per file system and access point root that outlives the task; the checks ECS
and EFS make before a mount (mount target in the task's AZ, TLS, the task role's ClientMount/ClientWrite on
the file system through this access point) refuse it with ECS's ResourceInitializationError.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from embedded_aws import efs

REGION = "us-east-1"
ACCOUNT = "123456789012"
TRUST = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "ecs-tasks.amazonaws.com"}, "Action": "sts:AssumeRole"}],
}


@pytest.fixture
def stack(tmp_path: Path):
    with mock_aws():
        ec2 = boto3.client("ec2", region_name=REGION)
        vpc = ec2.create_vpc(CidrBlock="10.40.0.0/16")["Vpc"]["VpcId"]
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.40.1.0/24", AvailabilityZone="us-east-1a")["Subnet"]
        client = boto3.client("efs", region_name=REGION)
        fs = client.create_file_system(CreationToken="broker", Encrypted=True)
        client.create_mount_target(FileSystemId=fs["FileSystemId"], SubnetId=subnet["SubnetId"])
        ap = client.create_access_point(
            ClientToken="data",
            FileSystemId=fs["FileSystemId"],
            PosixUser={"Uid": 999, "Gid": 998},
            RootDirectory={
                "Path": "/rabbitmq",
                "CreationInfo": {"OwnerUid": 999, "OwnerGid": 998, "Permissions": "0750"},
            },
        )
        other = client.create_access_point(
            ClientToken="other", FileSystemId=fs["FileSystemId"], PosixUser={"Uid": 1, "Gid": 1}
        )
        iam = boto3.client("iam", region_name=REGION)
        iam.create_role(RoleName="broker-task", AssumeRolePolicyDocument=json.dumps(TRUST))
        yield {"fs": fs, "ap": ap, "other": other, "iam": iam, "efs": client, "root": tmp_path / "efs"}


def allow(stack: dict, actions: list[str], access_point_arn: str) -> None:
    statement = {
        "Effect": "Allow",
        "Action": actions,
        "Resource": stack["fs"]["FileSystemArn"],
        "Condition": {"StringEquals": {"elasticfilesystem:AccessPointArn": access_point_arn}},
    }
    document = {"Version": "2012-10-17", "Statement": [statement]}
    stack["iam"].put_role_policy(RoleName="broker-task", PolicyName="data", PolicyDocument=json.dumps(document))


def volume(stack: dict, **config: object) -> dict:
    efs_config = {
        "fileSystemId": stack["fs"]["FileSystemId"],
        "transitEncryption": "ENABLED",
        "authorizationConfig": {"accessPointId": stack["ap"]["AccessPointId"], "iam": "ENABLED"},
        **config,
    }
    return {"name": "data", "efsVolumeConfiguration": efs_config}


def mount(stack: dict, vol: dict, read_only: bool = False, zone: str = "us-east-1a") -> Path:
    return efs.mount(
        vol,
        read_only,
        task_role_arn=f"arn:aws:iam::{ACCOUNT}:role/broker-task",
        account=ACCOUNT,
        region=REGION,
        availability_zone=zone,
        efs_root=stack["root"],
    )


def test_the_access_point_root_outlives_the_task_and_belongs_to_its_posix_user(stack: dict):
    allow(stack, ["elasticfilesystem:ClientMount", "elasticfilesystem:ClientWrite"], stack["ap"]["AccessPointArn"])
    first = mount(stack, volume(stack))
    assert first == stack["root"] / stack["fs"]["FileSystemId"] / "rabbitmq"
    assert (first.stat().st_uid, first.stat().st_gid, oct(first.stat().st_mode & 0o777)) == (999, 998, "0o750")
    (first / "mnesia").mkdir()
    (first / "mnesia" / "queue").write_text("message")  # written as root by the first task

    second = mount(stack, volume(stack))  # the next task of the service
    assert second == first and (second / "mnesia" / "queue").read_text() == "message"
    assert {(p.stat().st_uid, p.stat().st_gid) for p in [second / "mnesia", second / "mnesia" / "queue"]} == {
        (999, 998)
    }


def test_container_mounts_maps_only_the_efs_mount_points(stack: dict):
    allow(stack, ["elasticfilesystem:ClientMount"], stack["ap"]["AccessPointArn"])
    points = [{"sourceVolume": "data", "containerPath": "/var/lib/rabbitmq", "readOnly": True}]
    mounts = efs.container_mounts(
        [volume(stack), {"name": "scratch"}],
        [*points, {"sourceVolume": "scratch", "containerPath": "/tmp/x"}],
        task_role_arn=f"arn:aws:iam::{ACCOUNT}:role/broker-task",
        account=ACCOUNT,
        region=REGION,
        availability_zone="us-east-1a",
        efs_root=stack["root"],
    )
    assert list(mounts) == ["/var/lib/rabbitmq"] and os.path.isdir(mounts["/var/lib/rabbitmq"])


@pytest.mark.parametrize(
    ("actions", "through", "read_only", "refusal"),
    [
        ([], "ap", True, "no statement of .* allows elasticfilesystem:ClientMount"),
        (["elasticfilesystem:ClientMount"], "ap", False, "allows elasticfilesystem:ClientWrite"),
        (["elasticfilesystem:ClientMount", "elasticfilesystem:ClientWrite"], "other", False, "through access point"),
    ],
    ids=["no-statement", "read-only-role-mounting-read-write", "another-access-point-only"],
)
def test_a_mount_the_task_role_may_not_make_is_refused(stack, actions, through, read_only, refusal):
    if actions:
        allow(stack, actions, stack[through]["AccessPointArn"])
    with pytest.raises(efs.MountRefused, match=f"ResourceInitializationError: failed to invoke EFS utils.*{refusal}"):
        mount(stack, volume(stack), read_only=read_only)
    assert not (stack["root"] / stack["fs"]["FileSystemId"] / "rabbitmq").exists()


def test_a_read_only_mount_needs_client_mount_only(stack: dict):
    allow(stack, ["elasticfilesystem:ClientMount"], stack["ap"]["AccessPointArn"])
    assert mount(stack, volume(stack), read_only=True).is_dir()


def test_ecs_and_efs_refusals(stack: dict):
    allow(stack, ["elasticfilesystem:Client*"], stack["ap"]["AccessPointArn"])
    with pytest.raises(efs.MountRefused, match="needs transitEncryption ENABLED"):
        mount(stack, volume(stack, transitEncryption="DISABLED"))
    with pytest.raises(efs.MountRefused, match="no mount target in us-east-1b"):
        mount(stack, volume(stack), zone="us-east-1b")
    with pytest.raises(efs.MountRefused, match="does not exist"):
        mount(stack, volume(stack, fileSystemId="fs-00000000"))
    # A file system policy replaces EFS's default one, the only one that lets a client without IAM in.
    stack["efs"].put_file_system_policy(FileSystemId=stack["fs"]["FileSystemId"], Policy=json.dumps(TRUST))
    with pytest.raises(efs.MountRefused, match="lets no anonymous client"):
        mount(
            stack, volume(stack, authorizationConfig={"accessPointId": stack["ap"]["AccessPointId"], "iam": "DISABLED"})
        )
