#!/usr/bin/python
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Create, update and delete several ECS services of one cluster in one run (project library module)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: ecs_services
short_description: Keep several ECS services of one cluster as described, in one run
description:
  - Creates the services of O(services) that do not exist (or exist only as C(INACTIVE)), and updates the others
    where they differ from their description. All of them are read with one C(DescribeServices) call per ten
    services, so a run that changes nothing costs one call for up to ten services.
  - Compared and updated in place, with C(UpdateService) - task definition, desired count, capacity provider
    strategy, network configuration (subnets, security groups, public IP), load balancers, Cloud Map registries,
    deployment configuration (compared only when AWS reports it, and sent with every update), health check grace
    period, ECS Exec, C(propagateTags).
    Tags are synced with
    C(TagResource)/C(UntagResource).
  - A different launch type cannot be applied in place; the module fails and names the service to recreate.
  - M(community.aws.ecs_service) handles one service per run and does not compare network configuration,
    registries or deployment configuration, so changing them there needs another change to be applied.
  - With O(state=present) and O(wait=true), every service the run created or updated is waited for until its
    deployment of the wanted task definition is C(COMPLETED) (its tasks running and healthy, the old ones gone).
    A deployment that fails (the circuit breaker's C(FAILED), or ECS rolling back to an earlier revision) or that
    is not done within O(wait_timeout) fails the module with each stopped task's stoppedReason, exit codes and
    the last lines of its awslogs stream.
  - O(state=absent) deletes the services (C(force), so running tasks are stopped) and, with O(wait=true),
    waits until ECS reports them C(INACTIVE). A cluster that does not exist has no services to delete.
  - Supports check mode and diff mode.
author:
  - airflow-ecs project
options:
  cluster:
    description: Name or ARN of the ECS cluster.
    type: str
    required: true
  services:
    description: The services, each in the ECS API form (camelCase keys) except for O(services[].tags).
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: Service name.
        type: str
        required: true
      task_definition:
        description: C(family:revision) or ARN of the task definition. Required with O(state=present).
        type: str
      desired_count:
        description: Number of tasks to keep running.
        type: int
        default: 1
      launch_type:
        description: Launch type. Mutually exclusive with O(services[].capacity_provider_strategy).
        type: str
        choices: [FARGATE, EC2, EXTERNAL]
      capacity_provider_strategy:
        description: C(capacityProvider), C(weight), C(base) items.
        type: list
        elements: dict
      network_configuration:
        description: The C(awsvpcConfiguration) (C(subnets), C(securityGroups), C(assignPublicIp)).
        type: dict
      load_balancers:
        description: C(targetGroupArn), C(containerName), C(containerPort) items.
        type: list
        elements: dict
        default: []
      health_check_grace_period_seconds:
        description:
          - Seconds after a task starts during which ECS ignores failing load balancer health checks (a task
            whose application takes a while to start is otherwise stopped as unhealthy). Only with
            O(services[].load_balancers). Compared with what AWS reports (0 when not set).
        type: int
      enable_execute_command:
        description:
          - ECS Exec into the service's tasks (C(enableExecuteCommand)). Applies to tasks started after the
            change; the task role needs the C(ssmmessages) permissions.
        type: bool
        default: false
      service_registries:
        description: C(registryArn) items (Cloud Map services).
        type: list
        elements: dict
        default: []
      deployment_configuration:
        description: For example C(minimumHealthyPercent), C(maximumPercent), C(deploymentCircuitBreaker).
        type: dict
      propagate_tags:
        description: Copy tags to tasks from the service or the task definition.
        type: str
        default: SERVICE
        choices: [SERVICE, TASK_DEFINITION, NONE]
      tags:
        description: Tags of the service, as a dict. Tags not listed are removed.
        type: dict
        default: {}
  state:
    description: Whether the services should exist.
    type: str
    default: present
    choices: [present, absent]
  wait:
    description:
      - With O(state=present), wait until every created or updated service's deployment is complete (steady).
      - With O(state=absent), wait until every deleted service is C(INACTIVE).
    type: bool
    default: true
  wait_timeout:
    description: Seconds to wait with O(wait=true), for each service.
    type: int
    default: 600
  poll_interval:
    description: Seconds between two reads while waiting.
    type: int
    default: 5
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
seealso:
  - module: community.aws.ecs_service
"""

EXAMPLES = r"""
- name: Run the scheduler and two workers on Fargate Spot-first capacity
  ecs_services:
    cluster: airflow
    services:
      - name: airflow-scheduler
        task_definition: airflow-scheduler:4
        capacity_provider_strategy: [{capacityProvider: FARGATE, weight: 1}]
        network_configuration:
          awsvpcConfiguration: {subnets: [subnet-1, subnet-2], securityGroups: [sg-1], assignPublicIp: DISABLED}
        deployment_configuration:
          minimumHealthyPercent: 0
          maximumPercent: 100
          deploymentCircuitBreaker: {enable: true, rollback: true}
        tags: {stack: airflow}
      - name: airflow-worker
        task_definition: airflow-worker:9
        desired_count: 2
        capacity_provider_strategy: [{capacityProvider: FARGATE_SPOT, weight: 1}]
        network_configuration:
          awsvpcConfiguration: {subnets: [subnet-1, subnet-2], securityGroups: [sg-1], assignPublicIp: DISABLED}

- name: Delete both and wait until they are gone
  ecs_services:
    cluster: airflow
    services: [{name: airflow-scheduler}, {name: airflow-worker}]
    state: absent
"""

RETURN = r"""
services:
  description: One entry per item of O(services), in the same order.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Service name.
      type: str
      sample: airflow-scheduler
    arn:
      description: Service ARN; V(null) for a service to be created in check mode, or deleted.
      type: str
      sample: arn:aws:ecs:us-east-1:123456789012:service/airflow/airflow-scheduler
    task_definition:
      description: Task definition ARN the service runs (after the run).
      type: str
      sample: arn:aws:ecs:us-east-1:123456789012:task-definition/airflow-scheduler:4
    desired_count:
      description: Desired count after the run.
      type: int
      sample: 1
    changed:
      description: Whether the service was (or, in check mode, would be) created, updated, tagged or deleted.
      type: bool
      sample: false
    updated:
      description: The C(UpdateService) fields that differed (empty when none did, or the service was created).
      type: list
      elements: str
      sample: [taskDefinition]
"""

import contextlib
import time
import uuid
from typing import Any

with contextlib.suppress(ImportError):  # a missing botocore is reported by AnsibleAWSModule
    from botocore.exceptions import BotoCoreError, ClientError, WaiterError

from ansible.module_utils.aws_retry import jittered_backoff
from ansible.module_utils.batch_items import covers, fail_on_repeats
from ansible.module_utils.ecs_logs import log_tail
from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.tagging import (
    ansible_dict_to_boto3_tag_list,
    boto3_tag_list_to_ansible_dict,
    compare_aws_tags,
)

DESCRIBE_BATCH = 10  # DescribeServices takes at most ten services
WAIT_DELAY = 5


def describe(module: AnsibleAWSModule, client: Any, cluster: str, names: list[str]) -> dict[str, dict]:
    """The ACTIVE and DRAINING services among `names`, by name."""
    found = {}
    for start in range(0, len(names), DESCRIBE_BATCH):
        batch = names[start : start + DESCRIBE_BATCH]
        try:
            response = client.describe_services(cluster=cluster, services=batch, include=["TAGS"], aws_retry=True)
        except is_boto3_error_code("ClusterNotFoundException"):
            if module.params["state"] == "absent":
                return {}  # no cluster, no services
            module.fail_json(msg=f"Cluster '{cluster}' does not exist; create it before its services")
        except (BotoCoreError, ClientError) as e:  # pylint: disable=duplicate-except
            module.fail_json_aws(e, msg=f"Failed to describe services {', '.join(batch)} of cluster '{cluster}'")
        for failure in response.get("failures") or []:
            if failure.get("reason") != "MISSING":
                module.fail_json(msg=f"Failed to describe service {failure.get('arn')}: {failure.get('reason')}")
        for service in response.get("services") or []:
            if service.get("status") != "INACTIVE":
                found[service["serviceName"]] = service
    return found


def task_definition_key(value: str | None) -> str:
    """`family:revision` of a task definition ARN or `family:revision`."""
    return (value or "").rsplit("/", 1)[-1]


def network(value: dict | None) -> dict:
    config = (value or {}).get("awsvpcConfiguration") or {}
    return {
        "subnets": sorted(config.get("subnets") or []),
        "securityGroups": sorted(config.get("securityGroups") or []),
        "assignPublicIp": config.get("assignPublicIp") or "DISABLED",
    }


def strategy(value: list | None) -> list[dict]:
    items = [
        {"capacityProvider": i["capacityProvider"], "weight": int(i.get("weight", 0)), "base": int(i.get("base", 0))}
        for i in value or []
    ]
    return sorted(items, key=lambda i: i["capacityProvider"])


def load_balancers(value: list | None) -> list[dict]:
    keys = ("targetGroupArn", "loadBalancerName", "containerName", "containerPort")
    return sorted(({k: lb.get(k) for k in keys if lb.get(k) is not None} for lb in value or []), key=str)


def registries(value: list | None) -> list[str]:
    return sorted(r.get("registryArn") for r in value or [])


def differences(item: dict, service: dict) -> dict[str, Any]:
    """UpdateService parameters for the fields of `service` that differ from `item`."""
    update: dict[str, Any] = {}
    if task_definition_key(item["task_definition"]) != task_definition_key(service.get("taskDefinition")):
        update["taskDefinition"] = item["task_definition"]
    if item["desired_count"] != service.get("desiredCount"):
        update["desiredCount"] = item["desired_count"]
    if item["capacity_provider_strategy"] is not None and strategy(item["capacity_provider_strategy"]) != strategy(
        service.get("capacityProviderStrategy")
    ):
        update["capacityProviderStrategy"] = item["capacity_provider_strategy"]
    if item["network_configuration"] is not None and network(item["network_configuration"]) != network(
        service.get("networkConfiguration")
    ):
        update["networkConfiguration"] = item["network_configuration"]
    if load_balancers(item["load_balancers"]) != load_balancers(service.get("loadBalancers")):
        update["loadBalancers"] = item["load_balancers"]
    if registries(item["service_registries"]) != registries(service.get("serviceRegistries")):
        update["serviceRegistries"] = item["service_registries"]
    if item["enable_execute_command"] != bool(service.get("enableExecuteCommand")):
        update["enableExecuteCommand"] = item["enable_execute_command"]
    grace = item["health_check_grace_period_seconds"]
    if grace is not None and grace != (service.get("healthCheckGracePeriodSeconds") or 0):
        update["healthCheckGracePeriodSeconds"] = grace
    reported = service.get("deploymentConfiguration")
    wanted = item["deployment_configuration"]
    if wanted is not None and reported is not None and not covers(reported, wanted):
        update["deploymentConfiguration"] = wanted
    if item["propagate_tags"] != (service.get("propagateTags") or "NONE"):
        update["propagateTags"] = item["propagate_tags"]
    return update


def create_params(cluster: str, item: dict) -> dict[str, Any]:
    params: dict[str, Any] = {
        "cluster": cluster,
        "serviceName": item["name"],
        "taskDefinition": item["task_definition"],
        "desiredCount": item["desired_count"],
        "loadBalancers": item["load_balancers"],
        "serviceRegistries": item["service_registries"],
        "propagateTags": item["propagate_tags"],
        "enableExecuteCommand": item["enable_execute_command"],
        "clientToken": str(uuid.uuid4()),  # one service, however often the call is retried
    }
    optional = {
        "launchType": item["launch_type"],
        "capacityProviderStrategy": item["capacity_provider_strategy"],
        "networkConfiguration": item["network_configuration"],
        "deploymentConfiguration": item["deployment_configuration"],
        "healthCheckGracePeriodSeconds": item["health_check_grace_period_seconds"],
    }
    params.update({key: value for key, value in optional.items() if value is not None})
    if item["tags"]:
        params["tags"] = [{"key": k, "value": v} for k, v in item["tags"].items()]
    return params


def sync_tags(module: AnsibleAWSModule, client: Any, service: dict, wanted: dict) -> bool:
    current = boto3_tag_list_to_ansible_dict(service.get("tags") or [], "key", "value")
    to_set, to_unset = compare_aws_tags(current, wanted, purge_tags=True)
    if not (to_set or to_unset) or module.check_mode:
        return bool(to_set or to_unset)
    try:
        if to_unset:
            client.untag_resource(resourceArn=service["serviceArn"], tagKeys=to_unset, aws_retry=True)
        if to_set:
            tags = ansible_dict_to_boto3_tag_list(to_set, "key", "value")
            client.tag_resource(resourceArn=service["serviceArn"], tags=tags, aws_retry=True)
    except (BotoCoreError, ClientError) as e:
        module.fail_json_aws(e, msg=f"Failed to update the tags of service '{service['serviceName']}'")
    return True


def view(service: dict | None) -> dict:
    """What the diff shows of a service (API form)."""
    if not service:
        return {}
    return {
        "taskDefinition": task_definition_key(service.get("taskDefinition")),
        "desiredCount": service.get("desiredCount"),
        "launchType": service.get("launchType"),
        "capacityProviderStrategy": strategy(service.get("capacityProviderStrategy")),
        "networkConfiguration": network(service.get("networkConfiguration")),
        "loadBalancers": load_balancers(service.get("loadBalancers")),
        "healthCheckGracePeriodSeconds": service.get("healthCheckGracePeriodSeconds") or 0,
        "enableExecuteCommand": bool(service.get("enableExecuteCommand")),
        "serviceRegistries": registries(service.get("serviceRegistries")),
        "propagateTags": service.get("propagateTags") or "NONE",
        "tags": boto3_tag_list_to_ansible_dict(service.get("tags") or [], "key", "value"),
    }


def outcome(name: str, service: dict | None, changed: bool, updated: list[str]) -> dict:
    return {
        "name": name,
        "arn": service.get("serviceArn") if service else None,
        "task_definition": service.get("taskDefinition") if service else None,
        "desired_count": service.get("desiredCount") if service else None,
        "changed": changed,
        "updated": updated,
    }


def planned(item: dict, service: dict | None = None) -> dict:
    """The service as it will be described after the run (for check mode and the diff)."""
    return {
        **(service or {}),
        "serviceName": item["name"],
        "taskDefinition": item["task_definition"],
        "desiredCount": item["desired_count"],
        "launchType": item["launch_type"] or (service or {}).get("launchType"),
        "capacityProviderStrategy": item["capacity_provider_strategy"],
        "networkConfiguration": item["network_configuration"],
        "loadBalancers": item["load_balancers"],
        "healthCheckGracePeriodSeconds": item["health_check_grace_period_seconds"]
        if item["health_check_grace_period_seconds"] is not None
        else (service or {}).get("healthCheckGracePeriodSeconds"),
        "serviceRegistries": item["service_registries"],
        "enableExecuteCommand": item["enable_execute_command"],
        "propagateTags": item["propagate_tags"],
        "tags": [{"key": k, "value": v} for k, v in item["tags"].items()],
    }


def ensure_present(module: AnsibleAWSModule, client: Any, item: dict, service: dict | None) -> tuple[dict, dict]:
    cluster, name = module.params["cluster"], item["name"]
    diff = {"before": {"name": name, **view(service)}, "after": {"name": name, **view(planned(item, service))}}
    if service is None or service.get("status") == "DRAINING":
        if service is not None:
            module.fail_json(msg=f"Service '{name}' is being deleted (DRAINING); run again once it is INACTIVE")
        if module.check_mode:
            return outcome(name, None, True, []), diff
        try:
            created = client.create_service(aws_retry=True, **create_params(cluster, item))["service"]
        except (BotoCoreError, ClientError) as e:
            module.fail_json_aws(e, msg=f"Failed to create service '{name}' in cluster '{cluster}'")
        return outcome(name, created, True, []), diff
    if item["launch_type"] and service.get("launchType") and item["launch_type"] != service["launchType"]:
        module.fail_json(
            msg=f"Service '{name}' runs with launch type {service['launchType']}, not {item['launch_type']}: "
            "ECS cannot change it in place. Delete the service (or rename it) to recreate it."
        )
    update = differences(item, service)
    differed = sorted(update)
    if update and item["deployment_configuration"] is not None:
        # Sent with every update, so an endpoint that does not report it still gets it applied.
        update["deploymentConfiguration"] = item["deployment_configuration"]
    if "capacityProviderStrategy" in update:
        update["forceNewDeployment"] = True  # ECS applies a new strategy only with a new deployment
    changed_tags = sync_tags(module, client, service, item["tags"])
    after = service
    if update and not module.check_mode:
        try:
            after = client.update_service(cluster=cluster, service=name, aws_retry=True, **update)["service"]
        except (BotoCoreError, ClientError) as e:
            module.fail_json_aws(e, msg=f"Failed to update {', '.join(sorted(update))} of service '{name}'")
    elif update:
        after = planned(item, service)
    return outcome(name, after, bool(update) or changed_tags, differed), diff


def ensure_absent(module: AnsibleAWSModule, client: Any, item: dict, service: dict | None) -> tuple[dict, dict]:
    name = item["name"]
    diff = {"before": {"name": name, **view(service)}, "after": {}}
    if service is None or service.get("status") == "DRAINING":
        return outcome(name, None, False, []), diff
    if not module.check_mode:
        try:
            client.delete_service(cluster=module.params["cluster"], service=name, force=True, aws_retry=True)
        except (BotoCoreError, ClientError) as e:
            module.fail_json_aws(e, msg=f"Failed to delete service '{name}'")
    return outcome(name, None, True, []), diff


def wait_inactive(module: AnsibleAWSModule, client: Any, names: list[str]) -> None:
    cluster = module.params["cluster"]
    attempts = max(1, module.params["wait_timeout"] // WAIT_DELAY)
    for start in range(0, len(names), DESCRIBE_BATCH):
        batch = names[start : start + DESCRIBE_BATCH]
        try:
            client.get_waiter("services_inactive").wait(
                cluster=cluster, services=batch, WaiterConfig={"Delay": WAIT_DELAY, "MaxAttempts": attempts}
            )
        except WaiterError as e:
            module.fail_json_aws(
                e, msg=f"Services {', '.join(batch)} were not INACTIVE after {module.params['wait_timeout']} s"
            )


FAILED_TASKS_SHOWN = 3


def rollout_state(service: dict, wanted: str) -> str:
    """done | failed | waiting, for the deployment of task definition `wanted` (family:revision)."""
    deployments = service.get("deployments") or []
    mine = [d for d in deployments if same_revision(d.get("taskDefinition"), wanted)]
    if any(d.get("rolloutState") == "FAILED" for d in mine):
        return "failed"
    if not mine:
        return "failed"  # ECS moved the service to another revision: a rollback
    primary = deployments[0]
    if (
        len(deployments) == 1
        and primary in mine
        and primary.get("rolloutState", "COMPLETED") == "COMPLETED"
        and service.get("runningCount") == service.get("desiredCount")
    ):
        return "done"
    return "waiting"


def same_revision(arn: str | None, wanted: str) -> bool:
    """`wanted` is family:revision, or a bare family (its latest revision: any of the family matches)."""
    key = task_definition_key(arn)
    return key == wanted if ":" in wanted else key.split(":")[0] == wanted


def rollout_failure(module: AnsibleAWSModule, client: Any, service: dict, wanted: str, why: str) -> str:
    """What went wrong: the deployments, and the stopped tasks of the wanted revision with their log tails."""
    cluster, name = module.params["cluster"], service["serviceName"]
    primary_arn = (service.get("deployments") or [{}])[0].get("taskDefinition")
    primary = task_definition_key(primary_arn)
    lines = [f"Service '{name}': the deployment of {wanted} {why}."]
    for deployment in service.get("deployments") or []:
        lines.append(
            f"  deployment {deployment.get('id')} ({task_definition_key(deployment.get('taskDefinition'))}, "
            f"{deployment.get('status')}): {deployment.get('rolloutState')} - {deployment.get('rolloutStateReason')}"
            f" ({deployment.get('runningCount')} running, {deployment.get('failedTasks', 0)} failed)"
        )
    if not same_revision(primary_arn, wanted):
        lines.append(f"  ECS rolled the service back to {primary}, which keeps serving.")
    family = wanted.split(":", maxsplit=1)[0]
    try:
        arns = client.list_tasks(cluster=cluster, family=family, desiredStatus="STOPPED", aws_retry=True)["taskArns"]
        tasks = client.describe_tasks(cluster=cluster, tasks=arns[:100], aws_retry=True)["tasks"] if arns else []
        definition = client.describe_task_definition(taskDefinition=wanted, aws_retry=True)["taskDefinition"]
    except (BotoCoreError, ClientError) as e:
        lines.append(f"  (stopped tasks not readable: {e})")
        return "\n".join(lines)
    tasks = [t for t in tasks if same_revision(t.get("taskDefinitionArn"), wanted)]
    tasks.sort(key=lambda t: str(t.get("stoppedAt") or ""), reverse=True)
    logs = module.client("logs", retry_decorator=jittered_backoff())
    for task in tasks[:FAILED_TASKS_SHOWN]:
        task_id = task["taskArn"].rsplit("/", 1)[-1]
        codes = ", ".join(
            f"{c['name']}={c.get('exitCode', 'none')}" + (f" ({c['reason']})" if c.get("reason") else "")
            for c in task.get("containers", [])
        )
        lines.append(
            f"  task {task_id} stopped: {task.get('stoppedReason')} [{task.get('stopCode')}]; exit codes: {codes}"
        )
        for container in task.get("containers", []):
            lines.append(log_tail(logs, definition, container["name"], task_id))
    if not tasks:
        lines.append("  (no stopped task of that revision)")
    return "\n".join(lines)


def wait_steady(module: AnsibleAWSModule, client: Any, wanted: dict[str, str]) -> None:
    """Wait for each service's deployment of its wanted revision; fail with the reasons on the first failure."""
    deadline = time.monotonic() + module.params["wait_timeout"]
    pending = dict(wanted)
    while pending:
        found = describe(module, client, module.params["cluster"], sorted(pending))
        for name in sorted(pending):
            service = found.get(name)
            if service is None:
                module.fail_json(msg=f"Service '{name}' disappeared while its deployment was awaited")
            state = rollout_state(service, pending[name])
            if state == "failed":
                module.fail_json(msg=rollout_failure(module, client, service, pending[name], "failed"))
            if state == "done":
                del pending[name]
        if pending and time.monotonic() > deadline:
            name = sorted(pending)[0]
            why = f"was not complete after {module.params['wait_timeout']} s"
            module.fail_json(msg=rollout_failure(module, client, found[name], pending[name], why))
        if pending:
            time.sleep(module.params["poll_interval"])


def validate(module: AnsibleAWSModule) -> None:
    items = module.params["services"]
    fail_on_repeats(module, "services", "service", [item["name"] for item in items])
    if module.params["state"] != "present":
        return
    for item in items:
        if not item["task_definition"]:
            module.fail_json(msg=f"Service '{item['name']}' needs a task_definition")
        if item["launch_type"] and item["capacity_provider_strategy"]:
            module.fail_json(
                msg=f"Service '{item['name']}': launch_type and capacity_provider_strategy exclude each other"
            )
        if item["desired_count"] < 0:
            module.fail_json(msg=f"Service '{item['name']}': desired_count must be >= 0, not {item['desired_count']}")


def main() -> None:
    argument_spec = dict(
        cluster=dict(type="str", required=True),
        services=dict(
            type="list",
            elements="dict",
            required=True,
            options=dict(
                name=dict(type="str", required=True),
                task_definition=dict(type="str"),
                desired_count=dict(type="int", default=1),
                launch_type=dict(type="str", choices=["FARGATE", "EC2", "EXTERNAL"]),
                capacity_provider_strategy=dict(type="list", elements="dict"),
                network_configuration=dict(type="dict"),
                load_balancers=dict(type="list", elements="dict", default=[]),
                health_check_grace_period_seconds=dict(type="int"),
                enable_execute_command=dict(type="bool", default=False),
                service_registries=dict(type="list", elements="dict", default=[]),
                deployment_configuration=dict(type="dict"),
                propagate_tags=dict(type="str", default="SERVICE", choices=["SERVICE", "TASK_DEFINITION", "NONE"]),
                tags=dict(type="dict", default={}),
            ),
        ),
        state=dict(type="str", default="present", choices=["present", "absent"]),
        wait=dict(type="bool", default=True),
        wait_timeout=dict(type="int", default=600),
        poll_interval=dict(type="int", default=WAIT_DELAY),
    )
    module = AnsibleAWSModule(argument_spec=argument_spec, supports_check_mode=True)
    validate(module)
    client = module.client("ecs", retry_decorator=jittered_backoff())
    items = module.params["services"]
    found = describe(module, client, module.params["cluster"], [item["name"] for item in items])
    ensure = ensure_present if module.params["state"] == "present" else ensure_absent
    results, diffs = [], []
    for item in items:
        result, diff = ensure(module, client, item, found.get(item["name"]))
        results.append(result)
        if result["changed"]:
            diffs.append(diff)
    deleted = [r["name"] for r in results if r["changed"] and module.params["state"] == "absent"]
    if deleted and module.params["wait"] and not module.check_mode:
        wait_inactive(module, client, deleted)
    rolled = {
        r["name"]: item["task_definition"]
        for r, item in zip(results, items, strict=True)
        if module.params["state"] == "present" and r["changed"]
    }
    if rolled and module.params["wait"] and not module.check_mode:
        wait_steady(module, client, {name: task_definition_key(td) for name, td in rolled.items()})
    output: dict[str, Any] = {"changed": any(r["changed"] for r in results), "services": results}
    if module._diff:
        output["diff"] = diffs
    module.exit_json(**output)


if __name__ == "__main__":
    main()
