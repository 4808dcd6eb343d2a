#!/usr/bin/python
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Manage several CloudWatch Logs log groups in one module run (project library module)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: cloudwatchlogs_log_groups
short_description: Manage several CloudWatch Logs log groups in one run
description:
  - Creates, updates or deletes a list of CloudWatch Logs log groups that share their retention, KMS key
    and tags, in one module run instead of one M(amazon.aws.cloudwatchlogs_log_group) run per group.
  - The groups are read with C(DescribeLogGroups), paginated, over the longest common prefix of the names
    that share a first path segment (for example C(/ecs/)). Names of one stack, such as
    C(/ecs/airflow/scheduler) and C(/ecs/airflow/worker), are read with a single call. Groups that merely
    start with a wanted name are ignored; only exact names count.
  - Missing groups are created with their tags (C(CreateLogGroup)) and retention (C(PutRetentionPolicy)).
    For existing groups only what differs is changed. The retention is set with C(PutRetentionPolicy) or
    removed with C(DeleteRetentionPolicy), the tags with C(TagResource) and C(UntagResource) on the
    log group's ARN.
  - With O(state=absent) the groups are deleted with everything they store. Groups that do not exist are
    fine.
  - Supports check mode and diff mode. In check mode nothing is changed; RV(log_groups) and the diff show
    the groups as they would be after the run.
author:
  - airflow-ecs project
options:
  names:
    description:
      - Names of the log groups, for example V(/ecs/airflow/scheduler).
      - Each name is 1 to 512 characters from C(a-z), C(A-Z), C(0-9), C(.), C(-), C(_), C(/) and C(#).
      - A name listed twice counts once.
    type: list
    elements: str
    required: true
  retention:
    description:
      - Days CloudWatch Logs keeps the events of every group.
      - Must be a value CloudWatch Logs accepts, 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545,
        731, 1096, 1827, 2192, 2557, 2922, 3288 or 3653. Any other value is refused before any AWS call.
      - When not given (null), the retention of existing groups is left as it is, as
        M(amazon.aws.cloudwatchlogs_log_group) does, and new groups never expire their events.
        Use O(purge_retention_policy=true) to make existing groups keep their events forever.
      - Only used with O(state=present). Mutually exclusive with O(purge_retention_policy).
    type: int
  purge_retention_policy:
    description:
      - Remove the retention policy of every group, so that its events never expire.
      - Only used with O(state=present). Mutually exclusive with O(retention).
    type: bool
    default: false
  kms_key_id:
    description:
      - ARN of the KMS key that encrypts the log data of groups this module creates.
      - Only applied when a group is created. The module does not change the key of an existing group
        (C(AssociateKmsKey)); when an existing group has another key it warns and leaves it.
      - Only used with O(state=present).
    type: str
  tags:
    description:
      - Tags every group should have, as a dict. Values are stored as strings.
      - When not given, the tags of existing groups are left as they are and new groups get none.
      - With O(purge_tags=true) and O(tags={}) every tag is removed.
      - Only used with O(state=present).
    type: dict
    aliases: ['resource_tags']
  purge_tags:
    description:
      - Remove tags that are not in O(tags).
      - Has no effect when O(tags) is not given. Tags whose key starts with C(aws:) are never removed.
    type: bool
    default: true
  state:
    description:
      - Whether the log groups should exist.
    type: str
    choices: [present, absent]
    default: present
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
notes:
  - API calls per run for N groups that share a prefix (fewer than 50 other groups with that prefix) are
    one C(DescribeLogGroups) and one C(tag:GetResources) per 100 existing groups when nothing changes (a
    C(ListTagsForResource) for a group the tagging index does not list with the wanted tags: the index can
    lag a change by minutes, so it only confirms, and the group's own tags decide a change); plus one
    C(CreateLogGroup) and one C(PutRetentionPolicy) per new group and one more C(DescribeLogGroups) (for the
    ARNs) when groups are created; one C(DescribeLogGroups) plus one C(DeleteLogGroup) per existing group
    with O(state=absent). The tags after a change are computed, not read back.
  - The tags are managed with C(ListTagsForResource), C(TagResource) and C(UntagResource) on the log
    group ARN without its trailing C(:*); the older C(*LogGroup) tag APIs are not used.
seealso:
  - module: amazon.aws.cloudwatchlogs_log_group
"""

EXAMPLES = r"""
- name: Create one log group per component, kept 30 days and tagged
  cloudwatchlogs_log_groups:
    names: "{{ ['scheduler', 'worker', 'api-server'] | map('regex_replace', '^', '/ecs/airflow/') | list }}"
    retention: 30
    tags:
      airflow-ecs:stack: airflow
  register: __log_groups

- name: Show the ARN of the first group
  ansible.builtin.debug:
    msg: "{{ __log_groups.log_groups[0].arn }}"

- name: Keep the events of these groups forever and leave their tags alone
  cloudwatchlogs_log_groups:
    names: [/ecs/airflow/scheduler, /ecs/airflow/worker]
    purge_retention_policy: true

- name: Delete the log groups (missing ones are fine)
  cloudwatchlogs_log_groups:
    names: [/ecs/airflow/scheduler, /ecs/airflow/worker, /ecs/airflow/api-server]
    state: absent
"""

RETURN = r"""
log_groups:
  description:
    - The log groups after the run, in the order of O(names) (duplicates dropped). Empty with
      O(state=absent).
    - In check mode, the groups as they would be after the run.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Name of the log group.
      type: str
      sample: /ecs/airflow/scheduler
    arn:
      description:
        - ARN of the log group, without the trailing C(:*) that C(DescribeLogGroups) adds to C(arn).
          This is the ARN the tagging APIs take; IAM policies on the log streams need C(<arn>:*).
        - Null in check mode for a group that does not exist yet.
      type: str
      sample: arn:aws:logs:us-east-1:123456789012:log-group:/ecs/airflow/scheduler
    retention_in_days:
      description: Days the events are kept; null when they never expire.
      type: int
      sample: 30
    kms_key_id:
      description: ARN of the KMS key that encrypts the group's data; null when none.
      type: str
      sample: arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab
    tags:
      description: Tags of the log group, as a dict.
      type: dict
      sample: {"airflow-ecs:stack": "airflow"}
diff:
  description: The existing groups before and after the run, each with its name, retention and tags.
  returned: in diff mode
  type: dict
  contains:
    before:
      description: C(log_groups), the groups of O(names) that existed before the run.
      type: dict
      sample: {"log_groups": [{"name": "/ecs/airflow/worker", "retention_in_days": 7, "tags": {}}]}
    after:
      description: C(log_groups), the groups of O(names) that exist after the run.
      type: dict
      sample: {"log_groups": [{"name": "/ecs/airflow/worker", "retention_in_days": 30, "tags": {"team": "data"}}]}
"""

import contextlib
import os
import re
from typing import Any

with contextlib.suppress(ImportError):  # a missing botocore is reported by AnsibleAWSModule
    from botocore.exceptions import BotoCoreError, ClientError

from ansible.module_utils.aws_retry import jittered_backoff
from ansible.module_utils.common.text.converters import to_text
from ansible.module_utils.desired_tags import desired_tags as tags_after_run
from ansible.module_utils.tag_index import confirmed_tags, indexed_tags
from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.tagging import compare_aws_tags

# The values PutRetentionPolicy accepts (API reference, type `Days`).
RETENTION_DAYS = (
    *(1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365),
    *(400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653),
)
NAME = re.compile(r"[.\-_/#A-Za-z0-9]{1,512}")
# A group changed by two calls at once answers OperationAbortedException; try again like throttling.
RETRY_CODES = ["OperationAbortedException"]


def argument_spec() -> dict[str, Any]:
    return dict(
        names=dict(type="list", elements="str", required=True),
        retention=dict(type="int"),
        purge_retention_policy=dict(type="bool", default=False),
        kms_key_id=dict(type="str"),
        tags=dict(type="dict", aliases=["resource_tags"]),
        purge_tags=dict(type="bool", default=True),
        state=dict(type="str", default="present", choices=["present", "absent"]),
    )


# --- Input ---------------------------------------------------------------------------------------


def checked_names(module: AnsibleAWSModule) -> list[str]:
    """The names without duplicates, in order; fail on a name CloudWatch Logs would refuse."""
    bad = [name for name in module.params["names"] if not NAME.fullmatch(name)]
    if bad:
        module.fail_json(
            msg=f"Invalid log group name(s): {', '.join(repr(name) for name in bad)}. A name is 1 to 512 "
            "characters from a-z, A-Z, 0-9, '.', '-', '_', '/' and '#'."
        )
    return list(dict.fromkeys(module.params["names"]))


def check_retention(module: AnsibleAWSModule) -> None:
    retention = module.params["retention"]
    if retention is not None and retention not in RETENTION_DAYS:
        module.fail_json(
            msg=f"retention must be one of the values CloudWatch Logs accepts: "
            f"{', '.join(str(days) for days in RETENTION_DAYS)} (got {retention}). To keep the events "
            "forever, leave retention out (new groups) or set purge_retention_policy=true (existing groups)."
        )


def wanted_tags(module: AnsibleAWSModule) -> dict[str, str] | None:
    """The tags option with its values as the strings AWS stores (None when not given)."""
    tags = module.params["tags"]
    if tags is None:
        return None
    return {to_text(key): to_text(value) for key, value in tags.items()}


# --- Reading -------------------------------------------------------------------------------------


def lookup_prefixes(names: list[str]) -> list[str]:
    """Prefixes to describe: the longest common prefix of the names that share their first path segment."""
    by_segment: dict[str, list[str]] = {}
    for name in names:
        by_segment.setdefault(name.lstrip("/").split("/", 1)[0], []).append(name)
    # Character by character on purpose: DescribeLogGroups matches a prefix of the name, not of its path.
    return sorted(os.path.commonprefix(group) for group in by_segment.values())  # noqa: RUF071


@jittered_backoff(*RETRY_CODES)
def describe_prefix(client: Any, prefix: str) -> list[dict]:
    paginator = client.get_paginator("describe_log_groups")
    return paginator.paginate(logGroupNamePrefix=prefix).build_full_result()["logGroups"]


def describe_groups(module: AnsibleAWSModule, client: Any, names: list[str]) -> dict[str, dict]:
    """The existing groups among `names`, by name, as DescribeLogGroups returns them."""
    wanted = set(names)
    found: dict[str, dict] = {}
    for prefix in lookup_prefixes(names):
        try:
            groups = describe_prefix(client, prefix)
        except (BotoCoreError, ClientError) as e:
            module.fail_json_aws(e, msg=f"Failed to describe the log groups whose name starts with '{prefix}'")
        found.update({group["logGroupName"]: group for group in groups if group["logGroupName"] in wanted})
    return found


def arn_of(group: dict) -> str:
    """The log group ARN the tagging APIs take: logGroupArn, or `arn` without its trailing ':*'."""
    return group.get("logGroupArn") or group["arn"].removesuffix(":*")


def get_tags(module: AnsibleAWSModule, client: Any, group: dict) -> dict[str, str]:
    try:
        return client.list_tags_for_resource(resourceArn=arn_of(group), aws_retry=True).get("tags", {})
    except (BotoCoreError, ClientError) as e:
        module.fail_json_aws(e, msg=f"Failed to list the tags of log group '{group['logGroupName']}'")


def summary(name: str, group: dict | None, tags: dict[str, str]) -> dict[str, Any]:
    """A group as returned in log_groups; `group` is None for a group that does not exist yet."""
    group = group or {}
    return {
        "name": name,
        "arn": arn_of(group) if group else None,
        "retention_in_days": group.get("retentionInDays"),
        "kms_key_id": group.get("kmsKeyId"),
        "tags": tags,
    }


def diff_view(groups: list[dict[str, Any]]) -> dict[str, Any]:
    return {"log_groups": [{key: group[key] for key in ("name", "retention_in_days", "tags")} for group in groups]}


# --- Planning ------------------------------------------------------------------------------------


def plan_group(module: AnsibleAWSModule, name: str, group: dict | None, tags: dict[str, str]) -> dict[str, Any]:
    """What to do to one group: create, new retention (0 = remove the policy), tags to set and unset."""
    params = module.params
    desired = wanted_tags(module)
    if group is None:
        retention = params["retention"]
        return {"create": True, "retention": retention, "to_set": desired or {}, "to_unset": []}
    current = group.get("retentionInDays")
    retention = None
    if params["purge_retention_policy"] and current is not None:
        retention = 0
    elif params["retention"] is not None and params["retention"] != current:
        retention = params["retention"]
    kms_key_id = params["kms_key_id"]
    if kms_key_id is not None and group.get("kmsKeyId") != kms_key_id:
        module.warn(
            f"Log group '{name}' is encrypted with {group.get('kmsKeyId') or 'no KMS key'}, not {kms_key_id}; "
            "this module sets the key only when it creates a group, so it was left as it is."
        )
    to_set, to_unset = ({}, []) if desired is None else compare_aws_tags(tags, desired, params["purge_tags"])
    return {"create": False, "retention": retention, "to_set": to_set, "to_unset": to_unset}


def planned_after(module: AnsibleAWSModule, name: str, group: dict | None, tags: dict, plan: dict) -> dict:
    """The group as it will be once `plan` has run."""
    after = summary(name, group, tags)
    if plan["create"]:
        after["kms_key_id"] = module.params["kms_key_id"]
    if plan["retention"] is not None:
        after["retention_in_days"] = plan["retention"] or None
    after["tags"] = tags_after_run({"tags": wanted_tags(module), "purge_tags": module.params["purge_tags"]}, tags)
    return after


def is_change(plan: dict) -> bool:
    return bool(plan["create"] or plan["retention"] is not None or plan["to_set"] or plan["to_unset"])


# --- Changing ------------------------------------------------------------------------------------


def create_group(module: AnsibleAWSModule, client: Any, name: str, tags: dict[str, str]) -> None:
    params: dict[str, Any] = {"logGroupName": name}
    if tags:
        params["tags"] = tags
    if module.params["kms_key_id"]:
        params["kmsKeyId"] = module.params["kms_key_id"]
    try:
        client.create_log_group(aws_retry=True, **params)
    except is_boto3_error_code("ResourceAlreadyExistsException"):
        module.fail_json(msg=f"Log group '{name}' was created by someone else during this run; run again")
    except (BotoCoreError, ClientError) as e:  # pylint: disable=duplicate-except
        module.fail_json_aws(e, msg=f"Failed to create log group '{name}'")


def set_retention(module: AnsibleAWSModule, client: Any, name: str, days: int) -> None:
    """Put a retention policy of `days` days on the group; remove its policy (never expire) when `days` is 0."""
    if not days:
        try:
            client.delete_retention_policy(logGroupName=name, aws_retry=True)
        except (BotoCoreError, ClientError) as e:
            module.fail_json_aws(e, msg=f"Failed to remove the retention policy of log group '{name}'")
        return
    try:
        client.put_retention_policy(logGroupName=name, retentionInDays=days, aws_retry=True)
    except (BotoCoreError, ClientError) as e:
        module.fail_json_aws(e, msg=f"Failed to set the retention of log group '{name}' to {days} days")


def update_tags(module: AnsibleAWSModule, client: Any, name: str, arn: str, plan: dict) -> None:
    if plan["to_unset"]:
        try:
            client.untag_resource(resourceArn=arn, tagKeys=plan["to_unset"], aws_retry=True)
        except (BotoCoreError, ClientError) as e:
            module.fail_json_aws(e, msg=f"Failed to remove tags {', '.join(plan['to_unset'])} from log group '{name}'")
    if plan["to_set"]:
        try:
            client.tag_resource(resourceArn=arn, tags=plan["to_set"], aws_retry=True)
        except (BotoCoreError, ClientError) as e:
            module.fail_json_aws(e, msg=f"Failed to tag log group '{name}' with {', '.join(plan['to_set'])}")


def apply_plan(module: AnsibleAWSModule, client: Any, name: str, group: dict | None, plan: dict) -> None:
    if plan["create"]:
        create_group(module, client, name, plan["to_set"])
    if plan["retention"] is not None:
        set_retention(module, client, name, plan["retention"])
    if not plan["create"]:
        update_tags(module, client, name, arn_of(group), plan)


def delete_group(module: AnsibleAWSModule, client: Any, name: str) -> None:
    try:
        client.delete_log_group(logGroupName=name, aws_retry=True)
    except is_boto3_error_code("ResourceNotFoundException"):
        return  # deleted meanwhile: that is what we wanted
    except (BotoCoreError, ClientError) as e:  # pylint: disable=duplicate-except
        module.fail_json_aws(e, msg=f"Failed to delete log group '{name}'")


# --- States --------------------------------------------------------------------------------------


def ensure_present(module: AnsibleAWSModule, client: Any, names: list[str]) -> dict[str, Any]:
    found = describe_groups(module, client, names)
    indexed = indexed_tags(module, [arn_of(group) for group in found.values()])
    desired = wanted_tags(module)

    def as_wanted(tags: dict[str, str]) -> bool:
        return desired is None or compare_aws_tags(tags, desired, module.params["purge_tags"]) == ({}, [])

    before, after, plans = [], [], {}
    for name in names:
        group = found.get(name)
        tags = {}
        if group:
            tags = confirmed_tags(
                indexed, arn_of(group), as_wanted, lambda group=group: get_tags(module, client, group)
            )
        plans[name] = plan_group(module, name, group, tags)
        if group:
            before.append(summary(name, group, tags))
        after.append(planned_after(module, name, group, tags, plans[name]))
    changed = any(is_change(plan) for plan in plans.values())

    if changed and not module.check_mode:
        for name in names:
            if is_change(plans[name]):
                apply_plan(module, client, name, found.get(name), plans[name])
        if any(plan["create"] for plan in plans.values()):  # CreateLogGroup returns no ARN: read them
            found = describe_groups(module, client, names)
            for group in after:
                if group["arn"] is None and group["name"] in found:
                    group["arn"] = arn_of(found[group["name"]])

    return {
        "changed": changed,
        "log_groups": after,
        "diff": {"before": diff_view(before), "after": diff_view(after)},
    }


def ensure_absent(module: AnsibleAWSModule, client: Any, names: list[str]) -> dict[str, Any]:
    found = describe_groups(module, client, names)
    existing = [name for name in names if name in found]
    before = []
    if module._diff:  # the tags are only needed to show them
        before = [summary(name, found[name], get_tags(module, client, found[name])) for name in existing]
    if not module.check_mode:
        for name in existing:
            delete_group(module, client, name)
    return {
        "changed": bool(existing),
        "log_groups": [],
        "diff": {"before": diff_view(before), "after": diff_view([])},
    }


def main() -> None:
    module = AnsibleAWSModule(
        argument_spec=argument_spec(),
        supports_check_mode=True,
        mutually_exclusive=[("retention", "purge_retention_policy")],
    )
    # Refuse bad input before any AWS call.
    names = checked_names(module)
    check_retention(module)

    if not names:
        module.exit_json(changed=False, log_groups=[])
    client = module.client("logs", retry_decorator=jittered_backoff(*RETRY_CODES))
    if module.params["state"] == "present":
        result = ensure_present(module, client, names)
    else:
        result = ensure_absent(module, client, names)
    if not module._diff:
        result.pop("diff")
    module.exit_json(**result)


if __name__ == "__main__":
    main()
