"""EFS volumes of ECS tasks on the local runtime.

A task definition's `efsVolumeConfiguration` volume is a host directory per file system
(`<runtime dir>/efs/<file system id>`), below it the access point's root directory: it outlives the task,
so the next task of a service finds what the last one wrote, as on EFS. What ECS and EFS check before
a Fargate task mounts it is checked here, and a failed check stops the task with ECS's
ResourceInitializationError:

- the file system (and access point, which must be the file system's) exists, with a mount target in the
  Availability Zone of the task's subnet;
- an access point or IAM authorization needs transit encryption;
- with IAM authorization the task role must be allowed `elasticfilesystem:ClientMount` (and `ClientWrite`
  unless the mount point is read-only) on the file system, judged by enforced IAM, and an
  `elasticfilesystem:AccessPointArn` condition of the allowing statement must name this access point
  (moto evaluates no identity-policy conditions); without it the file system policy must not exist, since
  EFS's default policy is the only one that lets an anonymous client in;
- a file system policy denying `aws:SecureTransport` false refuses a mount without transit encryption.

The access point's root directory is created with its CreationInfo owner and permissions when missing,
and since the runtime runs containers as root, every file below it is given the access point's POSIX
user and group at each mount (EFS records every write through the access point as that user).
"""

from __future__ import annotations

import fnmatch
import json
import os
from pathlib import Path
from typing import Any

from moto.ec2.models import ec2_backends
from moto.efs.models import efs_backends
from moto.iam.models import iam_backends

from embedded_aws import credentials, iam

CLIENT_MOUNT = "elasticfilesystem:ClientMount"
CLIENT_WRITE = "elasticfilesystem:ClientWrite"
ACCESS_POINT_KEY = "elasticfilesystem:accesspointarn"
# What ECS reports when the EFS mount helper fails (access denied by the server, code 32).
MOUNT_FAILED = (
    "ResourceInitializationError: failed to invoke EFS utils commands to set up EFS volumes: stderr: "
    "b'mount.nfs4: access denied by server while mounting 127.0.0.1:/' : unsuccessful EFS utils command "
    "execution; code: 32 ({reason})"
)


class MountRefused(Exception):
    """The volume cannot be mounted; str() is ECS's stoppedReason."""


def _fail(reason: str) -> MountRefused:
    return MountRefused(MOUNT_FAILED.format(reason=reason))


def _policy_documents(role_name: str) -> list[dict[str, Any]]:
    role = iam_backends[credentials.DEFAULT_ACCOUNT_ID]["aws"].get_role(role_name)
    texts = list(role.policies.values())
    texts += [v.document for policy in role.managed_policies.values() for v in policy.versions if v.is_default]
    return [json.loads(text) if isinstance(text, str) else text for text in texts]


def _listed(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else list(value or [])


def _statement_allows(statement: dict[str, Any], action: str, resource: str, access_point_arn: str | None) -> bool:
    if statement.get("Effect") != "Allow":
        return False
    if not any(fnmatch.fnmatchcase(action.lower(), a.lower()) for a in _listed(statement.get("Action"))):
        return False
    if not any(fnmatch.fnmatchcase(resource, r) for r in _listed(statement.get("Resource"))):
        return False
    for operator, keys in (statement.get("Condition") or {}).items():
        for key, wanted in keys.items():
            if key.lower() != ACCESS_POINT_KEY:
                continue
            match = fnmatch.fnmatchcase if operator.startswith("StringLike") else str.__eq__
            if access_point_arn is None or not any(match(access_point_arn, w) for w in _listed(wanted)):
                return False
    return True


def check_role(role_arn: str, action: str, fs_arn: str, access_point_arn: str | None, region: str) -> None:
    """MountRefused unless the role may do `action` on the file system through this access point."""
    role_name = role_arn.rsplit("/", 1)[-1]
    try:
        keys = credentials.role_credentials(role_name, region)
        iam.authorize(keys, action, fs_arn, region)
    except PermissionError as exc:
        raise _fail(f"{role_arn} may not {action} on {fs_arn}: {exc}") from exc
    statements = [s for doc in _policy_documents(role_name) for s in _listed_statements(doc)]
    if not any(_statement_allows(s, action, fs_arn, access_point_arn) for s in statements):
        raise _fail(f"no statement of {role_arn} allows {action} on {fs_arn} through access point {access_point_arn}")


def _listed_statements(document: dict[str, Any]) -> list[dict[str, Any]]:
    statements = document.get("Statement") or []
    return [statements] if isinstance(statements, dict) else list(statements)


def _denies_plain_nfs(policy_text: str | None) -> bool:
    if not policy_text:
        return False
    for statement in _listed_statements(json.loads(policy_text)):
        secure = ((statement.get("Condition") or {}).get("Bool") or {}).get("aws:SecureTransport")
        if statement.get("Effect") == "Deny" and str(secure).lower() == "false":
            return True
    return False


def _own(root: Path, uid: int, gid: int) -> None:
    for directory, subdirs, files in os.walk(root):
        for name in [directory, *(os.path.join(directory, n) for n in subdirs + files)]:
            os.lchown(name, uid, gid)


def mount(
    volume: dict[str, Any],
    read_only: bool,
    *,
    task_role_arn: str | None,
    account: str,
    region: str,
    availability_zone: str | None,
    efs_root: Path,
) -> Path:
    """The host directory of one EFS volume as the task sees it (its access point's root), or MountRefused."""
    config = volume["efsVolumeConfiguration"]
    backend = efs_backends[account][region]
    fs_id = config.get("fileSystemId", "")
    fs = backend.file_systems_by_id.get(fs_id)
    if fs is None:
        raise _fail(f"file system {fs_id} does not exist")
    zones = {target.availability_zone_name for target in fs._mount_targets.values()}
    if availability_zone and availability_zone not in zones:
        raise _fail(f"{fs_id} has no mount target in {availability_zone} (only {sorted(zones) or 'none'})")
    authorization = config.get("authorizationConfig") or {}
    access_point_id = authorization.get("accessPointId")
    tls = config.get("transitEncryption") == "ENABLED"
    iam_on = authorization.get("iam") == "ENABLED"
    if (access_point_id or iam_on) and not tls:
        raise _fail("an access point or IAM authorization needs transitEncryption ENABLED")
    policy = getattr(fs, "file_system_policy", None)
    if not tls and _denies_plain_nfs(policy):
        raise _fail(f"the file system policy of {fs_id} refuses mounts without TLS")
    access_point = None
    if access_point_id:
        access_point = backend.access_points.get(access_point_id)
        if access_point is None or access_point.file_system_id != fs_id:
            raise _fail(f"access point {access_point_id} is not one of {fs_id}")
    if iam_on:
        if not task_role_arn:
            raise _fail("IAM authorization needs a task role")
        ap_arn = access_point.access_point_arn if access_point else None
        for action in [CLIENT_MOUNT] + ([] if read_only else [CLIENT_WRITE]):
            check_role(task_role_arn, action, fs.file_system_arn, ap_arn, region)
    elif policy:
        raise _fail(f"{fs_id} has a file system policy, which lets no anonymous client (IAM authorization off) in")
    base = efs_root / fs_id
    base.mkdir(parents=True, exist_ok=True)
    if access_point is None:
        return base / (config.get("rootDirectory") or "/").lstrip("/")
    root_directory = access_point.root_directory or {"Path": "/"}
    host = base / root_directory.get("Path", "/").lstrip("/")
    creation = root_directory.get("CreationInfo")
    if not host.exists():
        if not creation:  # EFS creates a missing root directory only with CreationInfo
            raise _fail(f"the root directory {root_directory.get('Path')} of {access_point_id} does not exist")
        host.mkdir(parents=True)
        host.chmod(int(str(creation["Permissions"]), 8))
        os.chown(host, int(creation["OwnerUid"]), int(creation["OwnerGid"]))
    posix = access_point.posix_user or {}
    if posix:
        _own(host, int(posix["Uid"]), int(posix["Gid"]))
    return host


def container_mounts(
    volumes: list[dict[str, Any]],
    mount_points: list[dict[str, Any]],
    **where: Any,
) -> dict[str, Path]:
    """Container path -> host directory for a container's mountPoints on EFS volumes (others are not mapped)."""
    by_name = {volume.get("name"): volume for volume in volumes or []}
    mounts = {}
    for point in mount_points or []:
        volume = by_name.get(point.get("sourceVolume"))
        if volume is None or "efsVolumeConfiguration" not in volume:
            continue
        mounts[point["containerPath"]] = mount(volume, bool(point.get("readOnly")), **where)
    return mounts


def _task_zone(task: Any, account: str, region: str) -> str | None:
    """The Availability Zone of the task's subnet (its ENI attachment), None when it has none."""
    for attachment in getattr(task, "attachments", []) or []:
        for detail in attachment.get("details", []):
            if detail.get("name") == "subnetId":
                subnet = ec2_backends[account][region].get_subnet(detail["value"])
                return subnet.availability_zone
    return None


def task_mounts(run: Any, definitions: list[dict[str, Any]]) -> dict[str, dict[str, Path]]:
    """Container name -> {container path: host directory} of a task's EFS volumes, mounted before any
    container starts (as ECS does); MountRefused when one cannot be."""
    volumes = getattr(run.definition, "volumes", None) or []
    if not any("efsVolumeConfiguration" in volume for volume in volumes):
        return {}
    where = {
        "task_role_arn": run.task_role_arn,
        "account": run.account,
        "region": run.region,
        "availability_zone": _task_zone(run.task, run.account, run.region),
        "efs_root": run.agent.settings.runtime_dir / "efs",
    }
    return {d["name"]: container_mounts(volumes, d.get("mountPoints") or [], **where) for d in definitions}
