# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Shared helpers of the AWS Cloud Map (service discovery) library modules.

Project-local module_utils (ansible.cfg `module_utils = module_utils`): the modules import this file as
`ansible.module_utils.servicediscovery` and Ansible ships it to the target with them.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

with contextlib.suppress(ImportError):  # a missing botocore is reported by AnsibleAWSModule
    from botocore.exceptions import BotoCoreError, ClientError

from ansible.module_utils.aws_retry import jittered_backoff
from ansible.module_utils.common.dict_transformations import camel_dict_to_snake_dict
from ansible.module_utils.desired_tags import desired_tags as tags_after_run
from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.tagging import (
    ansible_dict_to_boto3_tag_list,
    boto3_tag_list_to_ansible_dict,
    compare_aws_tags,
)

POLL_SECONDS = 3
RETRY_CODES = ["ThrottlingException"]


# --- Module --------------------------------------------------------------------------------------


def common_argument_spec() -> dict[str, Any]:
    """Options every Cloud Map module has, after its own."""
    return dict(
        state=dict(type="str", default="present", choices=["present", "absent"]),
        force=dict(type="bool", default=False),
        wait=dict(type="bool", default=True),
        wait_timeout=dict(type="int", default=300),
        tags=dict(type="dict", aliases=["resource_tags"]),
        purge_tags=dict(type="bool", default=True),
    )


def servicediscovery_client(module: AnsibleAWSModule) -> Any:
    return module.client("servicediscovery", retry_decorator=jittered_backoff(*RETRY_CODES))


def exit_with_result(module: AnsibleAWSModule, result: dict) -> None:
    """Exit with the result; its `diff` only in diff mode."""
    if not module._diff:
        result.pop("diff", None)
    module.exit_json(**result)


def resource_result(resource: dict, tags: dict[str, str]) -> dict:
    """A Cloud Map resource as returned by the modules: keys in snake_case, plus its tags."""
    result = camel_dict_to_snake_dict(resource)
    result["tags"] = tags
    return result


# --- Cloud Map operations ------------------------------------------------------------------------


def wait_for_operation(module: AnsibleAWSModule, client: Any, operation_id: str, action: str) -> dict:
    """Poll a Cloud Map operation until SUCCESS; fail the module on FAIL or timeout."""
    deadline = time.monotonic() + module.params["wait_timeout"]
    status = "UNKNOWN"
    while True:
        try:
            operation = client.get_operation(OperationId=operation_id, aws_retry=True)["Operation"]
            status = operation["Status"]
        except is_boto3_error_code("OperationNotFound"):
            operation = {}  # not visible yet (eventual consistency)
        except (BotoCoreError, ClientError) as e:  # pylint: disable=duplicate-except
            module.fail_json_aws(e, msg=f"Failed to read Cloud Map operation {operation_id} ({action})")
        if status == "SUCCESS":
            return operation
        if status == "FAIL":
            module.fail_json(
                msg=f"Cloud Map operation {operation_id} failed to {action}: "
                f"{operation.get('ErrorCode', 'unknown error')}: {operation.get('ErrorMessage', '')}",
                operation=camel_dict_to_snake_dict(operation),
            )
        if time.monotonic() >= deadline:
            module.fail_json(
                msg=f"Timed out after {module.params['wait_timeout']} s waiting for Cloud Map operation "
                f"{operation_id} to {action} (last status {status})",
                operation_id=operation_id,
            )
        time.sleep(POLL_SECONDS)


def finish_operation(module: AnsibleAWSModule, client: Any, operation_id: str, action: str, result: dict) -> None:
    """Wait for an operation when asked to, otherwise remember its id in the result."""
    if module.params["wait"]:
        wait_for_operation(module, client, operation_id, action)
    else:
        result["operation_id"] = operation_id


# --- Listing -------------------------------------------------------------------------------------


@jittered_backoff(*RETRY_CODES)
def list_namespaces(client: Any, filter_name: str, value: str) -> list[dict]:
    """Namespace summaries for one ListNamespaces filter (not applied by every emulator: check them)."""
    paginator = client.get_paginator("list_namespaces")
    filters = [{"Name": filter_name, "Values": [value], "Condition": "EQ"}]
    return paginator.paginate(Filters=filters).build_full_result()["Namespaces"]


@jittered_backoff(*RETRY_CODES)
def list_service_summaries(client: Any, namespace_id: str) -> list[dict]:
    paginator = client.get_paginator("list_services")
    filters = [{"Name": "NAMESPACE_ID", "Values": [namespace_id], "Condition": "EQ"}]
    return paginator.paginate(Filters=filters).build_full_result()["Services"]


def service_summary(client: Any, namespace_id: str, name: str) -> dict | None:
    """The service called `name` in the namespace, from ListServices alone (its NAMESPACE_ID filter does the
    work): a ServiceSummary (settings, InstanceCount) with the NamespaceId it lacks filled in, or None."""
    for summary in list_service_summaries(client, namespace_id):
        if summary["Name"] == name:
            return {**summary, "NamespaceId": namespace_id}
    return None


def services_in_namespace(client: Any, namespace_id: str, name: str | None = None) -> Iterator[dict]:
    """Services of one namespace (only those called `name` when given), each as returned by get_service.

    The NAMESPACE_ID filter does the work on AWS; ServiceSummary has no NamespaceId, so each candidate is
    read with get_service and checked (moto 5.2.5 ignores the filter and returns every service).
    """
    for summary in list_service_summaries(client, namespace_id):
        if name is not None and summary["Name"] != name:
            continue
        service = client.get_service(Id=summary["Id"], aws_retry=True)["Service"]
        if service.get("NamespaceId") == namespace_id:
            yield service


# --- Tags ----------------------------------------------------------------------------------------


def get_tags(module: AnsibleAWSModule, client: Any, arn: str) -> dict[str, str]:
    try:
        tags = client.list_tags_for_resource(ResourceARN=arn, aws_retry=True)["Tags"]
    except (BotoCoreError, ClientError) as e:
        module.fail_json_aws(e, msg=f"Failed to list tags of Cloud Map resource {arn}")
    return boto3_tag_list_to_ansible_dict(tags)


def desired_tags(module: AnsibleAWSModule, current: dict[str, str]) -> dict[str, str]:
    """Tags the resource will carry once sync_tags has run."""
    return tags_after_run(module.params, current)


def sync_tags(module: AnsibleAWSModule, client: Any, arn: str, current: dict[str, str]) -> bool:
    """Apply the tags/purge_tags options to the resource (not in check mode); True when they differ."""
    desired = module.params["tags"]
    if desired is None:
        return False
    to_set, to_unset = compare_aws_tags(current, desired, module.params["purge_tags"])
    if not (to_set or to_unset) or module.check_mode:
        return bool(to_set or to_unset)
    try:
        if to_unset:
            client.untag_resource(ResourceARN=arn, TagKeys=to_unset, aws_retry=True)
        if to_set:
            client.tag_resource(ResourceARN=arn, Tags=ansible_dict_to_boto3_tag_list(to_set), aws_retry=True)
    except (BotoCoreError, ClientError) as e:
        module.fail_json_aws(e, msg=f"Failed to update tags of Cloud Map resource {arn}")
    return True
