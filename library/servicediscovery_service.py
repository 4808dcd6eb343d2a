#!/usr/bin/python
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Manage an AWS Cloud Map service in a DNS namespace (project library module)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: servicediscovery_service
short_description: Manage an AWS Cloud Map service in a DNS namespace
description:
  - Create, update or delete an AWS Cloud Map (service discovery) service, the registry an ECS service
    registers its tasks in (ECS C(serviceRegistries[].registryArn) is RV(service.arn)).
  - The service is found by O(name) inside the namespace given by O(namespace_id) or O(namespace_name).
  - AWS can update the description and the TTL of the DNS records of an existing service. The routing
    policy, the DNS record types and the presence of a custom health check can only be set at creation;
    when they differ the module fails and says so, instead of silently replacing the service (an ECS
    service keeps pointing at the old registry ARN). Delete the service and run again to change them.
author:
  - airflow-ecs project
options:
  name:
    description:
      - Name of the service, the first label of its DNS name (V(api-server) gives V(api-server.airflow.local)).
    required: true
    type: str
  namespace_id:
    description:
      - ID of the namespace the service belongs to.
      - Exactly one of O(namespace_id) and O(namespace_name) is required.
    type: str
  namespace_name:
    description:
      - Name of the namespace the service belongs to; the module looks up its id.
      - Fails when no namespace or several namespaces have this name (then use O(namespace_id)).
    type: str
  description:
    description:
      - Description of the service.
      - When not set, the description of an existing service is left unchanged.
    type: str
  dns_records:
    description:
      - DNS records Cloud Map creates for each registered instance, at most one per type.
      - Record types cannot change after creation; TTLs can.
    type: list
    elements: dict
    default: [{type: A, ttl: 10}]
    suboptions:
      type:
        description: Record type.
        type: str
        required: true
        choices: [A, AAAA, SRV, CNAME]
      ttl:
        description: Time to live of the record, in seconds.
        type: int
        default: 10
  routing_policy:
    description:
      - Route 53 routing policy for the records. Set at creation only.
    type: str
    choices: [MULTIVALUE, WEIGHTED]
    default: MULTIVALUE
  health_check_custom_config:
    description:
      - Enable a custom health check (the health status is reported by the registrant, for example ECS).
      - Set at creation only; when an existing service has it and the task does not ask for it (or the other
        way round) the module fails.
      - Leave unset for no custom health check.
    type: dict
    suboptions:
      failure_threshold:
        description:
          - Sent at creation only and never compared. AWS no longer supports this value and always sets it
            to 1.
        type: int
        default: 1
  state:
    description:
      - Whether the service should exist.
    choices: [present, absent]
    default: present
    type: str
  force:
    description:
      - Only used with O(state=absent).
      - Without it, the module refuses to delete a service that still has registered instances.
      - With O(force=true) the instances are deregistered first (the module waits for those operations
        whatever O(wait) says), then the service is deleted.
    type: bool
    default: false
  wait:
    description:
      - Wait for the Cloud Map operation of an update to finish.
      - Creating and deleting a service are synchronous in Cloud Map.
    type: bool
    default: true
  wait_timeout:
    description:
      - How many seconds to wait for a Cloud Map operation.
    type: int
    default: 300
notes:
  - Supports check mode and diff mode. In check mode nothing is changed; when the service does not exist yet
    RV(service) holds only the values the module would set (no id or ARN).
  - With O(state=absent) a namespace that does not exist means there is nothing to delete (not changed).
  - With O(state=present) a namespace that does not exist is an error, except in check mode, where the module
    warns and reports the service as to be created (an earlier task of the same check run may only have
    pretended to create the namespace).
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.tags
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Create the Cloud Map service of the api-server
  servicediscovery_service:
    name: api-server
    namespace_name: airflow.local
    dns_records:
      - type: A
        ttl: 10
    health_check_custom_config:
      failure_threshold: 1
    tags:
      airflow-ecs:stack: airflow
  register: __registry

- name: Use it as the registry of an ECS service
  ansible.builtin.debug:
    msg: "registry_arn: {{ __registry.service.arn }}"

- name: Delete the service, deregistering what is left in it
  servicediscovery_service:
    name: api-server
    namespace_id: ns-abcdefghijklmnop
    state: absent
    force: true
"""

RETURN = r"""
service:
  description:
    - The service, with keys in snake_case. Empty after deletion.
  returned: always
  type: dict
  contains:
    id:
      description: Service ID.
      type: str
      sample: srv-abcdefgh
    arn:
      description: Service ARN; the C(registry_arn) of an ECS service registry.
      type: str
      sample: arn:aws:servicediscovery:us-east-1:123456789012:service/srv-abcdefgh
    name:
      description: Service name.
      type: str
      sample: api-server
    namespace_id:
      description: ID of the namespace of the service.
      type: str
      sample: ns-abcdefghijklmnop
    description:
      description: Service description.
      type: str
    dns_config:
      description: DNS configuration.
      type: dict
      sample: {"routing_policy": "MULTIVALUE", "dns_records": [{"type": "A", "ttl": 10}]}
    health_check_custom_config:
      description: Custom health check configuration, when the service has one.
      type: dict
      sample: {"failure_threshold": 1}
    instance_count:
      description: Number of instances registered in the service (counted with ListInstances).
      type: int
      sample: 2
    create_date:
      description: When the service was created.
      type: str
      sample: "2024-01-01T00:00:00+00:00"
    tags:
      description: Tags of the service.
      type: dict
      sample: {"airflow-ecs:stack": "airflow"}
operation_id:
  description: ID of the Cloud Map update operation that was started and not waited for (O(wait=false)).
  returned: when an update was started with O(wait=false)
  type: str
"""

import contextlib
import uuid
from typing import Any

with contextlib.suppress(ImportError):  # a missing botocore is reported by AnsibleAWSModule
    from botocore.exceptions import BotoCoreError, ClientError

from ansible.module_utils.aws_retry import jittered_backoff
from ansible.module_utils.servicediscovery import (
    RETRY_CODES,
    common_argument_spec,
    desired_tags,
    exit_with_result,
    finish_operation,
    get_tags,
    list_namespaces,
    resource_result,
    service_summary,
    servicediscovery_client,
    sync_tags,
    wait_for_operation,
)
from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.tagging import ansible_dict_to_boto3_tag_list

# --- Reading -------------------------------------------------------------------------------------


@jittered_backoff(*RETRY_CODES)
def list_instances(client: Any, service_id: str) -> list[dict]:
    paginator = client.get_paginator("list_instances")
    return paginator.paginate(ServiceId=service_id).build_full_result()["Instances"]


def resolve_namespace_id(module: AnsibleAWSModule, client: Any) -> str | None:
    """Id of the namespace given by namespace_id or namespace_name; None when it does not exist."""
    namespace_id = module.params["namespace_id"]
    if namespace_id:
        return namespace_id  # not read: a missing one lists no service, and CreateService says NamespaceNotFound
    name = module.params["namespace_name"]
    try:
        summaries = list_namespaces(client, "NAME", name)
        matches = [ns for ns in summaries if ns["Name"] == name]  # moto 5.2.5 ignores Filters
    except (BotoCoreError, ClientError) as e:
        module.fail_json_aws(e, msg=f"Failed to list Cloud Map namespaces while looking for '{name}'")
    if len(matches) > 1:
        ids = ", ".join(ns["Id"] for ns in matches)
        module.fail_json(msg=f"Several Cloud Map namespaces are named '{name}' ({ids}); set namespace_id instead")
    return matches[0]["Id"] if matches else None


def missing_namespace(module: AnsibleAWSModule) -> str:
    if module.params["namespace_id"]:
        return f"Cloud Map namespace {module.params['namespace_id']} (namespace_id) does not exist"
    return f"Cloud Map namespace '{module.params['namespace_name']}' (namespace_name) does not exist"


def find_service(module: AnsibleAWSModule, client: Any, namespace_id: str) -> dict | None:
    """The service called `name` in the namespace, as its ServiceSummary (one ListServices call), or None."""
    name = module.params["name"]
    try:
        return service_summary(client, namespace_id, name)
    except (BotoCoreError, ClientError) as e:
        module.fail_json_aws(e, msg=f"Failed to look up Cloud Map service '{name}' in namespace {namespace_id}")


def get_instances(module: AnsibleAWSModule, client: Any, service: dict) -> list[dict]:
    try:
        return list_instances(client, service["Id"])
    except (BotoCoreError, ClientError) as e:
        module.fail_json_aws(e, msg=f"Failed to list instances of Cloud Map service '{service['Name']}'")


def describe(module: AnsibleAWSModule, client: Any, service_id: str) -> dict:
    try:
        return client.get_service(Id=service_id, aws_retry=True)["Service"]
    except (BotoCoreError, ClientError) as e:
        module.fail_json_aws(e, msg=f"Failed to describe Cloud Map service {service_id}")


def to_result(service: dict, tags: dict[str, str], instance_count: int) -> dict:
    result = resource_result(service, tags)
    result["instance_count"] = instance_count
    return result


def diff_view(service: dict | None, tags: dict[str, str]) -> dict:
    if not service:
        return {}
    dns_config = service.get("DnsConfig") or {}
    return {
        "name": service.get("Name"),
        "namespace_id": service.get("NamespaceId"),
        "description": service.get("Description") or "",
        "routing_policy": dns_config.get("RoutingPolicy"),
        "dns_records": [{"type": r["Type"], "ttl": r["TTL"]} for r in dns_config.get("DnsRecords", [])],
        "health_check_custom_config": bool(service.get("HealthCheckCustomConfig")),
        "tags": tags,
    }


# --- Desired state -------------------------------------------------------------------------------


def desired_records(module: AnsibleAWSModule) -> list[dict]:
    records = [{"Type": r["type"], "TTL": r["ttl"]} for r in module.params["dns_records"]]
    types = [r["Type"] for r in records]
    if len(set(types)) != len(types):
        module.fail_json(msg=f"dns_records lists a record type more than once: {', '.join(types)}")
    return records


def immutable_differences(module: AnsibleAWSModule, service: dict) -> list[str]:
    """What the task asks for that AWS can only set when the service is created."""
    dns_config = service.get("DnsConfig") or {}
    problems = []
    policy = dns_config.get("RoutingPolicy")
    if policy != module.params["routing_policy"]:
        problems.append(f"routing_policy is {policy}, task wants {module.params['routing_policy']}")
    current_types = sorted(r["Type"] for r in dns_config.get("DnsRecords", []))
    wanted_types = sorted(r["type"] for r in module.params["dns_records"])
    if current_types != wanted_types:
        problems.append(f"DNS record types are {current_types}, task wants {wanted_types}")
    has_custom = bool(service.get("HealthCheckCustomConfig"))
    wants_custom = module.params["health_check_custom_config"] is not None
    if has_custom != wants_custom:
        problems.append(f"health_check_custom_config is {'set' if has_custom else 'unset'}, task wants the opposite")
    return problems


def service_change(module: AnsibleAWSModule, service: dict) -> dict | None:
    """The UpdateService `Service` argument, or None when description and TTLs already match."""
    current_ttls = {r["Type"]: r["TTL"] for r in (service.get("DnsConfig") or {}).get("DnsRecords", [])}
    records = desired_records(module)
    description = module.params["description"]
    ttl_changed = any(current_ttls.get(r["Type"]) != r["TTL"] for r in records)
    description_changed = description is not None and description != (service.get("Description") or "")
    if not (ttl_changed or description_changed):
        return None
    # UpdateService deletes DnsRecords and HealthCheckConfig that the request omits: always send both.
    change: dict[str, Any] = {"DnsConfig": {"DnsRecords": records}}
    new_description = description if description is not None else service.get("Description")
    if new_description is not None:
        change["Description"] = new_description
    if service.get("HealthCheckConfig"):
        change["HealthCheckConfig"] = service["HealthCheckConfig"]
    return change


# --- Changing ------------------------------------------------------------------------------------


def create_service(module: AnsibleAWSModule, client: Any, namespace_id: str) -> dict:
    name = module.params["name"]
    params: dict[str, Any] = {
        "Name": name,
        "NamespaceId": namespace_id,
        "CreatorRequestId": str(uuid.uuid4()),  # one token for every retry of this call
        "DnsConfig": {"RoutingPolicy": module.params["routing_policy"], "DnsRecords": desired_records(module)},
    }
    if module.params["description"] is not None:
        params["Description"] = module.params["description"]
    if module.params["health_check_custom_config"] is not None:
        threshold = module.params["health_check_custom_config"]["failure_threshold"]
        params["HealthCheckCustomConfig"] = {"FailureThreshold": threshold}
    if module.params["tags"]:
        params["Tags"] = ansible_dict_to_boto3_tag_list(module.params["tags"])
    try:
        return client.create_service(aws_retry=True, **params)["Service"]
    except is_boto3_error_code("NamespaceNotFound"):
        module.fail_json(msg=f"{missing_namespace(module)}; create it first")
    except (BotoCoreError, ClientError) as e:  # pylint: disable=duplicate-except
        module.fail_json_aws(e, msg=f"Failed to create Cloud Map service '{name}' in namespace {namespace_id}")


def update_service(module: AnsibleAWSModule, client: Any, service: dict, change: dict, result: dict) -> None:
    name = service["Name"]
    try:
        operation_id = client.update_service(Id=service["Id"], Service=change, aws_retry=True)["OperationId"]
    except (BotoCoreError, ClientError) as e:
        module.fail_json_aws(e, msg=f"Failed to update Cloud Map service '{name}'")
    finish_operation(module, client, operation_id, f"update service '{name}'", result)


def deregister_instances(module: AnsibleAWSModule, client: Any, service: dict, instances: list[dict]) -> None:
    """Deregister every instance and wait for all the operations (DeleteService needs them done)."""
    name = service["Name"]
    operations = []
    for instance in instances:
        try:
            response = client.deregister_instance(ServiceId=service["Id"], InstanceId=instance["Id"], aws_retry=True)
        except is_boto3_error_code("InstanceNotFound"):
            continue
        except (BotoCoreError, ClientError) as e:  # pylint: disable=duplicate-except
            module.fail_json_aws(
                e, msg=f"Failed to deregister instance {instance['Id']} from Cloud Map service '{name}'"
            )
        operations.append((response["OperationId"], instance["Id"]))
    for operation_id, instance_id in operations:
        wait_for_operation(module, client, operation_id, f"deregister instance {instance_id} from service '{name}'")


@jittered_backoff(*RETRY_CODES, "ResourceInUse", retries=6)
def delete_service_call(client: Any, service_id: str) -> None:
    # ResourceInUse: deregistrations can take a moment to be seen by DeleteService.
    client.delete_service(Id=service_id)


# --- States --------------------------------------------------------------------------------------


def ensure_present(module: AnsibleAWSModule, client: Any, namespace_id: str, service: dict | None) -> dict:
    result: dict[str, Any] = {"changed": False}
    if service is None:
        planned = {
            "Name": module.params["name"],
            "NamespaceId": namespace_id,
            "Description": module.params["description"],
            "DnsConfig": {"RoutingPolicy": module.params["routing_policy"], "DnsRecords": desired_records(module)},
        }
        if module.params["health_check_custom_config"] is not None:
            threshold = module.params["health_check_custom_config"]["failure_threshold"]
            planned["HealthCheckCustomConfig"] = {"FailureThreshold": threshold}
        tags = module.params["tags"] or {}
        result.update(changed=True, diff={"before": {}, "after": diff_view(planned, tags)})
        if not module.check_mode:
            planned = create_service(module, client, namespace_id)
            tags = get_tags(module, client, planned["Arn"])
        result["service"] = to_result(planned, tags, 0)
        return result

    problems = immutable_differences(module, service)
    if problems:
        module.fail_json(
            msg=f"Cloud Map service '{service['Name']}' ({service['Id']}) cannot be updated in place: "
            f"{'; '.join(problems)}. AWS sets these only at creation; delete the service "
            "(state=absent, force=true if it has instances) and run the task again."
        )
    tags = get_tags(module, client, service["Arn"])
    change = service_change(module, service)
    planned = dict(service)
    if change:
        planned["Description"] = change.get("Description")
        planned["DnsConfig"] = {**service["DnsConfig"], "DnsRecords": change["DnsConfig"]["DnsRecords"]}
    result["diff"] = {"before": diff_view(service, tags), "after": diff_view(planned, desired_tags(module, tags))}
    if change and not module.check_mode:
        update_service(module, client, service, change, result)
    changed_tags = sync_tags(module, client, service["Arn"], tags)
    result["changed"] = bool(change) or changed_tags
    instance_count = service.get("InstanceCount", 0)  # from ListServices; an update leaves the instances
    if result["changed"] and not module.check_mode:
        service, tags = describe(module, client, service["Id"]), get_tags(module, client, service["Arn"])
    elif result["changed"]:
        service, tags = planned, desired_tags(module, tags)
    result["service"] = to_result(service, tags, instance_count)
    return result


def ensure_absent(module: AnsibleAWSModule, client: Any, service: dict | None) -> dict:
    result: dict[str, Any] = {"changed": False, "service": {}}
    if service is None:
        return result
    name = service["Name"]
    instances = get_instances(module, client, service)
    if instances and not module.params["force"]:
        ids = ", ".join(sorted(instance["Id"] for instance in instances))
        module.fail_json(
            msg=f"Cannot delete Cloud Map service '{name}' ({service['Id']}): it still has {len(instances)} "
            f"registered instance(s): {ids}. Stop the ECS service that registers them, or set force=true "
            "to deregister them first."
        )
    tags = get_tags(module, client, service["Arn"])
    result.update(changed=True, diff={"before": diff_view(service, tags), "after": {}})
    if module.check_mode:
        return result
    if instances:
        deregister_instances(module, client, service, instances)
    try:
        delete_service_call(client, service["Id"])
    except is_boto3_error_code("ServiceNotFound"):
        pass
    except (BotoCoreError, ClientError) as e:  # pylint: disable=duplicate-except
        module.fail_json_aws(e, msg=f"Failed to delete Cloud Map service '{name}' ({service['Id']})")
    return result


def main() -> None:
    argument_spec = dict(
        name=dict(type="str", required=True),
        namespace_id=dict(type="str"),
        namespace_name=dict(type="str"),
        description=dict(type="str"),
        dns_records=dict(
            type="list",
            elements="dict",
            default=[{"type": "A", "ttl": 10}],
            options=dict(
                type=dict(type="str", required=True, choices=["A", "AAAA", "SRV", "CNAME"]),
                ttl=dict(type="int", default=10),
            ),
        ),
        routing_policy=dict(type="str", default="MULTIVALUE", choices=["MULTIVALUE", "WEIGHTED"]),
        health_check_custom_config=dict(type="dict", options=dict(failure_threshold=dict(type="int", default=1))),
        **common_argument_spec(),
    )
    module = AnsibleAWSModule(
        argument_spec=argument_spec,
        supports_check_mode=True,
        mutually_exclusive=[("namespace_id", "namespace_name")],
        required_one_of=[("namespace_id", "namespace_name")],
    )
    client = servicediscovery_client(module)
    namespace_id = resolve_namespace_id(module, client)
    if namespace_id is None and module.params["state"] == "present":
        if not module.check_mode:
            module.fail_json(msg=f"{missing_namespace(module)}; create it first")
        # In check mode an earlier task may only have pretended to create it.
        module.warn(f"{missing_namespace(module)}; assuming an earlier task creates it")
    service = find_service(module, client, namespace_id) if namespace_id else None
    if module.params["state"] == "present":
        result = ensure_present(module, client, namespace_id, service)
    else:
        result = ensure_absent(module, client, service)
    exit_with_result(module, result)


if __name__ == "__main__":
    main()
