#!/usr/bin/python
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""An encrypted EFS file system with its mount targets, access points and policy (project library module)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: efs_file_system
short_description: An encrypted EFS file system, its mount targets, access points and file system policy in one run
description:
  - The file system is found by its creation token O(name) (one C(DescribeFileSystems)), created encrypted when
    missing and waited for until C(available). Its C(Name) tag is O(name); O(tags) are kept (others removed).
  - One mount target per subnet of O(subnet_ids), in O(security_groups); a mount target in a subnet no longer
    listed is deleted, changed security groups are applied in place.
  - Access points by their C(Name) tag. AWS cannot change an access point, so one whose POSIX user or root
    directory differs is deleted and created again (its ARN changes).
  - The file system policy is set when it differs (compared as parsed JSON).
  - O(state=absent) deletes the access points, the mount targets (waiting until they are gone) and the file system.
  - M(community.aws.efs) manages neither access points nor the file system policy.
  - Supports check mode and diff mode.
author:
  - airflow-ecs project
options:
  name:
    description: Creation token and C(Name) tag of the file system.
    type: str
    required: true
  throughput_mode:
    description: C(elastic) (pay per GB read and written) or C(bursting).
    type: str
    default: elastic
    choices: [elastic, bursting]
  subnet_ids:
    description: The subnets that get a mount target (one per Availability Zone).
    type: list
    elements: str
    default: []
  security_groups:
    description: Security groups of every mount target.
    type: list
    elements: str
    default: []
  access_points:
    description: The access points, each C({name, path, uid, gid, permissions}); the root directory is created
      at first use with owner C(uid:gid) and C(permissions), and every file operation through it runs as C(uid:gid).
    type: list
    elements: dict
    default: []
  policy:
    description: The file system policy (a dict). None leaves the policy alone.
    type: dict
  tags:
    description: Tags of the file system and its access points (besides C(Name)).
    type: dict
    default: {}
  wait_timeout:
    description: Seconds to wait for the file system and mount targets to be available (or gone).
    type: int
    default: 600
  state:
    description: V(present) or V(absent).
    type: str
    default: present
    choices: [present, absent]
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
notes:
  - IAM actions used are elasticfilesystem:DescribeFileSystems, CreateFileSystem, DeleteFileSystem, UpdateFileSystem,
    DescribeMountTargets, CreateMountTarget, DeleteMountTarget, DescribeMountTargetSecurityGroups,
    ModifyMountTargetSecurityGroups, DescribeAccessPoints, CreateAccessPoint, DeleteAccessPoint,
    DescribeFileSystemPolicy, PutFileSystemPolicy, TagResource and UntagResource (tags are read from
    DescribeFileSystems), and ec2:DescribeSubnets, ec2:CreateNetworkInterface, ec2:DescribeNetworkInterfaces,
    ec2:DescribeNetworkInterfaceAttribute, ec2:ModifyNetworkInterfaceAttribute and ec2:DeleteNetworkInterface for
    the mount targets' network interfaces (EFS API reference).
"""

EXAMPLES = r"""
- name: The broker's data file system (one mount target per private subnet, one access point)
  efs_file_system:
    name: airflow-broker
    subnet_ids: [subnet-1, subnet-2]
    security_groups: [sg-0123]
    access_points: [{name: airflow-broker-data, path: /rabbitmq, uid: 999, gid: 999, permissions: "0750"}]
    tags: {airflow-ecs:stack: airflow}
"""

RETURN = r"""
file_system:
  description: The file system (in check mode before it exists, C(id) and C(arn) are null).
  returned: always
  type: dict
  contains:
    id: {description: File system id., type: str}
    arn: {description: File system ARN., type: str}
    access_points: {description: "Access point name -> C({id, arn})", type: dict}
    mount_targets: {description: Subnet id -> mount target id., type: dict}
changes:
  description: What the run changed (or would).
  returned: always
  type: list
  elements: str
"""

import contextlib
import json
from typing import Any

with contextlib.suppress(ImportError):
    from botocore.exceptions import BotoCoreError, ClientError

from ansible.module_utils.aws_retry import jittered_backoff
from ansible.module_utils.ec2_batch import poll_until
from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule


class Run:
    def __init__(self, module: AnsibleAWSModule) -> None:
        self.module = module
        self.client = module.client("efs", retry_decorator=jittered_backoff())
        self.changes: list[str] = []
        self.params = module.params

    def call(self, what: str, method: str, **kwargs: Any) -> Any:
        try:
            return getattr(self.client, method)(aws_retry=True, **kwargs)
        except (BotoCoreError, ClientError) as e:
            self.module.fail_json_aws(e, msg=f"Failed to {what} (elasticfilesystem:{method})")

    def change(self, text: str) -> bool:
        """Note a change; True when it is to be made (not in check mode)."""
        self.changes.append(text)
        return not self.module.check_mode

    def wait(self, what: str, done: Any) -> None:
        timeout = self.params["wait_timeout"]
        poll_until(
            self.module,
            done,
            lambda finished: not finished,
            timeout,
            lambda _finished, _left: f"Timed out after {timeout} s waiting for {what}",
            first_delay=1.0,
        )

    # -- reading ------------------------------------------------------------------------------------

    def file_system(self) -> dict | None:
        found = self.call("read the file system", "describe_file_systems", CreationToken=self.params["name"])
        systems = [fs for fs in found.get("FileSystems", []) if fs.get("LifeCycleState") != "deleted"]
        return systems[0] if systems else None

    def mount_targets(self, fs_id: str) -> list[dict]:
        found = self.call("read the mount targets", "describe_mount_targets", FileSystemId=fs_id)
        return [t for t in found.get("MountTargets", []) if t.get("LifeCycleState") not in ("deleting", "deleted")]

    def access_points(self, fs_id: str) -> dict[str, dict]:
        found = self.call("read the access points", "describe_access_points", FileSystemId=fs_id)
        return {ap.get("Name") or ap["AccessPointId"]: ap for ap in found.get("AccessPoints", [])}

    def policy(self, fs_id: str) -> dict | None:
        try:
            text = self.client.describe_file_system_policy(FileSystemId=fs_id, aws_retry=True).get("Policy")
        except is_boto3_error_code("PolicyNotFound"):
            return None
        except (BotoCoreError, ClientError) as e:  # pylint: disable=duplicate-except
            self.module.fail_json_aws(e, msg="Failed to read the file system policy")
        return json.loads(text) if text else None

    # -- present ------------------------------------------------------------------------------------

    def tag_list(self, name: str) -> list[dict[str, str]]:
        tags = {**{str(k): str(v) for k, v in self.params["tags"].items()}, "Name": name}
        return [{"Key": k, "Value": v} for k, v in sorted(tags.items())]

    def ensure_file_system(self) -> dict | None:
        name = self.params["name"]
        fs = self.file_system()
        if fs is None:
            if not self.change(f"create file system {name}"):
                return None
            fs = self.call(
                f"create the file system {name}",
                "create_file_system",
                CreationToken=name,
                PerformanceMode="generalPurpose",
                Encrypted=True,
                ThroughputMode=self.params["throughput_mode"],
                Tags=self.tag_list(name),
            )
        else:
            wanted = {t["Key"]: t["Value"] for t in self.tag_list(name)}
            current = {t["Key"]: t["Value"] for t in fs.get("Tags", [])}
            if current != wanted and self.change("tags"):
                stale = [k for k in current if k not in wanted and not k.startswith("aws:")]
                if stale:
                    self.call("untag the file system", "untag_resource", ResourceId=fs["FileSystemId"], TagKeys=stale)
                self.call(
                    "tag the file system", "tag_resource", ResourceId=fs["FileSystemId"], Tags=self.tag_list(name)
                )
            if not fs.get("Encrypted"):
                self.module.fail_json(
                    msg=f"The file system {name} ({fs['FileSystemId']}) is not encrypted, and AWS cannot encrypt an "
                    "existing one: delete it (its data is lost) or move its data to a new encrypted one"
                )
            if fs.get("ThroughputMode") != self.params["throughput_mode"] and self.change("throughput mode"):
                self.call(
                    "change the throughput mode",
                    "update_file_system",
                    FileSystemId=fs["FileSystemId"],
                    ThroughputMode=self.params["throughput_mode"],
                )
        fs_id = fs["FileSystemId"]
        self.wait(
            f"file system {fs_id} to be available",
            lambda: (self.file_system() or {}).get("LifeCycleState") == "available",
        )
        return self.file_system()

    def ensure_mount_targets(self, fs_id: str) -> dict[str, str]:
        wanted_groups = sorted(self.params["security_groups"])
        current = {t["SubnetId"]: t for t in self.mount_targets(fs_id)}
        for subnet, target in current.items():
            if subnet not in self.params["subnet_ids"]:
                if self.change(f"delete mount target in {subnet}"):
                    self.call("delete a mount target", "delete_mount_target", MountTargetId=target["MountTargetId"])
                continue
            groups = self.call(
                "read a mount target's security groups",
                "describe_mount_target_security_groups",
                MountTargetId=target["MountTargetId"],
            )["SecurityGroups"]
            if sorted(groups) != wanted_groups and self.change(f"security groups of mount target in {subnet}"):
                self.call(
                    "change a mount target's security groups",
                    "modify_mount_target_security_groups",
                    MountTargetId=target["MountTargetId"],
                    SecurityGroups=wanted_groups,
                )
        for subnet in self.params["subnet_ids"]:
            if subnet not in current and self.change(f"create mount target in {subnet}"):
                self.call(
                    f"create a mount target in {subnet}",
                    "create_mount_target",
                    FileSystemId=fs_id,
                    SubnetId=subnet,
                    SecurityGroups=wanted_groups,
                )
        if not self.module.check_mode:
            self.wait(
                "the mount targets to be available",
                lambda: all(t.get("LifeCycleState") == "available" for t in self.mount_targets(fs_id)),
            )
            current = {t["SubnetId"]: t for t in self.mount_targets(fs_id)}
        return {subnet: t["MountTargetId"] for subnet, t in current.items() if subnet in self.params["subnet_ids"]}

    @staticmethod
    def access_point_shape(spec: dict) -> dict:
        return {
            "PosixUser": {"Uid": int(spec["uid"]), "Gid": int(spec["gid"])},
            "RootDirectory": {
                "Path": spec["path"],
                "CreationInfo": {
                    "OwnerUid": int(spec["uid"]),
                    "OwnerGid": int(spec["gid"]),
                    "Permissions": str(spec.get("permissions", "0750")),
                },
            },
        }

    def ensure_access_points(self, fs_id: str) -> dict[str, dict]:
        current = self.access_points(fs_id)
        result = {}
        for spec in self.params["access_points"]:
            name = spec["name"]
            shape = self.access_point_shape(spec)
            found = current.get(name)
            same = found is not None and all(found.get(key) == value for key, value in shape.items())
            if found is not None and not same and self.change(f"replace access point {name}"):
                self.call(
                    f"delete the access point {name}", "delete_access_point", AccessPointId=found["AccessPointId"]
                )
            if found is not None and same:
                result[name] = {"id": found["AccessPointId"], "arn": found["AccessPointArn"]}
                continue
            if found is None and not self.change(f"create access point {name}"):
                continue
            if self.module.check_mode:
                continue
            created = self.call(
                f"create the access point {name}",
                "create_access_point",
                ClientToken=name[:64],
                FileSystemId=fs_id,
                Tags=self.tag_list(name),
                **shape,
            )
            result[name] = {"id": created["AccessPointId"], "arn": created["AccessPointArn"]}
        wanted_names = {spec["name"] for spec in self.params["access_points"]}
        for name, found in current.items():
            if name not in wanted_names and self.change(f"delete access point {name}"):
                self.call(
                    f"delete the access point {name}", "delete_access_point", AccessPointId=found["AccessPointId"]
                )
        return result

    def ensure_policy(self, fs_id: str) -> None:
        wanted = self.params["policy"]
        if wanted is None or self.policy(fs_id) == wanted:
            return
        if self.change("file system policy"):
            self.call(
                "set the file system policy", "put_file_system_policy", FileSystemId=fs_id, Policy=json.dumps(wanted)
            )

    def present(self) -> dict:
        fs = self.ensure_file_system()
        if fs is None:  # check mode, not created yet
            return {"id": None, "arn": None, "access_points": {}, "mount_targets": {}}
        fs_id = fs["FileSystemId"]
        mount_targets = self.ensure_mount_targets(fs_id)
        access_points = self.ensure_access_points(fs_id)
        self.ensure_policy(fs_id)
        return {"id": fs_id, "arn": fs["FileSystemArn"], "access_points": access_points, "mount_targets": mount_targets}

    # -- absent -------------------------------------------------------------------------------------

    def absent(self) -> dict:
        fs = self.file_system()
        if fs is None:
            return {"id": None, "arn": None, "access_points": {}, "mount_targets": {}}
        fs_id = fs["FileSystemId"]
        if not self.change(f"delete file system {self.params['name']}"):
            return {"id": fs_id, "arn": fs["FileSystemArn"], "access_points": {}, "mount_targets": {}}
        for found in self.access_points(fs_id).values():
            self.call("delete an access point", "delete_access_point", AccessPointId=found["AccessPointId"])
        for target in self.mount_targets(fs_id):
            self.call("delete a mount target", "delete_mount_target", MountTargetId=target["MountTargetId"])
        self.wait("the mount targets to be gone", lambda: not self.mount_targets(fs_id))
        try:
            self.client.delete_file_system(FileSystemId=fs_id, aws_retry=True)
        except is_boto3_error_code("FileSystemNotFound"):
            pass
        except (BotoCoreError, ClientError) as e:  # pylint: disable=duplicate-except
            self.module.fail_json_aws(e, msg=f"Failed to delete the file system {fs_id}")
        self.wait(f"file system {fs_id} to be gone", lambda: self.file_system() is None)
        return {"id": fs_id, "arn": fs["FileSystemArn"], "access_points": {}, "mount_targets": {}}


def check_input(module: AnsibleAWSModule) -> None:
    problems = []
    for index, spec in enumerate(module.params["access_points"]):
        missing = [key for key in ("name", "path", "uid", "gid") if spec.get(key) in (None, "")]
        if missing:
            problems.append(f"access_points[{index}] lacks {', '.join(missing)}")
        elif not str(spec["path"]).startswith("/"):
            problems.append(f"access_points[{index}].path must be absolute, not {spec['path']!r}")
    if problems:
        module.fail_json(msg="Cannot manage the file system: " + "; ".join(problems) + ". Nothing was changed.")


def main() -> None:
    module = AnsibleAWSModule(
        argument_spec=dict(
            name=dict(type="str", required=True),
            throughput_mode=dict(type="str", default="elastic", choices=["elastic", "bursting"]),
            subnet_ids=dict(type="list", elements="str", default=[]),
            security_groups=dict(type="list", elements="str", default=[]),
            access_points=dict(type="list", elements="dict", default=[]),
            policy=dict(type="dict"),
            tags=dict(type="dict", default={}),
            wait_timeout=dict(type="int", default=600),
            state=dict(type="str", default="present", choices=["present", "absent"]),
        ),
        supports_check_mode=True,
    )
    check_input(module)
    run = Run(module)
    file_system = run.present() if module.params["state"] == "present" else run.absent()
    module.exit_json(
        changed=bool(run.changes),
        file_system=file_system,
        changes=run.changes,
        diff={"before": {"changes": []}, "after": {"changes": run.changes}},
    )


if __name__ == "__main__":
    main()
