#!/usr/bin/python
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Manage an AWS Cloud Map private DNS namespace (project library module)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: servicediscovery_namespace
short_description: Manage an AWS Cloud Map private DNS namespace
description:
  - Create, update or delete an AWS Cloud Map (service discovery) private DNS namespace bound to a VPC.
  - A namespace is found by O(name) among the account's C(DNS_PRIVATE) namespaces. When several namespaces
    share the name (one per VPC), O(vpc_id) picks the one whose Route 53 hosted zone is associated with it.
  - Cloud Map works asynchronously; with O(wait=true) the module polls the Cloud Map operation until it
    succeeds, fails or O(wait_timeout) passes.
author:
  - airflow-ecs project
options:
  name:
    description:
      - DNS name of the namespace, for example V(airflow.local).
    required: true
    type: str
  vpc_id:
    description:
      - ID of the VPC the namespace is bound to.
      - Required when O(state=present). Cloud Map cannot move a namespace to another VPC; when the
        existing namespace is bound to a different VPC the module fails.
      - With O(state=absent) it is only used to choose between namespaces that share O(name).
    type: str
  description:
    description:
      - Description of the namespace.
      - When not set, the description of an existing namespace is left unchanged.
    type: str
  state:
    description:
      - Whether the namespace should exist.
    choices: [present, absent]
    default: present
    type: str
  force:
    description:
      - Only used with O(state=absent).
      - Cloud Map refuses to delete a namespace that still has services, and so does this module by default.
      - With O(force=true) the services of the namespace are deleted first, but only if none of them has
        registered instances. Instances belong to whoever registered them (usually an ECS service), so the
        module never deregisters them here; it fails and names the services that still have instances.
        Use M(servicediscovery_service) with O(servicediscovery_service#module:force=true) to empty a service.
    type: bool
    default: false
  wait:
    description:
      - Wait for the Cloud Map operation (create, update, delete) to finish.
      - With O(wait=false) a freshly created namespace may not be readable yet; RV(namespace) is then empty
        and RV(operation_id) identifies the pending operation.
    type: bool
    default: true
  wait_timeout:
    description:
      - How many seconds to wait for a Cloud Map operation.
    type: int
    default: 300
notes:
  - Supports check mode and diff mode. In check mode nothing is changed; when the namespace does not exist
    yet RV(namespace) holds only the values the module would set (no id or ARN).
  - The namespace's Route 53 hosted zone is created and deleted by Cloud Map itself.
  - Looking up the VPC of an existing namespace needs C(route53:GetHostedZone); when that is not allowed the
    VPC check is skipped with a warning.
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.tags
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Create the private DNS namespace of the stack
  servicediscovery_namespace:
    name: airflow.local
    vpc_id: "{{ airflow_ecs_network.vpc_id }}"
    description: Service discovery for the airflow stack
    tags:
      airflow-ecs:stack: airflow
  register: __namespace

- name: Show the namespace id for ECS service registries
  ansible.builtin.debug:
    msg: "{{ __namespace.namespace.id }}"

- name: Delete the namespace and its (empty) services
  servicediscovery_namespace:
    name: airflow.local
    state: absent
    force: true
"""

RETURN = r"""
namespace:
  description:
    - The namespace, with keys in snake_case. Empty after deletion.
  returned: always
  type: dict
  contains:
    id:
      description: Namespace ID.
      type: str
      sample: ns-abcdefghijklmnop
    arn:
      description: Namespace ARN.
      type: str
      sample: arn:aws:servicediscovery:us-east-1:123456789012:namespace/ns-abcdefghijklmnop
    name:
      description: Namespace DNS name.
      type: str
      sample: airflow.local
    type:
      description: Namespace type, always C(DNS_PRIVATE) for this module.
      type: str
      sample: DNS_PRIVATE
    description:
      description: Namespace description.
      type: str
      sample: Service discovery for the airflow stack
    properties:
      description: Namespace properties.
      type: dict
      contains:
        dns_properties:
          description: DNS properties; C(hosted_zone_id) is the Route 53 private hosted zone Cloud Map created.
          type: dict
          sample: {"hosted_zone_id": "Z0123456789ABCDEFGHIJ", "soa": {"ttl": 15}}
    service_count:
      description: Number of services in the namespace (reported by AWS; not by every emulator).
      type: int
      returned: when reported by the API
      sample: 3
    create_date:
      description: When the namespace was created.
      type: str
      sample: "2024-01-01T00:00:00+00:00"
    creator_request_id:
      description: Idempotency token used at creation.
      type: str
    tags:
      description: Tags of the namespace.
      type: dict
      sample: {"airflow-ecs:stack": "airflow"}
operation_id:
  description: ID of the Cloud Map operation that was started and not waited for (O(wait=false)).
  returned: when an operation was started with O(wait=false)
  type: str
  sample: abcdefghijklmnopqrstuvwxyz012345-abcdefgh
"""

import contextlib
import uuid
from typing import Any

with contextlib.suppress(ImportError):  # a missing botocore is reported by AnsibleAWSModule
    from botocore.exceptions import BotoCoreError, ClientError

from ansible.module_utils.aws_retry import jittered_backoff
from ansible.module_utils.servicediscovery import (
    common_argument_spec,
    desired_tags,
    exit_with_result,
    finish_operation,
    get_tags,
    list_namespaces,
    resource_result,
    servicediscovery_client,
    services_in_namespace,
    sync_tags,
    wait_for_operation,
)
from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.tagging import ansible_dict_to_boto3_tag_list

NAMESPACE_TYPE = "DNS_PRIVATE"


# --- Reading -------------------------------------------------------------------------------------


def get_namespace(module: AnsibleAWSModule, client: Any, namespace_id: str) -> dict:
    try:
        return client.get_namespace(Id=namespace_id, aws_retry=True)["Namespace"]
    except (BotoCoreError, ClientError) as e:
        module.fail_json_aws(e, msg=f"Failed to describe Cloud Map namespace {namespace_id}")


def hosted_zone_vpcs(module: AnsibleAWSModule, namespace: dict) -> list[str] | None:
    """VPC ids associated with the namespace's hosted zone; None when they cannot be known."""
    zone_id = namespace.get("Properties", {}).get("DnsProperties", {}).get("HostedZoneId")
    if not zone_id:
        return None
    route53 = module.client("route53", retry_decorator=jittered_backoff())
    try:
        zone = route53.get_hosted_zone(Id=zone_id, aws_retry=True)
    except is_boto3_error_code(["AccessDenied", "NoSuchHostedZone"]):
        module.warn(f"Could not read hosted zone {zone_id} of namespace {namespace['Name']}; VPC not checked")
        return None
    except (BotoCoreError, ClientError) as e:  # pylint: disable=duplicate-except
        module.fail_json_aws(e, msg=f"Failed to describe hosted zone {zone_id} of Cloud Map namespace")
    vpcs = [vpc["VPCId"] for vpc in zone.get("VPCs", [])]
    return vpcs or None  # an endpoint that does not report the association cannot be checked


def find_namespace(module: AnsibleAWSModule, client: Any, name: str, vpc_id: str | None) -> dict | None:
    """The private namespace called `name` (in `vpc_id` when several), as ListNamespaces describes it, or None."""
    try:
        summaries = list_namespaces(client, "TYPE", NAMESPACE_TYPE)
    except (BotoCoreError, ClientError) as e:
        module.fail_json_aws(e, msg=f"Failed to list Cloud Map namespaces while looking for '{name}'")
    # Filter client-side too: the TYPE filter is not applied by every emulator.
    matches = [ns for ns in summaries if ns["Name"] == name and ns.get("Type") == NAMESPACE_TYPE]
    if not matches:
        return None
    # A NamespaceSummary holds all a namespace's settings (GetNamespace adds only the creator request id).
    if len(matches) == 1:
        return matches[0]
    if vpc_id:
        for summary in matches:
            if vpc_id in (hosted_zone_vpcs(module, summary) or []):
                return summary
        return None
    ids = ", ".join(ns["Id"] for ns in matches)
    module.fail_json(msg=f"Several Cloud Map private namespaces are named '{name}' ({ids}); set vpc_id to choose one")


def check_vpc(module: AnsibleAWSModule, namespace: dict, vpc_id: str) -> None:
    vpcs = hosted_zone_vpcs(module, namespace)
    if vpcs is not None and vpc_id not in vpcs:
        module.fail_json(
            msg=f"Cloud Map namespace '{namespace['Name']}' ({namespace['Id']}) is bound to VPC "
            f"{', '.join(vpcs)}, not {vpc_id}; a namespace cannot move between VPCs. Delete it first."
        )


def diff_view(namespace: dict | None, tags: dict[str, str]) -> dict:
    if not namespace:
        return {}
    return {"name": namespace.get("Name"), "description": namespace.get("Description") or "", "tags": tags}


# --- Changing ------------------------------------------------------------------------------------


def create_namespace(module: AnsibleAWSModule, client: Any, result: dict) -> dict | None:
    """Create the namespace; returns its description, or None when not (yet) readable."""
    name = module.params["name"]
    params: dict[str, Any] = {
        "Name": name,
        "Vpc": module.params["vpc_id"],
        "CreatorRequestId": str(uuid.uuid4()),  # one token for every retry of this call
    }
    if module.params["description"] is not None:
        params["Description"] = module.params["description"]
    if module.params["tags"]:
        params["Tags"] = ansible_dict_to_boto3_tag_list(module.params["tags"])
    try:
        operation_id = client.create_private_dns_namespace(aws_retry=True, **params)["OperationId"]
    except (BotoCoreError, ClientError) as e:
        module.fail_json_aws(e, msg=f"Failed to create Cloud Map namespace '{name}'")
    if not module.params["wait"]:
        result["operation_id"] = operation_id
        return None
    operation = wait_for_operation(module, client, operation_id, f"create namespace '{name}'")
    return get_namespace(module, client, operation["Targets"]["NAMESPACE"])


def update_description(module: AnsibleAWSModule, client: Any, namespace: dict, result: dict) -> bool:
    description = module.params["description"]
    if description is None or description == namespace.get("Description", ""):
        return False
    if module.check_mode:
        return True
    try:
        operation_id = client.update_private_dns_namespace(
            Id=namespace["Id"],
            UpdaterRequestId=str(uuid.uuid4()),
            Namespace={"Description": description},
            aws_retry=True,
        )["OperationId"]
    except (BotoCoreError, ClientError) as e:
        module.fail_json_aws(e, msg=f"Failed to update description of Cloud Map namespace '{namespace['Name']}'")
    finish_operation(module, client, operation_id, f"update namespace '{namespace['Name']}'", result)
    return True


def delete_services(module: AnsibleAWSModule, client: Any, namespace: dict, services: list[dict]) -> None:
    """Delete the namespace's services for force=true; refuse if any still has instances."""
    busy = []
    for service in services:
        try:
            instances = client.list_instances(ServiceId=service["Id"], MaxResults=1, aws_retry=True)["Instances"]
        except (BotoCoreError, ClientError) as e:
            module.fail_json_aws(e, msg=f"Failed to list instances of Cloud Map service '{service['Name']}'")
        if instances:
            busy.append(service["Name"])
    if busy:
        module.fail_json(
            msg=f"Cannot delete Cloud Map namespace '{namespace['Name']}': service(s) {', '.join(sorted(busy))} "
            "still have registered instances. Stop the ECS services or deregister the instances "
            "(servicediscovery_service state=absent force=true) first."
        )
    if module.check_mode:
        return
    for service in services:
        try:
            client.delete_service(Id=service["Id"], aws_retry=True)
        except is_boto3_error_code("ServiceNotFound"):
            continue
        except (BotoCoreError, ClientError) as e:  # pylint: disable=duplicate-except
            module.fail_json_aws(e, msg=f"Failed to delete Cloud Map service '{service['Name']}'")


def delete_namespace(module: AnsibleAWSModule, client: Any, namespace: dict, result: dict) -> None:
    name = namespace["Name"]
    try:
        services = list(services_in_namespace(client, namespace["Id"]))
    except (BotoCoreError, ClientError) as e:
        module.fail_json_aws(e, msg=f"Failed to list services of Cloud Map namespace '{name}'")
    if services and not module.params["force"]:
        names = ", ".join(sorted(service["Name"] for service in services))
        module.fail_json(
            msg=f"Cannot delete Cloud Map namespace '{name}': it still has {len(services)} service(s): {names}. "
            "Delete them first, or set force=true to delete services that have no registered instances."
        )
    if services:
        delete_services(module, client, namespace, services)
    if module.check_mode:
        return
    try:
        operation_id = client.delete_namespace(Id=namespace["Id"], aws_retry=True)["OperationId"]
    except is_boto3_error_code("NamespaceNotFound"):
        return
    except (BotoCoreError, ClientError) as e:  # pylint: disable=duplicate-except
        module.fail_json_aws(e, msg=f"Failed to delete Cloud Map namespace '{name}'")
    finish_operation(module, client, operation_id, f"delete namespace '{name}'", result)


# --- States --------------------------------------------------------------------------------------


def ensure_present(module: AnsibleAWSModule, client: Any, namespace: dict | None) -> dict:
    result: dict[str, Any] = {"changed": False}
    if namespace is None:
        result["changed"] = True
        after = {
            "Name": module.params["name"],
            "Type": NAMESPACE_TYPE,
            "Description": module.params["description"],
        }
        tags = module.params["tags"] or {}
        result["diff"] = {"before": {}, "after": {**diff_view(after, tags), "vpc_id": module.params["vpc_id"]}}
        if module.check_mode:
            result["namespace"] = resource_result(after, tags)
            return result
        created = create_namespace(module, client, result)
        result["namespace"] = resource_result(created, get_tags(module, client, created["Arn"])) if created else {}
        return result

    check_vpc(module, namespace, module.params["vpc_id"])
    tags = get_tags(module, client, namespace["Arn"])
    after = dict(namespace)
    if module.params["description"] is not None:
        after["Description"] = module.params["description"]
    result["diff"] = {"before": diff_view(namespace, tags), "after": diff_view(after, desired_tags(module, tags))}
    changed_description = update_description(module, client, namespace, result)
    changed_tags = sync_tags(module, client, namespace["Arn"], tags)
    result["changed"] = changed_description or changed_tags
    if result["changed"] and not module.check_mode:
        namespace = get_namespace(module, client, namespace["Id"])
        tags = get_tags(module, client, namespace["Arn"])
    elif result["changed"]:
        namespace, tags = after, desired_tags(module, tags)
    result["namespace"] = resource_result(namespace, tags)
    return result


def ensure_absent(module: AnsibleAWSModule, client: Any, namespace: dict | None) -> dict:
    result: dict[str, Any] = {"changed": False, "namespace": {}}
    if namespace is None:
        return result
    tags = get_tags(module, client, namespace["Arn"])
    delete_namespace(module, client, namespace, result)
    result["changed"] = True
    result["diff"] = {"before": diff_view(namespace, tags), "after": {}}
    return result


def main() -> None:
    argument_spec = dict(
        name=dict(type="str", required=True),
        vpc_id=dict(type="str"),
        description=dict(type="str"),
        **common_argument_spec(),
    )
    module = AnsibleAWSModule(
        argument_spec=argument_spec,
        supports_check_mode=True,
        required_if=[("state", "present", ["vpc_id"])],
    )
    client = servicediscovery_client(module)
    namespace = find_namespace(module, client, module.params["name"], module.params["vpc_id"])
    if module.params["state"] == "present":
        result = ensure_present(module, client, namespace)
    else:
        result = ensure_absent(module, client, namespace)
    exit_with_result(module, result)


if __name__ == "__main__":
    main()
