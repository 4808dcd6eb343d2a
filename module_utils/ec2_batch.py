# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""What the project's batch EC2 modules (security groups, subnets, route tables of a VPC) share."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from typing import Any

with contextlib.suppress(ImportError):  # a missing botocore is reported by AnsibleAWSModule
    from botocore.exceptions import BotoCoreError, ClientError

from ansible.module_utils.aws_retry import jittered_backoff
from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.amazon.aws.plugins.module_utils.tagging import (
    ansible_dict_to_boto3_tag_list,
    boto3_tag_list_to_ansible_dict,
)


def describe_in_vpc(
    module: Any,
    client: Any,
    operation: str,
    key: str,
    vpc_id: str,
    *,
    what: str,
    filters: Sequence[dict] = (),
    changed: bool = False,
) -> list[dict]:
    """Every `key` item a Describe* `operation` lists in the VPC (paginated, retried); a failure names `what`."""
    all_filters = [{"Name": "vpc-id", "Values": [vpc_id]}, *filters]

    @jittered_backoff()
    def describe() -> list[dict]:
        return client.get_paginator(operation).paginate(Filters=all_filters).build_full_result()[key]

    try:
        items = describe()
    except (BotoCoreError, ClientError) as e:
        module.fail_json_aws(e, msg=f"Failed to describe the {what} of VPC {vpc_id}", changed=changed)
    return [item for item in items if item.get("VpcId", vpc_id) == vpc_id]


def call(module: Any, client: Any, method: str, msg: str, retry_codes: Sequence[str] = (), **params: Any) -> Any:
    """One EC2 call, retried; also while EC2 answers one of `retry_codes` (a resource created in this run)."""
    operation = getattr(client, method)
    try:
        if retry_codes:
            return jittered_backoff(*retry_codes, retries=10, delay=1)(operation)(**params)
        return operation(aws_retry=True, **params)
    except (BotoCoreError, ClientError) as e:
        module.fail_json_aws(e, msg=msg, changed=True)


def tags_of(resource: dict) -> dict[str, str]:
    return boto3_tag_list_to_ansible_dict(resource.get("Tags") or [])


def apply_tags(module: Any, client: Any, resource_id: str, what: str, step: dict) -> None:
    """Remove the tag keys step["to_unset"] from, and set the tags step["to_set"] on, an EC2 resource `what`."""
    to_set, to_unset = step["to_set"], step["to_unset"]
    if to_unset:
        msg = f"Failed to remove tags {', '.join(to_unset)} from {what}"
        call(module, client, "delete_tags", msg, Resources=[resource_id], Tags=[{"Key": key} for key in to_unset])
    if to_set:
        msg = f"Failed to tag {what} with {', '.join(to_set)}"
        call(module, client, "create_tags", msg, Resources=[resource_id], Tags=ansible_dict_to_boto3_tag_list(to_set))


def delete(
    module: Any,
    client: Any,
    method: str,
    what: str,
    *,
    not_found: Sequence[str],
    in_use: str,
    changed: bool,
    **params: Any,
) -> bool:
    """Delete one EC2 resource `what`; False when it is gone already. `in_use` says what may still hold it."""
    try:
        getattr(client, method)(aws_retry=True, **params)
    except is_boto3_error_code(list(not_found)):
        return False
    except is_boto3_error_code("DependencyViolation") as e:  # pylint: disable=duplicate-except
        module.fail_json_aws(e, msg=f"Cannot delete {what}: {in_use}. Remove that first.", changed=changed)
    except (BotoCoreError, ClientError) as e:  # pylint: disable=duplicate-except
        module.fail_json_aws(e, msg=f"Failed to delete {what}", changed=changed)
    return True


def poll_until(
    module: Any,
    read: Callable[[], Any],
    pending: Callable[[Any], Any],
    timeout: float,
    timed_out: Callable[[Any, Any], str],
    *,
    first_delay: float = 0.5,
) -> Any:
    """read() at once, then after a growing delay (doubling up to 10 s), until pending(result) is empty; the
    last result. Past `timeout` seconds the module fails with timed_out(result, pending) (changed: the run
    made what it waits for)."""
    deadline = time.monotonic() + timeout
    delay = first_delay
    while True:
        result = read()
        left = pending(result)
        if not left:
            return result
        if time.monotonic() + delay > deadline:
            module.fail_json(msg=timed_out(result, left), changed=True)
        time.sleep(delay)
        delay = min(delay * 2, 10)
