#!/usr/bin/python
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Manage several RDS DB subnet groups in one module run (project library module)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: rds_subnet_groups
short_description: Create, update or delete several RDS DB subnet groups, each read once
description:
  - Creates, updates or deletes a list of RDS DB subnet groups, each found by its name, with its description,
    subnets and tags, in one module run.
  - M(amazon.aws.rds_subnet_group) reads a group twice a run (once before, once after) with
    C(DescribeDBSubnetGroups) and its tags each time with C(ListTagsForResource). Here each group is read once
    with C(DescribeDBSubnetGroups) by name, whose answer carries the description, the subnets and the ARN, and
    its tags with one C(ListTagsForResource), only when O(subnet_groups[].tags) is given. When nothing differs
    those are the only calls.
  - A missing group is created with one C(CreateDBSubnetGroup) carrying its tags. An existing group gets one
    C(ModifyDBSubnetGroup) for a changed description or subnet list (compared as a set),
    C(AddTagsToResource) and C(RemoveTagsFromResource) for changed tags. The result is taken from the
    answer of the write; the group is not read again.
  - With O(state=absent) each group of O(subnet_groups) is deleted with one C(DeleteDBSubnetGroup); a group
    that does not exist is no change. In check mode or diff mode it is read first. A group still used by a DB
    instance or cluster fails the module with a message saying so (AWS answers
    C(InvalidDBSubnetGroupStateFault)). Only O(subnet_groups[].name) is read.
  - RDS stores the names in lower case; the module lower-cases them too, so V(Airflow-Metadata) is
    V(airflow-metadata).
  - Input is checked before any AWS call; every problem is reported in one message that names the group and
    the field.
  - Supports check mode and diff mode. In check mode nothing is changed; RV(subnet_groups) and the diff show
    what the run would do.
author:
  - airflow-ecs project
options:
  subnet_groups:
    description:
      - The groups, each with what it should have.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description:
          - Name of the group, 1 to 255 letters, digits, C(.), C(_), C(-) or spaces, not V(default). It
            identifies the group. Lower-cased, as RDS does.
        type: str
        required: true
      description:
        description:
          - The group's description. Required with O(state=present).
        type: str
      subnet_ids:
        description:
          - The ids of the group's subnets (C(subnet-...)), compared as a set. RDS wants them in one VPC and in at
            least two availability zones. Required with O(state=present), at least one.
        type: list
        elements: str
      tags:
        description:
          - Tags of the group, as a dict; values are sent as strings. At most 50, keys not starting with
            C(aws:) or C(rds:).
          - Not read nor changed when not given (null).
        type: dict
      purge_tags:
        description:
          - Remove the tags of the group that are not in O(subnet_groups[].tags), as
            M(amazon.aws.rds_subnet_group) does. Has no effect when O(subnet_groups[].tags) is not given.
        type: bool
        default: true
  state:
    description:
      - V(present) creates and updates O(subnet_groups); V(absent) deletes them.
    type: str
    choices: [present, absent]
    default: present
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
notes:
  - API calls per group when nothing changes are one C(DescribeDBSubnetGroups) and, when
    O(subnet_groups[].tags) is given, one C(ListTagsForResource). A new group costs C(DescribeDBSubnetGroups)
    and C(CreateDBSubnetGroup). With O(state=absent) a group costs one C(DeleteDBSubnetGroup) (plus one
    C(DescribeDBSubnetGroups) in check or diff mode).
  - IAM actions used are rds:DescribeDBSubnetGroups, rds:ListTagsForResource, rds:CreateDBSubnetGroup (and
    rds:AddTagsToResource for tags given at creation), rds:ModifyDBSubnetGroup, rds:AddTagsToResource,
    rds:RemoveTagsFromResource and rds:DeleteDBSubnetGroup.
  - Calls and time against M(amazon.aws.rds_subnet_group) are in library/README.md.
seealso:
  - module: amazon.aws.rds_subnet_group
"""

EXAMPLES = r"""
- name: Create the DB subnet group over the private subnets of every AZ
  rds_subnet_groups:
    subnet_groups:
      - name: airflow-metadata
        description: airflow Airflow metadata database
        subnet_ids: [subnet-0a1b2c3d4e5f60718, subnet-0f1e2d3c4b5a69788]
        tags: {"airflow-ecs:stack": airflow}
  register: __subnet_groups

- name: Show the group's VPC
  ansible.builtin.debug:
    msg: "{{ __subnet_groups.subnet_groups['airflow-metadata'].vpc_id }}"

- name: Delete the group (fails while a DB instance still uses it)
  rds_subnet_groups:
    subnet_groups: [{name: airflow-metadata}]
    state: absent
"""

RETURN = r"""
subnet_groups:
  description:
    - Every group of O(subnet_groups), by (lower-case) name. In check mode, what the run would do.
  returned: always
  type: dict
  contains:
    arn:
      description: The group's ARN; null for a group that does not exist (yet, in check mode) or was deleted.
      type: str
      sample: arn:aws:rds:us-east-1:123456789012:subgrp:airflow-metadata
    vpc_id:
      description: The VPC of the group's subnets; null when the group does not exist (yet, in check mode).
      type: str
      sample: vpc-0123456789abcdef0
    subnet_ids:
      description: The group's subnets after the run, sorted; V([]) when it does not exist.
      type: list
      elements: str
    created:
      description: Whether the run created the group.
      type: bool
    deleted:
      description: Whether the run deleted the group (O(state=absent)).
      type: bool
    changed:
      description: Whether the run created, changed or deleted the group.
      type: bool
    changes:
      description: What the run set on an existing group, of V(description), V(subnet_ids) and V(tags).
      type: list
      elements: str
      sample: [subnet_ids]
diff:
  description:
    - Every group that exists before, respectively after, the run, by name, with its description, subnets
      (sorted) and, where managed, its tags.
  returned: in diff mode
  type: dict
  contains:
    before:
      description: The groups before the run.
      type: dict
    after:
      description: The groups after the run.
      type: dict
      sample: {"airflow-metadata": {"description": "airflow", "subnet_ids": ["subnet-1", "subnet-2"]}}
"""

import contextlib
import re
from typing import Any

with contextlib.suppress(ImportError):  # a missing botocore is reported by AnsibleAWSModule
    from botocore.exceptions import BotoCoreError, ClientError

from ansible.module_utils.aws_retry import jittered_backoff
from ansible.module_utils.common.text.converters import to_text
from ansible.module_utils.desired_tags import desired_tags
from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.tagging import (
    ansible_dict_to_boto3_tag_list,
    boto3_tag_list_to_ansible_dict,
)

NAME = re.compile(r"[A-Za-z0-9._ -]{1,255}")
SUBNET = re.compile(r"subnet-[0-9a-f]{8,17}")
MAX_TAGS = 50
NOT_FOUND = "DBSubnetGroupNotFoundFault"
IN_USE = "InvalidDBSubnetGroupStateFault"


def argument_spec() -> dict[str, Any]:
    group = dict(
        name=dict(type="str", required=True),
        description=dict(type="str"),
        subnet_ids=dict(type="list", elements="str"),
        tags=dict(type="dict"),
        purge_tags=dict(type="bool", default=True),
    )
    return dict(
        subnet_groups=dict(type="list", elements="dict", options=group, required=True),
        state=dict(type="str", default="present", choices=["present", "absent"]),
    )


# --- Input ---------------------------------------------------------------------------------------


def tag_problems(tags: dict[str, Any]) -> list[str]:
    problems = []
    if len(tags) > MAX_TAGS:
        problems.append(f"tags: at most {MAX_TAGS}, not {len(tags)}")
    for raw_key, value in tags.items():
        key = to_text(raw_key)
        if not 1 <= len(key) <= 128:
            problems.append(f"tags: key {key!r} must be 1 to 128 characters")
        if key.lower().startswith(("aws:", "rds:")):
            problems.append(f"tags: key {key!r} starts with {key[:4]}, which AWS reserves")
        if value is None or isinstance(value, (dict, list)):
            problems.append(f"tags.{key} must be a string")
        elif len(to_text(value)) > 256:
            problems.append(f"tags.{key} must be at most 256 characters")
    return problems


def group_problems(group: dict[str, Any], state: str) -> list[str]:
    problems = []
    if not NAME.fullmatch(group["name"]):
        problems.append("name must be 1 to 255 letters, digits, '.', '_', '-' or spaces")
    elif group["name"].lower() == "default":
        problems.append("name must not be 'default', which RDS reserves")
    if state == "absent":
        return problems
    if group["description"] is None:
        problems.append("description is required with state present")
    subnet_ids = group["subnet_ids"]
    if not subnet_ids:
        problems.append("subnet_ids must list at least one subnet with state present")
    else:
        problems += [
            f"subnet_ids: {subnet!r} is not a subnet id (subnet-...)"
            for subnet in subnet_ids
            if not SUBNET.fullmatch(subnet)
        ]
        repeated = sorted({subnet for subnet in subnet_ids if subnet_ids.count(subnet) > 1})
        if repeated:
            problems.append(f"subnet_ids lists {', '.join(repeated)} twice")
    if group["tags"] is not None:
        problems += tag_problems(group["tags"])
    return problems


def check_input(module: AnsibleAWSModule) -> list[dict[str, Any]]:
    """The groups with their wanted fields; fails, before any AWS call, with every problem in one message."""
    state = module.params["state"]
    problems, wanted = [], []
    for index, group in enumerate(module.params["subnet_groups"]):
        problems += [f"subnet_groups[{index}] ({group['name']}): {p}" for p in group_problems(group, state)]
        tags = group["tags"]
        wanted.append(
            {
                "name": group["name"].lower(),
                "description": group["description"],
                "subnet_ids": sorted(group["subnet_ids"] or []),
                "tags": None if tags is None else {to_text(k): to_text(v) for k, v in tags.items()},
                "purge_tags": group["purge_tags"],
            }
        )
    names = [group["name"] for group in wanted]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        problems.append(f"subnet_groups names the same group twice: {', '.join(repeated)}")
    if not module.region:
        problems.append("no AWS region given (region, AWS_REGION or the AWS config)")
    if problems:
        module.fail_json(msg="Cannot manage the DB subnet groups: " + "; ".join(problems) + ". Nothing was changed.")
    return wanted


# --- Reading -------------------------------------------------------------------------------------


def read_group(module: AnsibleAWSModule, client: Any, name: str) -> dict[str, Any] | None:
    """The group as DescribeDBSubnetGroups answers it; None when it does not exist."""
    try:
        return client.describe_db_subnet_groups(DBSubnetGroupName=name, aws_retry=True)["DBSubnetGroups"][0]
    except is_boto3_error_code(NOT_FOUND):
        return None
    except (BotoCoreError, ClientError) as e:  # pylint: disable=duplicate-except
        module.fail_json_aws(e, msg=f"Failed to read DB subnet group '{name}'")


def read_tags(module: AnsibleAWSModule, client: Any, name: str, arn: str) -> dict[str, str]:
    try:
        listed = client.list_tags_for_resource(ResourceName=arn, aws_retry=True)["TagList"]
    except (BotoCoreError, ClientError) as e:
        module.fail_json_aws(e, msg=f"Failed to read the tags of DB subnet group '{name}'")
    return boto3_tag_list_to_ansible_dict(listed)


def subnet_ids_of(group: dict[str, Any]) -> list[str]:
    return sorted(subnet["SubnetIdentifier"] for subnet in group.get("Subnets", []))


def seen(group: dict[str, Any], tags: dict[str, str] | None) -> dict[str, Any]:
    """The group as the diff shows it."""
    shown = {"description": group["DBSubnetGroupDescription"], "subnet_ids": subnet_ids_of(group)}
    if tags is not None:
        shown["tags"] = tags
    return shown


def outcome(
    arn: str | None = None, vpc_id: str | None = None, subnet_ids: list[str] | None = None, **fields: Any
) -> dict[str, Any]:
    """One entry of RV(subnet_groups)."""
    return {
        "arn": arn,
        "vpc_id": vpc_id,
        "subnet_ids": subnet_ids or [],
        "created": False,
        "deleted": False,
        "changed": False,
        "changes": [],
    } | fields


def answered(group: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """One entry of RV(subnet_groups), from RDS's answer."""
    return outcome(group["DBSubnetGroupArn"], group.get("VpcId"), subnet_ids_of(group), **fields)


# --- Present -------------------------------------------------------------------------------------


def create_group(module: AnsibleAWSModule, client: Any, wanted: dict[str, Any]) -> dict[str, Any] | None:
    """CreateDBSubnetGroup with the tags; the new group as RDS answers it (None in check mode)."""
    if module.check_mode:
        return None
    kwargs: dict[str, Any] = {}
    if wanted["tags"]:
        kwargs["Tags"] = ansible_dict_to_boto3_tag_list(wanted["tags"])
    try:
        return client.create_db_subnet_group(
            DBSubnetGroupName=wanted["name"],
            DBSubnetGroupDescription=wanted["description"],
            SubnetIds=wanted["subnet_ids"],
            aws_retry=True,
            **kwargs,
        )["DBSubnetGroup"]
    except (BotoCoreError, ClientError) as e:
        module.fail_json_aws(e, msg=f"Failed to create DB subnet group '{wanted['name']}'")


def modify_group(module: AnsibleAWSModule, client: Any, wanted: dict[str, Any]) -> dict[str, Any] | None:
    """ModifyDBSubnetGroup; the group as RDS answers it (None in check mode)."""
    if module.check_mode:
        return None
    try:
        return client.modify_db_subnet_group(
            DBSubnetGroupName=wanted["name"],
            DBSubnetGroupDescription=wanted["description"],
            SubnetIds=wanted["subnet_ids"],
            aws_retry=True,
        )["DBSubnetGroup"]
    except (BotoCoreError, ClientError) as e:
        module.fail_json_aws(
            e, msg=f"Failed to change the description or subnets of DB subnet group '{wanted['name']}'"
        )


def write_tags(module: AnsibleAWSModule, client: Any, name: str, arn: str, *, current: dict, after: dict) -> None:
    to_set = {key: value for key, value in after.items() if current.get(key) != value}
    to_unset = sorted(key for key in current if key not in after)
    try:
        if to_unset:
            client.remove_tags_from_resource(ResourceName=arn, TagKeys=to_unset, aws_retry=True)
        if to_set:
            client.add_tags_to_resource(ResourceName=arn, Tags=ansible_dict_to_boto3_tag_list(to_set), aws_retry=True)
    except (BotoCoreError, ClientError) as e:
        module.fail_json_aws(e, msg=f"Failed to set the tags of DB subnet group '{name}'")


def ensure_present(
    module: AnsibleAWSModule, client: Any, wanted: dict[str, Any]
) -> tuple[dict[str, Any], dict | None, dict]:
    """Create or update one group; its result and its diff before (None: did not exist) and after."""
    name = wanted["name"]
    after = {"description": wanted["description"], "subnet_ids": wanted["subnet_ids"]}
    current = read_group(module, client, name)
    if current is None:
        if wanted["tags"] is not None:
            after["tags"] = wanted["tags"]
        made = create_group(module, client, wanted)
        if made is None:  # check mode
            return outcome(subnet_ids=wanted["subnet_ids"], created=True, changed=True), None, after
        return answered(made, created=True, changed=True), None, after

    arn = current["DBSubnetGroupArn"]
    tags = None if wanted["tags"] is None else read_tags(module, client, name, arn)
    before = seen(current, tags)
    changes = [field for field in ("description", "subnet_ids") if before[field] != after[field]]
    written = modify_group(module, client, wanted) if changes else None
    if tags is not None:
        after["tags"] = desired_tags(wanted, tags)
        if after["tags"] != tags:
            changes.append("tags")
            if not module.check_mode:
                write_tags(module, client, name, arn, current=tags, after=after["tags"])
    # RDS's answer to the write shows what it made of the subnets; otherwise they are as wanted.
    subnet_ids = subnet_ids_of(written) if written else wanted["subnet_ids"]
    result = outcome(arn, current.get("VpcId"), subnet_ids, changed=bool(changes), changes=changes)
    return result, before, after


# --- Absent --------------------------------------------------------------------------------------


def delete_group(module: AnsibleAWSModule, client: Any, name: str) -> bool:
    """DeleteDBSubnetGroup; False when there was no such group."""
    try:
        client.delete_db_subnet_group(DBSubnetGroupName=name, aws_retry=True)
    except is_boto3_error_code(NOT_FOUND):
        return False
    except is_boto3_error_code(IN_USE) as e:  # pylint: disable=duplicate-except
        message = e.response.get("Error", {}).get("Message", "")
        module.fail_json(
            msg=f"Cannot delete DB subnet group '{name}': it is still used by a DB instance or cluster; delete "
            f"or move those first (AWS: {IN_USE}: {message})",
            error=e.response.get("Error", {}),
        )
    except (BotoCoreError, ClientError) as e:  # pylint: disable=duplicate-except
        module.fail_json_aws(e, msg=f"Failed to delete DB subnet group '{name}'")
    return True


def ensure_absent(module: AnsibleAWSModule, client: Any, name: str) -> tuple[dict[str, Any], dict | None]:
    """Delete one group; its result and its diff before (None: did not exist)."""
    before = None
    if module.check_mode or module._diff:
        current = read_group(module, client, name)
        if current is None:
            return outcome(), None
        before = seen(current, None)
        if module.check_mode:
            return outcome(changed=True, deleted=True), before
    deleted = delete_group(module, client, name)
    return outcome(changed=deleted, deleted=deleted), before


# --- The run -------------------------------------------------------------------------------------


def main() -> None:
    module = AnsibleAWSModule(argument_spec=argument_spec(), supports_check_mode=True)
    groups = check_input(module)  # refuses bad input before any AWS call
    client = module.client("rds", retry_decorator=jittered_backoff())

    results: dict[str, Any] = {}
    before: dict[str, Any] = {}
    after: dict[str, Any] = {}
    for wanted in groups:
        name = wanted["name"]
        if module.params["state"] == "present":
            results[name], was, after[name] = ensure_present(module, client, wanted)
        else:
            results[name], was = ensure_absent(module, client, name)
        if was is not None:
            before[name] = was

    result: dict[str, Any] = {
        "changed": any(entry["changed"] for entry in results.values()),
        "subnet_groups": results,
    }
    if module._diff:
        result["diff"] = {"before": before, "after": after}
    module.exit_json(**result)


if __name__ == "__main__":
    main()
