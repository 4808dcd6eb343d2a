"""library/iam_roles.py against a moto server, through the real `ansible` CLI.

The module's AWS calls go through the weather proxy (embedded_aws/weather.py, no latency, no faults), which
counts every request it forwards by operation: that count is what the module really sent, on the wire. What
the roles hold is read with boto3 straight from the emulator (not counted).

One emulator reset for the whole file (a reset reloads moto's AWS managed policies: seconds); each test works
on roles of its own names, so the tests do not see each other's roles.

moto 5.2.5 answers GetRole with the role's tags, as AWS does, and returns policy documents URL-encoded, as AWS
does (boto3 decodes them).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import pytest
from ansible_runner import CountedModule, run_module
from emulator import Emulator, endpoint_env, free_port

MODULE = "iam_roles"
ACCOUNT = "123456789012"
STACK = {"airflow-ecs:stack": "t"}
TAGS = {**STACK, "airflow-ecs:region": "us-east-1", "owner": "data"}
TRUST = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "ecs-tasks.amazonaws.com"}, "Action": "sts:AssumeRole"}],
}
POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Sid": "ReadThisStacksSecrets",
            "Effect": "Allow",
            "Action": ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"],
            "Resource": f"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:t/*",
        }
    ],
}
EXECUTION_POLICY = "arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"
ADMIN = "arn:aws:iam::aws:policy/AdministratorAccess"


def iam(operation: str) -> str:
    return f"iam {operation}"


GET = iam("GetRole")
NO_OP = {GET: 1, iam("ListRolePolicies"): 1, iam("GetRolePolicy"): 1, iam("ListAttachedRolePolicies"): 1}


def role(name: str, **changes: Any) -> dict[str, Any]:
    """A role as the stack's roles pass it: trust, description, one inline policy, no managed policy, tags."""
    base = {
        "name": name,
        "description": f"{name} role",
        "assume_role_policy": TRUST,
        "inline_policies": {"stack-access": POLICY},
        "managed_policy_arns": [],
        "tags": TAGS,
    }
    return copy.deepcopy(base | changes)


def present(*roles: dict[str, Any]) -> dict[str, Any]:
    return {"roles": list(roles), "owner_tags": STACK}


def absent(*names: str) -> dict[str, Any]:
    return {"roles": [{"name": name} for name in names], "owner_tags": STACK, "state": "absent"}


@pytest.fixture(scope="module")
def blank(emulator: Emulator) -> Emulator:
    """The session's emulator, reset once for this file."""
    emulator.reset()
    return emulator


@pytest.fixture(scope="module")
def counted(blank: Emulator) -> Iterator[CountedModule]:
    proxy = CountedModule(MODULE, blank.url)
    yield proxy
    proxy.close()


def in_aws(emulator: Emulator, name: str) -> dict[str, Any] | None:
    """What the role holds, read uncounted; None when it does not exist."""
    client = emulator.client("iam")
    try:
        found = client.get_role(RoleName=name)["Role"]
    except client.exceptions.NoSuchEntityException:
        return None
    inline = client.list_role_policies(RoleName=name)["PolicyNames"]
    return {
        "description": found.get("Description", ""),
        "assume_role_policy": found["AssumeRolePolicyDocument"],
        "max_session_duration": found["MaxSessionDuration"],
        "inline_policies": {
            policy: client.get_role_policy(RoleName=name, PolicyName=policy)["PolicyDocument"] for policy in inline
        },
        "managed_policy_arns": sorted(
            policy["PolicyArn"] for policy in client.list_attached_role_policies(RoleName=name)["AttachedPolicies"]
        ),
        "tags": {tag["Key"]: tag["Value"] for tag in found.get("Tags", [])},
    }


def wanted(name: str, **changes: Any) -> dict[str, Any]:
    return {
        "description": f"{name} role",
        "assume_role_policy": TRUST,
        "max_session_duration": 3600,
        "inline_policies": {"stack-access": POLICY},
        "managed_policy_arns": [],
        "tags": TAGS,
    } | changes


def make_role(emulator: Emulator, name: str, tags: dict[str, str] = TAGS) -> str:
    """The role as a deploy leaves it, made with boto3 (uncounted); its ARN."""
    client = emulator.client("iam")
    arn = client.create_role(
        RoleName=name,
        AssumeRolePolicyDocument=json.dumps(TRUST),
        Description=f"{name} role",
        Tags=[{"Key": key, "Value": value} for key, value in tags.items()],
    )["Role"]["Arn"]
    client.put_role_policy(RoleName=name, PolicyName="stack-access", PolicyDocument=json.dumps(POLICY))
    return arn


def unchanged(name: str, **fields: Any) -> dict[str, Any]:
    return {
        "name": name,
        "arn": f"arn:aws:iam::{ACCOUNT}:role/{name}",
        "created": False,
        "deleted": False,
        "changed": False,
        "changes": [],
        "policies_put": [],
        "policies_deleted": [],
        "policies_attached": [],
        "policies_detached": [],
    } | fields


def without_id(results: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {name: {k: v for k, v in entry.items() if k != "role_id"} for name, entry in results.items()}


def test_create_then_a_rerun_only_reads(counted: CountedModule, blank: Emulator) -> None:
    name = "t-create"
    execution = role(name, managed_policy_arns=[EXECUTION_POLICY])
    created, calls = counted.run(present(execution))
    assert created["changed"] is True, created
    assert without_id(created["roles"]) == {
        name: unchanged(
            name, created=True, changed=True, policies_put=["stack-access"], policies_attached=[EXECUTION_POLICY]
        )
    }
    assert created["roles"][name]["role_id"]
    # One read that answers NoSuchEntity, the role with its trust, description and tags, its policies; no wait.
    assert calls == {GET: 1, iam("CreateRole"): 1, iam("PutRolePolicy"): 1, iam("AttachRolePolicy"): 1}
    assert in_aws(blank, name) == wanted(name, managed_policy_arns=[EXECUTION_POLICY])

    again, calls = counted.run(present(execution), diff=True)
    assert again["changed"] is False, again
    assert without_id(again["roles"]) == {name: unchanged(name)}
    assert calls == NO_OP  # GetRole x1, ListRolePolicies x1, GetRolePolicy x1, ListAttachedRolePolicies x1
    assert again["diff"]["before"] == again["diff"]["after"]
    assert again["diff"]["after"][name]["managed_policy_arns"] == [EXECUTION_POLICY]

    # Fields not given are neither read nor changed: only GetRole.
    bare, calls = counted.run(present({"name": name, "assume_role_policy": TRUST}))
    assert bare["changed"] is False, bare
    assert calls == {GET: 1}


def test_check_mode_writes_nothing(counted: CountedModule, blank: Emulator) -> None:
    name = "t-check"
    planned, calls = counted.run(present(role(name)), check=True, diff=True)
    assert planned["changed"] is True, planned
    assert planned["roles"][name] == unchanged(
        name, arn=None, role_id=None, created=True, changed=True, policies_put=["stack-access"]
    )
    assert planned["diff"]["before"] == {}
    assert planned["diff"]["after"][name]["inline_policies"] == {"stack-access": POLICY}
    assert calls == {GET: 1}
    assert in_aws(blank, name) is None

    make_role(blank, name)
    drifted = role(name, description="other", tags={**STACK, "owner": "ops"}, managed_policy_arns=[EXECUTION_POLICY])
    planned, calls = counted.run(present(drifted), check=True, diff=True)
    assert without_id(planned["roles"]) == {
        name: unchanged(
            name,
            changed=True,
            changes=["description", "tags", "managed_policy_arns"],
            policies_attached=[EXECUTION_POLICY],
        )
    }, planned
    assert planned["diff"]["before"][name]["description"] == f"{name} role"
    assert planned["diff"]["after"][name]["tags"] == {**STACK, "owner": "ops"}
    assert calls == NO_OP
    assert in_aws(blank, name) == wanted(name)

    planned, calls = counted.run(absent(name), check=True)
    assert planned["roles"][name]["deleted"] is True, planned
    assert calls == {GET: 1}
    assert in_aws(blank, name) == wanted(name)


def test_drift_is_repaired(counted: CountedModule, blank: Emulator) -> None:
    """Inline and trust policy, tags and description changed, an extra inline policy, AdministratorAccess attached."""
    name = "t-drift"
    make_role(blank, name)
    client = blank.client("iam")
    widened = copy.deepcopy(POLICY)
    widened["Statement"][0]["Resource"] = "*"
    client.put_role_policy(RoleName=name, PolicyName="stack-access", PolicyDocument=json.dumps(widened))
    client.put_role_policy(RoleName=name, PolicyName="by-hand", PolicyDocument=json.dumps(POLICY))
    client.attach_role_policy(RoleName=name, PolicyArn=ADMIN)
    anyone = copy.deepcopy(TRUST)
    anyone["Statement"][0]["Principal"] = {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}
    client.update_assume_role_policy(RoleName=name, PolicyDocument=json.dumps(anyone))
    client.untag_role(RoleName=name, TagKeys=["owner"])
    client.tag_role(RoleName=name, Tags=[{"Key": "added", "Value": "by hand"}])
    client.update_role_description(RoleName=name, Description="renamed")

    repaired, calls = counted.run(present(role(name)), diff=True)
    assert without_id(repaired["roles"]) == {
        name: unchanged(
            name,
            changed=True,
            changes=["assume_role_policy", "description", "tags", "inline_policies", "managed_policy_arns"],
            policies_put=["stack-access"],
            policies_deleted=["by-hand"],
            policies_detached=[ADMIN],
        )
    }, repaired
    assert calls == {
        **NO_OP,  # the extra policy is deleted unread
        iam("UpdateAssumeRolePolicy"): 1,
        iam("UpdateRoleDescription"): 1,
        iam("UntagRole"): 1,
        iam("TagRole"): 1,
        iam("DetachRolePolicy"): 1,
        iam("DeleteRolePolicy"): 1,
        iam("PutRolePolicy"): 1,
    }
    before, after = repaired["diff"]["before"][name], repaired["diff"]["after"][name]
    assert before["managed_policy_arns"] == [ADMIN] and after["managed_policy_arns"] == []
    assert before["tags"] == {**STACK, "airflow-ecs:region": "us-east-1", "added": "by hand"}
    assert after["tags"] == TAGS
    assert in_aws(blank, name) == wanted(name)

    again, calls = counted.run(present(role(name)))
    assert again["changed"] is False, again
    assert calls == NO_OP


def test_documents_are_compared_as_policies_not_as_text(counted: CountedModule, blank: Emulator) -> None:
    """Key order, list order and one-item lists against strings are no change; a document may come as JSON text."""
    name = "t-same"
    make_role(blank, name)
    same = copy.deepcopy(POLICY)
    same["Statement"][0]["Action"] = list(reversed(same["Statement"][0]["Action"]))
    same["Statement"][0]["Resource"] = [same["Statement"][0]["Resource"]]
    trust = {"Statement": [dict(reversed(list(TRUST["Statement"][0].items())))], "Version": "2012-10-17"}
    trust["Statement"][0]["Action"] = ["sts:AssumeRole"]
    as_text = {"stack-access": json.dumps(same)}  # `| to_json`, as iam_policy's policy_json took it
    result, calls = counted.run(present(role(name, assume_role_policy=trust, inline_policies=as_text)))
    assert result["changed"] is False, result
    assert calls == NO_OP


def test_absent_deletes_a_role_with_inline_and_managed_policies(counted: CountedModule, blank: Emulator) -> None:
    name, neighbour = "t-gone", "t-gone-old"  # same prefix: never touched
    make_role(blank, name)
    make_role(blank, neighbour)
    client = blank.client("iam")
    client.attach_role_policy(RoleName=name, PolicyArn=EXECUTION_POLICY)
    client.put_role_policy(RoleName=name, PolicyName="second", PolicyDocument=json.dumps(POLICY))
    client.create_instance_profile(InstanceProfileName=name)
    client.add_role_to_instance_profile(InstanceProfileName=name, RoleName=name)

    deleted, calls = counted.run(absent(name), diff=True)
    assert deleted["changed"] is True, deleted
    assert without_id(deleted["roles"]) == {name: unchanged(name, changed=True, deleted=True)}
    assert deleted["diff"]["after"] == {} and deleted["diff"]["before"][name]["description"] == f"{name} role"
    assert calls == {
        GET: 1,
        iam("ListInstanceProfilesForRole"): 1,
        iam("RemoveRoleFromInstanceProfile"): 1,
        iam("ListAttachedRolePolicies"): 1,
        iam("DetachRolePolicy"): 1,
        iam("ListRolePolicies"): 1,
        iam("DeleteRolePolicy"): 2,
        iam("DeleteRole"): 1,
    }
    assert in_aws(blank, name) is None
    assert in_aws(blank, neighbour) == wanted(neighbour)
    assert client.get_instance_profile(InstanceProfileName=name)["InstanceProfile"]["Roles"] == []

    again, calls = counted.run(absent(name))
    assert again["changed"] is False, again
    assert again["roles"] == {name: unchanged(name, arn=None, role_id=None)}
    assert calls == {GET: 1}


@pytest.mark.parametrize("state", ["absent", "present"])
def test_a_role_without_the_owner_tags_is_refused(counted: CountedModule, blank: Emulator, state: str) -> None:
    """A role of that name someone else owns (another stack's, no stack tag) is neither deleted nor changed."""
    name = f"t-foreign-{state}"
    make_role(blank, name, tags={"airflow-ecs:stack": "other"})
    mine = f"t-mine-{state}"
    make_role(blank, mine)
    args = absent(mine, name) if state == "absent" else present(role(mine, description="x"), role(name))
    result, calls = counted.run(args)
    assert result.get("failed") is True, result
    assert result["msg"] == (
        f"IAM role '{name}' exists but does not carry the owner tags {{'airflow-ecs:stack': 't'}} (its tags: "
        "{'airflow-ecs:stack': 'other'}); it belongs to someone else (IAM names are global per account): it is left "
        "as it is. Nothing was changed."
    )
    assert calls == {GET: 2}  # every role is read before any is written
    assert in_aws(blank, name) == wanted(name, tags={"airflow-ecs:stack": "other"})
    assert in_aws(blank, mine) == wanted(mine)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (present(role("t bad")), "roles[0] (t bad): name must be 1 to 64 characters"),
        (present(role("t-a"), role("t-a")), "roles names the same role twice: t-a"),
        (present(role("t-a", assume_role_policy=None)), "roles[0] (t-a): assume_role_policy is required"),
        (present(role("t-a", assume_role_policy={"Version": "2012-10-17"})), "assume_role_policy has no Statement"),
        (present(role("t-a", managed_policy_arns=["AdministratorAccess"])), "is not the ARN of a managed policy"),
        (present(role("t-a", max_session_duration=60)), "max_session_duration must be 3600 to 43200 seconds, not 60"),
        (present(role("t-a", path="svc")), "path 'svc' must be / or start and end with /"),
        (present(role("t-a", tags={"owner": "data"})), "tags lack the owner tags {'airflow-ecs:stack': 't'}"),
        (present(role("t-a", tags={"aws:x": "y", **STACK})), "tags: key 'aws:x' starts with aws:"),
        (
            present(role("t-a", inline_policies={"big": {**POLICY, "Sid": "x" * 10300}})),
            "IAM allows 10240 for all of a role's inline policies",
        ),
        ({"roles": [{"name": "t-a"}], "state": "absent"}, "owner_tags is required with state=absent"),
    ],
)
def test_bad_input_is_refused_before_any_call(args: dict[str, Any], message: str) -> None:
    """Pointed at a port nothing listens on: any AWS call would fail with a connection error instead."""
    result = run_module(MODULE, args, env=endpoint_env(f"http://127.0.0.1:{free_port()}"))
    assert result.get("failed") is True, result
    assert message in result["msg"], result["msg"]
    assert result["msg"].startswith("Cannot manage the IAM roles: ") and result["msg"].endswith("Nothing was changed.")
    assert result.get("changed", False) is False


def test_url_encoded_documents_are_decoded(load_library_module: Any) -> None:
    """IAM sends documents URL-encoded; boto3 decodes them, and a string that reaches the module is decoded too."""
    iam_roles = load_library_module(MODULE)
    encoded = "%7B%22Version%22%3A%222012-10-17%22%2C%22Statement%22%3A%5B%7B%22Effect%22%3A%22Allow%22%7D%5D%7D"
    assert iam_roles.parsed(encoded) == {"Version": "2012-10-17", "Statement": [{"Effect": "Allow"}]}
    assert iam_roles.parsed(POLICY) is POLICY
