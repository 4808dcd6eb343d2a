#!/usr/bin/python
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Manage several IAM roles with their inline and managed policies in one module run (project library module)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: iam_roles
short_description: Manage several IAM roles, their trust policies, inline and managed policies and tags
description:
  - Creates, updates or deletes a list of IAM roles, each found by its name, with its trust policy, description,
    maximum session duration, inline policies, attached managed policies and tags, in one module run.
  - M(amazon.aws.iam_role) and M(amazon.aws.iam_policy), the two tasks a role with an inline policy needs
    upstream, read the role twice (C(GetRole)), its attached policies once or twice and its inline policies four
    times (C(ListRolePolicies) three times, C(GetRolePolicy) once) when nothing changes. Here each role is read
    once with C(GetRole), whose answer holds the trust policy, the description, the maximum session duration and
    the tags; then, only when O(roles[].inline_policies) is given, one C(ListRolePolicies) and one
    C(GetRolePolicy) per listed policy the role has; and, only when O(roles[].managed_policy_arns) is given, one
    C(ListAttachedRolePolicies). When nothing differs those are the only calls.
  - Policy documents are compared as parsed JSON (IAM returns them URL-encoded), the way amazon.aws'
    C(compare_policies) does it (the order of keys, statements and list items does not count, nor does a single
    item given as a string rather than a one-item list; a document without C(Version) counts as C(2008-10-17)).
  - A missing role is created with one C(CreateRole) carrying its trust policy, path, description, maximum
    session duration and tags, then gets a C(PutRolePolicy) per inline policy and a C(AttachRolePolicy) per
    managed policy. The run does not wait for IAM to propagate the new role (neither did M(amazon.aws.iam_role)
    with its default C(wait=true)); a consumer that assumes it, such as C(ecs_run_task), retries for that.
  - An existing role gets a C(UpdateAssumeRolePolicy) for a changed trust policy, C(UpdateRoleDescription) for a
    changed description, C(UpdateRole) for a changed maximum session duration, C(UntagRole) and C(TagRole) for
    changed tags, a C(DeleteRolePolicy) per inline policy not listed, a C(DetachRolePolicy) per managed policy not
    listed (an out-of-band C(AdministratorAccess) is detached), then a C(PutRolePolicy) per missing or changed
    inline policy and an C(AttachRolePolicy) per missing managed policy. Permissions are removed before any are
    added.
  - With O(state=absent) each role of O(roles) that exists is deleted with what AWS requires first (it is removed
    from its instance profiles (C(ListInstanceProfilesForRole), C(RemoveRoleFromInstanceProfile); the profiles
    themselves are left), its managed policies are detached and its inline policies deleted), then C(DeleteRole).
    A role that does not exist costs one C(GetRole).
  - Every role of the run is read before anything is written. An existing role that does not carry every tag of
    O(owner_tags) fails the run before any write, with either state, naming the role and its tags. Only the
    named roles are touched.
  - Input is checked before any AWS call; every problem is reported in one message that names the role and the
    field.
  - Supports check mode and diff mode. In check mode nothing is changed; RV(roles) and the diff show what the
    run would do (RV(roles.arn) is null for a role that does not exist yet).
author:
  - airflow-ecs project
options:
  roles:
    description:
      - The roles, each with what it should have. A field left out (null) is neither read nor changed, except
        O(roles[].assume_role_policy), which is required with O(state=present).
      - With O(state=absent) only O(roles[].name) is read.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description:
          - Name of the role, 1 to 64 characters from C(A-Z), C(a-z), C(0-9) and C(+=,.@_-). It identifies the
            role (IAM names are unique per account, whatever the path).
        type: str
        required: true
      path:
        description:
          - Path of the role, V(/) or C(/a/b/); left out, V(/) for a new role.
          - IAM cannot move a role to another path; a different path of an existing role fails the run before any
            write.
        type: str
      description:
        description:
          - The role's description, up to 1000 characters; V("") clears it.
        type: str
      assume_role_policy:
        description:
          - The trust policy (who may assume the role), as a dict. Required with O(state=present).
        type: dict
      max_session_duration:
        description:
          - Maximum session duration in seconds, 3600 to 43200; a new role without it gets IAM's 3600.
        type: int
      inline_policies:
        description:
          - The role's inline policies, policy name -> document (a dict, or its JSON text). Inline policies of the
            role that are not listed are deleted; V({}) deletes them all.
          - IAM allows 10240 characters (without white space) for all of a role's inline policies together.
        type: dict
      managed_policy_arns:
        description:
          - ARNs of the managed policies attached to the role. Attached policies that are not listed are detached;
            V([]) detaches them all.
        type: list
        elements: str
      tags:
        description:
          - Tags of the role, as a dict; values are sent as strings. At most 50, keys not starting with C(aws:).
        type: dict
  owner_tags:
    description:
      - Tags (key -> value) an existing role must carry to be changed or deleted, such as the stack tag.
      - Required with O(state=absent). A role of O(roles) that exists without them fails the run before any
        write (it belongs to someone else). With O(state=present) they must be part of every role's
        O(roles[].tags) when those are given.
    type: dict
  purge_tags:
    description:
      - Remove the tags of a role that are not in its O(roles[].tags). Tags whose key starts with C(aws:) are
        never removed.
      - Has no effect on a role whose O(roles[].tags) is not given.
    type: bool
    default: true
  state:
    description:
      - V(present) creates and updates O(roles); V(absent) deletes them.
    type: str
    choices: [present, absent]
    default: present
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
notes:
  - API calls per existing role when nothing changes are one C(GetRole), plus one C(ListRolePolicies) and one
    C(GetRolePolicy) per listed inline policy it has when O(roles[].inline_policies) is given, plus one
    C(ListAttachedRolePolicies) when O(roles[].managed_policy_arns) is given. A role with one inline policy and
    its managed policies managed costs 4 calls.
  - A new role costs C(GetRole), C(CreateRole) and one C(PutRolePolicy), respectively C(AttachRolePolicy), per
    inline, respectively managed, policy. With O(state=absent) a role costs one C(GetRole) and, when it exists,
    C(ListInstanceProfilesForRole), C(ListAttachedRolePolicies), C(ListRolePolicies), one call per link or policy
    removed and C(DeleteRole).
  - IAM actions used are iam:GetRole, iam:ListRolePolicies, iam:GetRolePolicy, iam:ListAttachedRolePolicies,
    iam:CreateRole (and iam:TagRole for tags given at creation), iam:PutRolePolicy, iam:AttachRolePolicy,
    iam:UpdateAssumeRolePolicy, iam:UpdateRoleDescription, iam:UpdateRole (max_session_duration only),
    iam:TagRole, iam:UntagRole, iam:DeleteRolePolicy, iam:DetachRolePolicy, and for O(state=absent)
    iam:ListInstanceProfilesForRole, iam:RemoveRoleFromInstanceProfile (a role in an instance profile only) and
    iam:DeleteRole.
  - Permissions boundaries and instance profiles are not managed.
  - Calls and time against M(amazon.aws.iam_role) with M(amazon.aws.iam_policy) are in library/README.md.
seealso:
  - module: amazon.aws.iam_role
  - module: amazon.aws.iam_policy
  - name: IAM and STS quotas
    description: Sizes of inline policies, tags per role.
    link: https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_iam-quotas.html
"""

EXAMPLES = r"""
- name: Create the task execution role with its inline policy and one managed policy
  iam_roles:
    roles:
      - name: airflow-ecs-execution
        description: airflow ECS task execution
        assume_role_policy:
          Version: "2012-10-17"
          Statement:
            - {Effect: Allow, Principal: {Service: ecs-tasks.amazonaws.com}, Action: sts:AssumeRole}
        inline_policies:
          read-stack-secrets:
            Version: "2012-10-17"
            Statement:
              - Effect: Allow
                Action: [secretsmanager:GetSecretValue]
                Resource: arn:aws:secretsmanager:us-east-1:123456789012:secret:airflow/*
        managed_policy_arns: [arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy]
        tags: {airflow-ecs:stack: airflow}
    owner_tags: {airflow-ecs:stack: airflow}
  register: __roles

- name: Show the role's ARN
  ansible.builtin.debug:
    msg: "{{ __roles.roles['airflow-ecs-execution'].arn }}"

- name: Delete the role with its policies (only if it carries the stack tag)
  iam_roles:
    roles: [{name: airflow-ecs-execution}]
    owner_tags: {airflow-ecs:stack: airflow}
    state: absent
"""

RETURN = r"""
roles:
  description:
    - Every role of O(roles), by name. In check mode, what the run would do.
  returned: always
  type: dict
  contains:
    name:
      description: The role's name.
      type: str
      sample: airflow-ecs-execution
    arn:
      description: The role's ARN; null for a role that does not exist (in check mode, one the run would create).
      type: str
      sample: arn:aws:iam::123456789012:role/airflow-ecs-execution
    role_id:
      description: The role's unique id; null when it does not exist.
      type: str
    created:
      description: Whether the run created the role.
      type: bool
    deleted:
      description: Whether the run deleted the role (O(state=absent)).
      type: bool
    changed:
      description: Whether the run created, changed or deleted the role.
      type: bool
    changes:
      description:
        - What the run set on an existing role, of V(assume_role_policy), V(description), V(max_session_duration),
          V(tags), V(inline_policies) and V(managed_policy_arns).
      type: list
      elements: str
      sample: [inline_policies]
    policies_put:
      description: The inline policies the run put (new or changed).
      type: list
      elements: str
    policies_deleted:
      description: The inline policies the run deleted.
      type: list
      elements: str
    policies_attached:
      description: The managed policies the run attached.
      type: list
      elements: str
    policies_detached:
      description: The managed policies the run detached.
      type: list
      elements: str
      sample: ["arn:aws:iam::aws:policy/AdministratorAccess"]
diff:
  description:
    - Every role that exists before, respectively after, the run, by name, with its path, description, maximum
      session duration, trust policy and, where managed, its tags, inline policies and managed policy ARNs.
  returned: in diff mode
  type: dict
  contains:
    before:
      description: The roles before the run.
      type: dict
    after:
      description: The roles after the run.
      type: dict
"""

import contextlib
import json
import re
from typing import Any
from urllib.parse import unquote

with contextlib.suppress(ImportError):  # a missing botocore is reported by AnsibleAWSModule
    from botocore.exceptions import BotoCoreError, ClientError

from ansible.module_utils.aws_retry import jittered_backoff
from ansible.module_utils.common.text.converters import to_text
from ansible.module_utils.desired_tags import desired_tags
from ansible.module_utils.iam_read import read_role
from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.policy import compare_policies
from ansible_collections.amazon.aws.plugins.module_utils.tagging import (
    ansible_dict_to_boto3_tag_list,
    boto3_tag_list_to_ansible_dict,
    compare_aws_tags,
)

NAME = re.compile(r"[\w+=,.@-]{1,64}")
POLICY_NAME = re.compile(r"[\w+=,.@-]{1,128}")
PATH = re.compile(r"/([\x21-\x7e]{0,510}/)?")
POLICY_ARN = re.compile(r"arn:aws[a-z-]*:iam::(aws|[0-9]{12}):policy/[\x21-\x7e]{1,1024}")
DESCRIPTION = re.compile(r"[\t\n\r\x20-\x7e\xa1-\xff]*")
MAX_TAGS = 50
MAX_INLINE_SIZE = 10240  # characters of all a role's inline policies, white space not counted
DEFAULT_SESSION = 3600
FIELDS = ("assume_role_policy", "description", "max_session_duration", "tags", "inline_policies", "managed_policy_arns")


def argument_spec() -> dict[str, Any]:
    role = dict(
        name=dict(type="str", required=True),
        path=dict(type="str"),
        description=dict(type="str"),
        assume_role_policy=dict(type="dict"),
        max_session_duration=dict(type="int"),
        inline_policies=dict(type="dict"),
        managed_policy_arns=dict(type="list", elements="str"),
        tags=dict(type="dict"),
    )
    return dict(
        roles=dict(type="list", elements="dict", options=role, required=True),
        owner_tags=dict(type="dict"),
        purge_tags=dict(type="bool", default=True),
        state=dict(type="str", default="present", choices=["present", "absent"]),
    )


# --- Input ---------------------------------------------------------------------------------------


def strings(tags: dict[str, Any] | None) -> dict[str, str] | None:
    return None if tags is None else {to_text(key): to_text(value) for key, value in tags.items()}


def tag_problems(option: str, tags: dict[str, Any]) -> list[str]:
    problems = []
    if len(tags) > MAX_TAGS:
        problems.append(f"{option}: at most {MAX_TAGS}, not {len(tags)}")
    for raw_key, value in tags.items():
        key = to_text(raw_key)
        if not 1 <= len(key) <= 128:
            problems.append(f"{option}: key {key!r} must be 1 to 128 characters")
        if key.startswith("aws:"):
            problems.append(f"{option}: key {key!r} starts with aws:, which AWS reserves")
        if value is None or isinstance(value, (dict, list)):
            problems.append(f"{option}.{key} must be a string")
        elif len(to_text(value)) > 256:
            problems.append(f"{option}.{key} must be at most 256 characters")
    return problems


def document_problem(option: str, document: Any) -> str | None:
    if not isinstance(document, dict):
        return f"{option} must be a policy document (a dict), not {type(document).__name__}"
    statements = document.get("Statement")
    if not statements or not isinstance(statements, (dict, list)):
        return f"{option} has no Statement"
    return None


def loaded(document: Any) -> Any:
    """A policy document given as JSON text (`| to_json`), as a dict; anything else as it is."""
    if isinstance(document, str):
        with contextlib.suppress(ValueError):
            return json.loads(document)
    return document


def compact(document: dict[str, Any]) -> str:
    return json.dumps(document, separators=(",", ":"), sort_keys=True)


def policy_problems(role: dict[str, Any]) -> list[str]:
    problems = []
    if role["assume_role_policy"] is None:
        problems.append("assume_role_policy is required with state=present")
    elif problem := document_problem("assume_role_policy", role["assume_role_policy"]):
        problems.append(problem)
    inline = role["inline_policies"]
    if inline is not None:
        for name, document in inline.items():
            if not POLICY_NAME.fullmatch(to_text(name)):
                problems.append(
                    f"inline_policies: name {name!r} must be 1 to 128 characters from A-Z, a-z, 0-9 and '+=,.@_-'"
                )
            if problem := document_problem(f"inline_policies.{name}", document):
                problems.append(problem)
        size = sum(len(compact(document)) for document in inline.values() if isinstance(document, dict))
        if size > MAX_INLINE_SIZE:
            problems.append(
                f"inline_policies hold {size} characters (without white space); IAM allows {MAX_INLINE_SIZE} for all "
                "of a role's inline policies: use a managed policy for the rest"
            )
    arns = role["managed_policy_arns"]
    for index, arn in enumerate(arns or []):
        if not POLICY_ARN.fullmatch(arn):
            problems.append(f"managed_policy_arns[{index}] {arn!r} is not the ARN of a managed policy")
    repeated = sorted({arn for arn in arns or [] if arns.count(arn) > 1})
    if repeated:
        problems.append(f"managed_policy_arns lists {', '.join(repeated)} twice")
    return problems


def role_problems(role: dict[str, Any], owner_tags: dict[str, str] | None) -> list[str]:
    """What is wrong with one role of O(roles) for state=present, one phrase per field."""
    problems = policy_problems(role)
    if role["path"] is not None and not PATH.fullmatch(role["path"]):
        problems.append(f"path {role['path']!r} must be / or start and end with / (at most 512 characters)")
    description = role["description"]
    if description is not None and (len(description) > 1000 or not DESCRIPTION.fullmatch(description)):
        problems.append("description must be at most 1000 characters of printable Latin-1 text")
    duration = role["max_session_duration"]
    if duration is not None and not 3600 <= duration <= 43200:
        problems.append(f"max_session_duration must be 3600 to 43200 seconds, not {duration}")
    if role["tags"] is not None:
        problems += tag_problems("tags", role["tags"])
        missing = {key: value for key, value in (owner_tags or {}).items() if strings(role["tags"]).get(key) != value}
        if missing:
            problems.append(f"tags lack the owner tags {missing}: the role would no longer be recognised as owned")
    return problems


def check_input(module: AnsibleAWSModule) -> list[dict[str, Any]]:
    """The roles with their wanted fields; fails, before any AWS call, with every problem in one message."""
    params = module.params
    owner_tags = strings(params["owner_tags"])
    problems, wanted = [], []
    for index, given in enumerate(params["roles"]):
        inline = given["inline_policies"]
        role = given if not inline else {**given, "inline_policies": {to_text(k): loaded(v) for k, v in inline.items()}}
        name = role["name"]
        found = []
        if not NAME.fullmatch(name):
            found.append("name must be 1 to 64 characters from A-Z, a-z, 0-9 and '+=,.@_-'")
        if params["state"] == "present":
            found += role_problems(role, owner_tags)
        problems += [f"roles[{index}] ({name}): {problem}" for problem in found]
        wanted.append({**role, "tags": strings(role["tags"])})
    names = [role["name"] for role in wanted]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        problems.append(f"roles names the same role twice: {', '.join(repeated)}")
    if params["owner_tags"] is not None:
        problems += tag_problems("owner_tags", params["owner_tags"])
    if params["state"] == "absent" and not owner_tags:
        problems.append(
            "owner_tags is required with state=absent: give the tags that mark the caller's roles (such as the stack "
            "tag), so that a role of the same name that someone else owns is never deleted"
        )
    if problems:
        module.fail_json(msg="Cannot manage the IAM roles: " + "; ".join(problems) + ". Nothing was changed.")
    return wanted


# --- Reading -------------------------------------------------------------------------------------


def parsed(document: Any) -> Any:
    """A policy document as a dict (boto3 decodes IAM's URL-encoded JSON; a string is decoded here)."""
    if isinstance(document, str):
        return json.loads(unquote(document))
    return document


def list_pages(module: AnsibleAWSModule, method: Any, key: str, name: str, what: str) -> list[Any]:
    """Every item of a Marker-paged IAM listing of a role."""
    found: list[Any] = []
    request: dict[str, Any] = {"RoleName": name}
    while True:
        try:
            page = method(**request, aws_retry=True)
        except is_boto3_error_code("NoSuchEntity"):
            return found  # deleted meanwhile
        except (BotoCoreError, ClientError) as e:  # pylint: disable=duplicate-except
            module.fail_json_aws(e, msg=f"Failed to list the {what} of IAM role '{name}'")
        found += page.get(key, [])
        if not page.get("IsTruncated"):
            return found
        request["Marker"] = page["Marker"]


def inline_names(module: AnsibleAWSModule, client: Any, name: str) -> list[str]:
    return list_pages(module, client.list_role_policies, "PolicyNames", name, "inline policies")


def attached_arns(module: AnsibleAWSModule, client: Any, name: str) -> list[str]:
    attached = list_pages(module, client.list_attached_role_policies, "AttachedPolicies", name, "managed policies")
    return [policy["PolicyArn"] for policy in attached]


def read_inline(module: AnsibleAWSModule, client: Any, name: str, policy: str) -> dict[str, Any] | None:
    try:
        answer = client.get_role_policy(RoleName=name, PolicyName=policy, aws_retry=True)
    except is_boto3_error_code("NoSuchEntity"):
        return None
    except (BotoCoreError, ClientError) as e:  # pylint: disable=duplicate-except
        module.fail_json_aws(e, msg=f"Failed to read inline policy '{policy}' of IAM role '{name}'")
    return parsed(answer["PolicyDocument"])


def owner_problem(name: str, role: dict[str, Any], owner_tags: dict[str, str] | None) -> str | None:
    tags = boto3_tag_list_to_ansible_dict(role.get("Tags", []))
    missing = {key: value for key, value in (owner_tags or {}).items() if tags.get(key) != value}
    if not missing:
        return None
    return (
        f"IAM role '{name}' exists but does not carry the owner tags {missing} (its tags: {tags}); it belongs to "
        "someone else (IAM names are global per account): it is left as it is"
    )


# --- Planning ------------------------------------------------------------------------------------


def view_of(role: dict[str, Any]) -> dict[str, Any]:
    """What the diff shows of an existing role read with GetRole."""
    return {
        "path": role.get("Path", "/"),
        "description": role.get("Description", ""),
        "max_session_duration": role.get("MaxSessionDuration", DEFAULT_SESSION),
        "assume_role_policy": parsed(role.get("AssumeRolePolicyDocument")),
    }


def plan_inline(module: AnsibleAWSModule, client: Any, name: str, wanted: dict[str, Any], plan: dict) -> None:
    """Which inline policies to put and delete; reads only the listed policies the role has."""
    existing = inline_names(module, client, name) if plan["exists"] else []
    current = {}
    for policy in existing:
        if policy in wanted:
            document = read_inline(module, client, name, policy)
            if document is not None:
                current[policy] = document
    plan["policies_deleted"] = sorted(policy for policy in existing if policy not in wanted)
    plan["policies_put"] = sorted(
        policy
        for policy, document in wanted.items()
        if policy not in current or compare_policies(current[policy], document)
    )
    if plan["exists"]:
        plan["before"]["inline_policies"] = {**current, **{policy: "(not read)" for policy in plan["policies_deleted"]}}
    plan["after"]["inline_policies"] = dict(wanted)


def plan_managed(module: AnsibleAWSModule, client: Any, name: str, wanted: list[str], plan: dict) -> None:
    current = attached_arns(module, client, name) if plan["exists"] else []
    plan["policies_detached"] = sorted(arn for arn in current if arn not in wanted)
    plan["policies_attached"] = [arn for arn in wanted if arn not in current]
    if plan["exists"]:
        plan["before"]["managed_policy_arns"] = sorted(current)
    plan["after"]["managed_policy_arns"] = sorted(wanted)


def empty_plan(name: str, existing: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "name": name,
        "exists": existing is not None,
        "role": existing,
        "changes": [],
        "tags_to_set": {},
        "tags_to_unset": [],
        "policies_put": [],
        "policies_deleted": [],
        "policies_attached": [],
        "policies_detached": [],
        "before": view_of(existing) if existing is not None else {},
        "after": {},
    }


def plan_role(module: AnsibleAWSModule, client: Any, wanted: dict[str, Any], existing: dict | None) -> dict[str, Any]:
    """What to do for one role of O(roles) with state=present, and its view before and after."""
    name = wanted["name"]
    plan = empty_plan(name, existing)
    before = plan["before"]
    after = {
        "path": wanted["path"] or "/",
        "description": wanted["description"] or "",
        "max_session_duration": wanted["max_session_duration"] or DEFAULT_SESSION,
        "assume_role_policy": wanted["assume_role_policy"],
    }
    if existing is not None:
        after["path"] = before["path"]
        if wanted["description"] is None:
            after["description"] = before["description"]
        if wanted["max_session_duration"] is None:
            after["max_session_duration"] = before["max_session_duration"]
        if compare_policies(before["assume_role_policy"], wanted["assume_role_policy"]):
            plan["changes"].append("assume_role_policy")
        for field in ("description", "max_session_duration"):
            if after[field] != before[field]:
                plan["changes"].append(field)
    plan["after"] = after

    if wanted["tags"] is not None:
        current = boto3_tag_list_to_ansible_dict(existing.get("Tags", [])) if existing else {}
        params = {"tags": wanted["tags"], "purge_tags": module.params["purge_tags"]}
        after["tags"] = desired_tags(params, current)
        if existing is not None:
            before["tags"] = current
            plan["tags_to_set"], plan["tags_to_unset"] = compare_aws_tags(current, wanted["tags"], params["purge_tags"])
            if after["tags"] != current:
                plan["changes"].append("tags")

    if wanted["inline_policies"] is not None:
        plan_inline(module, client, name, wanted["inline_policies"], plan)
        if existing is not None and (plan["policies_put"] or plan["policies_deleted"]):
            plan["changes"].append("inline_policies")
    if wanted["managed_policy_arns"] is not None:
        plan_managed(module, client, name, wanted["managed_policy_arns"], plan)
        if existing is not None and (plan["policies_attached"] or plan["policies_detached"]):
            plan["changes"].append("managed_policy_arns")
    return plan


# --- Writing -------------------------------------------------------------------------------------


def call(module: AnsibleAWSModule, method: Any, msg: str, fresh: bool = False, gone_ok: bool = False, **kwargs) -> Any:
    """One write. On a role made by this run, NoSuchEntity is retried a little: IAM is eventually consistent."""
    try:
        if fresh:
            return jittered_backoff("NoSuchEntity", retries=5, delay=1)(method)(**kwargs)
        return method(**kwargs, aws_retry=True)
    except (BotoCoreError, ClientError) as e:
        if gone_ok and isinstance(e, ClientError) and e.response.get("Error", {}).get("Code") == "NoSuchEntity":
            return None
        module.fail_json_aws(e, msg=msg)


def create_role(module: AnsibleAWSModule, client: Any, wanted: dict[str, Any]) -> dict[str, Any]:
    name = wanted["name"]
    request: dict[str, Any] = {
        "RoleName": name,
        "Path": wanted["path"] or "/",
        "AssumeRolePolicyDocument": json.dumps(wanted["assume_role_policy"]),
    }
    if wanted["description"]:
        request["Description"] = wanted["description"]
    if wanted["max_session_duration"] is not None:
        request["MaxSessionDuration"] = wanted["max_session_duration"]
    if wanted["tags"]:
        request["Tags"] = ansible_dict_to_boto3_tag_list(wanted["tags"])
    return call(module, client.create_role, f"Failed to create IAM role '{name}'", **request)["Role"]


def update_role(module: AnsibleAWSModule, client: Any, wanted: dict[str, Any], plan: dict[str, Any]) -> None:
    """The role's own fields and tags (plan_role's changes)."""
    name, changes = wanted["name"], plan["changes"]
    if "assume_role_policy" in changes:
        msg = f"Failed to update the trust policy of IAM role '{name}'"
        document = json.dumps(wanted["assume_role_policy"])
        call(module, client.update_assume_role_policy, msg, RoleName=name, PolicyDocument=document)
    if "description" in changes:
        msg = f"Failed to update the description of IAM role '{name}'"
        call(module, client.update_role_description, msg, RoleName=name, Description=wanted["description"])
    if "max_session_duration" in changes:
        msg = f"Failed to update the maximum session duration of IAM role '{name}'"
        call(module, client.update_role, msg, RoleName=name, MaxSessionDuration=wanted["max_session_duration"])
    if plan["tags_to_unset"]:
        msg = f"Failed to remove tags from IAM role '{name}'"
        call(module, client.untag_role, msg, RoleName=name, TagKeys=plan["tags_to_unset"])
    if plan["tags_to_set"]:
        tags = ansible_dict_to_boto3_tag_list(plan["tags_to_set"])
        call(module, client.tag_role, f"Failed to tag IAM role '{name}'", RoleName=name, Tags=tags)


def detach(module: AnsibleAWSModule, client: Any, name: str, arn: str) -> None:
    msg = f"Failed to detach {arn} from IAM role '{name}'"
    call(module, client.detach_role_policy, msg, gone_ok=True, RoleName=name, PolicyArn=arn)


def delete_inline(module: AnsibleAWSModule, client: Any, name: str, policy: str) -> None:
    msg = f"Failed to delete inline policy '{policy}' of IAM role '{name}'"
    call(module, client.delete_role_policy, msg, gone_ok=True, RoleName=name, PolicyName=policy)


def write_policies(module: AnsibleAWSModule, client: Any, wanted: dict[str, Any], plan: dict[str, Any]) -> None:
    """Remove the permissions not wanted first, then add the wanted ones."""
    name, fresh = wanted["name"], not plan["exists"]
    for arn in plan["policies_detached"]:
        detach(module, client, name, arn)
    for policy in plan["policies_deleted"]:
        delete_inline(module, client, name, policy)
    for policy in plan["policies_put"]:
        msg = f"Failed to put inline policy '{policy}' on IAM role '{name}'"
        document = json.dumps(wanted["inline_policies"][policy])
        call(module, client.put_role_policy, msg, fresh, RoleName=name, PolicyName=policy, PolicyDocument=document)
    for arn in plan["policies_attached"]:
        msg = f"Failed to attach {arn} to IAM role '{name}'"
        call(module, client.attach_role_policy, msg, fresh, RoleName=name, PolicyArn=arn)


def delete_role(module: AnsibleAWSModule, client: Any, name: str) -> None:
    """Everything AWS wants gone before DeleteRole, then the role (the instance profiles themselves stay)."""
    profiles = list_pages(module, client.list_instance_profiles_for_role, "InstanceProfiles", name, "instance profiles")
    for profile in profiles:
        profile_name = profile["InstanceProfileName"]
        msg = f"Failed to remove IAM role '{name}' from instance profile '{profile_name}'"
        remove = client.remove_role_from_instance_profile
        call(module, remove, msg, gone_ok=True, RoleName=name, InstanceProfileName=profile_name)
    for arn in attached_arns(module, client, name):
        detach(module, client, name, arn)
    for policy in inline_names(module, client, name):
        delete_inline(module, client, name, policy)
    call(module, client.delete_role, f"Failed to delete IAM role '{name}'", gone_ok=True, RoleName=name)


# --- The run -------------------------------------------------------------------------------------


def result_of(plan: dict[str, Any], created: bool = False, deleted: bool = False) -> dict[str, Any]:
    role = plan["role"] or {}
    changes = plan["changes"]
    return {
        "name": plan["name"],
        "arn": role.get("Arn"),
        "role_id": role.get("RoleId"),
        "created": created,
        "deleted": deleted,
        "changed": created or deleted or bool(changes),
        "changes": changes,
        "policies_put": plan["policies_put"],
        "policies_deleted": plan["policies_deleted"],
        "policies_attached": plan["policies_attached"],
        "policies_detached": plan["policies_detached"],
    }


def read_all(module: AnsibleAWSModule, client: Any, roles: list[dict[str, Any]]) -> dict[str, dict | None]:
    """Every role of the run, read before anything is written; refuses roles without the owner tags."""
    existing = {role["name"]: read_role(module, client, role["name"]) for role in roles}
    problems = []
    for role in roles:
        found = existing[role["name"]]
        if found is None:
            continue
        if problem := owner_problem(role["name"], found, strings(module.params["owner_tags"])):
            problems.append(problem)
        path = role.get("path")
        if module.params["state"] == "present" and path is not None and path != found.get("Path", "/"):
            problems.append(
                f"IAM role '{role['name']}' has the path {found.get('Path', '/')!r}, not {path!r}; IAM cannot move a "
                "role to another path: delete the role first or keep its path"
            )
    if problems:
        module.fail_json(msg="; ".join(problems) + ". Nothing was changed.")
    return existing


def run_present(module: AnsibleAWSModule, client: Any, roles: list[dict[str, Any]]) -> dict[str, Any]:
    existing = read_all(module, client, roles)
    plans = [plan_role(module, client, role, existing[role["name"]]) for role in roles]
    results, before, after = {}, {}, {}
    for wanted, plan in zip(roles, plans, strict=True):
        name = wanted["name"]
        if not module.check_mode:
            if plan["exists"]:
                update_role(module, client, wanted, plan)
            else:
                plan["role"] = create_role(module, client, wanted)
            write_policies(module, client, wanted, plan)
        results[name] = result_of(plan, created=not plan["exists"])
        if plan["exists"]:
            before[name] = plan["before"]
        after[name] = plan["after"]
    return {"roles": results, "diff": {"before": before, "after": after}}


def run_absent(module: AnsibleAWSModule, client: Any, roles: list[dict[str, Any]]) -> dict[str, Any]:
    existing = read_all(module, client, roles)
    results, before = {}, {}
    for role in roles:
        name = role["name"]
        plan = empty_plan(name, existing[name])
        if plan["exists"]:
            before[name] = plan["before"]
            if not module.check_mode:
                delete_role(module, client, name)
        results[name] = result_of(plan, deleted=plan["exists"])
    return {"roles": results, "diff": {"before": before, "after": {}}}


def main() -> None:
    module = AnsibleAWSModule(argument_spec=argument_spec(), supports_check_mode=True)
    # Refuse bad input before any AWS call.
    roles = check_input(module)
    if not roles:
        module.exit_json(changed=False, roles={})

    client = module.client("iam", retry_decorator=jittered_backoff())
    if module.params["state"] == "present":
        result = run_present(module, client, roles)
    else:
        result = run_absent(module, client, roles)
    result["changed"] = any(entry["changed"] for entry in result["roles"].values())
    if not module._diff:
        result.pop("diff")
    module.exit_json(**result)


if __name__ == "__main__":
    main()
