#!/usr/bin/python
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Register ECS task definitions only when their content changes, many per run (project library module)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: ecs_task_definitions
short_description: Keep the latest revision of several ECS task definition families in line, in one run
description:
  - For each family in O(task_definitions), compares the wanted definition with the family's latest C(ACTIVE)
    revision and registers a new revision only when they differ. Every family takes one
    C(DescribeTaskDefinition) call when nothing changes.
  - The two match when they have the same containers (by name) and every task-level field and container field
    is the same on both sides; a field added, changed or removed in the wanted definition registers a new
    revision. What ECS fills in by itself does not count as a difference. Fields ECS reports for every
    revision (C(revision), C(status), C(compatibilities), C(requiresAttributes), C(registeredAt), ...) are
    not compared; empty lists and maps (C(mountPoints), C(volumesFrom), C(systemControls), ...) count as not
    given; a field at the ECS default counts as not given (C(essential=true), container C(cpu=0), port
    C(protocol=tcp), a C(hostPort) equal to the C(containerPort) with the C(awsvpc) or C(host) network mode,
    health check C(interval=30), C(timeout=5), C(retries=3), C(startPeriod=0), C(versionConsistency=enabled),
    C(false) for C(privileged), C(readonlyRootFilesystem), C(disableNetworking), C(interactive) and
    C(pseudoTerminal), C(enableFaultInjection=false)); C(environment) and C(secrets) compare sorted by name;
    task C(cpu) and C(memory) compare as units (V("1 vCPU") is V("1024"), V("2 GB") is V("2048")).
  - Task-level fields the module does not set (C(placementConstraints), C(pidMode), C(ipcMode),
    C(proxyConfiguration), C(inferenceAccelerators), C(ephemeralStorage), C(enableFaultInjection),
    C(trustedExecutionConfiguration)) are compared too; a latest revision that has one (registered by another
    tool or by hand) gets a new revision without it.
  - O(state=absent) deregisters every C(ACTIVE) revision of each family (AWS keeps them as C(INACTIVE)).
  - M(community.aws.ecs_taskdefinition) handles one family per run, and takes two runs per revision to delete.
  - Supports check mode and diff mode. In check mode nothing is registered or deregistered; a family that would
    get a new revision is returned with RV(task_definitions[].revision) V(null). The diff shows both sides as
    they are compared (defaults and empty fields left out, containers by name).
author:
  - airflow-ecs project
options:
  task_definitions:
    description:
      - The task definition families, each with the content its latest revision should have.
    type: list
    elements: dict
    required: true
    suboptions:
      family:
        description: Family name.
        type: str
        required: true
      container_definitions:
        description:
          - Container definitions in the ECS API form (camelCase keys), as C(RegisterTaskDefinition) takes them.
          - Required with O(state=present). Container names must be unique in a family.
        type: list
        elements: dict
      cpu:
        description: Task CPU units, for example V("512").
        type: str
      memory:
        description: Task memory in MiB, for example V("1024").
        type: str
      network_mode:
        description: Docker network mode.
        type: str
        default: awsvpc
        choices: [awsvpc, bridge, host, none]
      requires_compatibilities:
        description: Launch types the definition must be valid for.
        type: list
        elements: str
        default: [FARGATE]
      execution_role_arn:
        description: Role ECS uses to pull images, write logs and read secrets.
        type: str
      task_role_arn:
        description: Role the containers run with. None when not given.
        type: str
      runtime_platform:
        description: C(cpuArchitecture) and C(operatingSystemFamily), in the API form.
        type: dict
      volumes:
        description: Task volumes in the API form (C(name), C(efsVolumeConfiguration), ...); the containers'
          C(mountPoints) name them.
        type: list
        elements: dict
  state:
    description:
      - V(present) registers new revisions where needed; V(absent) deregisters every active revision.
    type: str
    default: present
    choices: [present, absent]
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
seealso:
  - module: community.aws.ecs_taskdefinition
"""

EXAMPLES = r"""
- name: Register the scheduler and worker definitions (new revisions only when they change)
  ecs_task_definitions:
    task_definitions:
      - family: airflow-scheduler
        cpu: "1024"
        memory: "2048"
        execution_role_arn: arn:aws:iam::123456789012:role/airflow-execution
        runtime_platform: {cpuArchitecture: X86_64, operatingSystemFamily: LINUX}
        container_definitions:
          - name: scheduler
            image: apache/airflow:3.3.2
            essential: true
            command: [scheduler]
      - family: airflow-worker
        cpu: "2048"
        memory: "4096"
        execution_role_arn: arn:aws:iam::123456789012:role/airflow-execution
        container_definitions:
          - {name: worker, image: "apache/airflow:3.3.2", essential: true, command: [celery, worker]}
  register: definitions

- name: Deregister every revision of both families
  ecs_task_definitions:
    task_definitions: [{family: airflow-scheduler}, {family: airflow-worker}]
    state: absent
"""

RETURN = r"""
task_definitions:
  description: One entry per item of O(task_definitions), in the same order.
  returned: always
  type: list
  elements: dict
  contains:
    family:
      description: Family name.
      type: str
      sample: airflow-scheduler
    revision:
      description:
        - The latest revision after the run; V(null) in check mode for a family that would get a new one.
        - With O(state=absent), V(null).
      type: int
      sample: 7
    task_definition:
      description: C(family:revision), V(null) when RV(task_definitions[].revision) is.
      type: str
      sample: airflow-scheduler:7
    task_definition_arn:
      description: ARN of that revision, V(null) when RV(task_definitions[].revision) is.
      type: str
      sample: arn:aws:ecs:us-east-1:123456789012:task-definition/airflow-scheduler:7
    changed:
      description: Whether a revision was (or, in check mode, would be) registered or deregistered.
      type: bool
      sample: false
    deregistered:
      description: With O(state=absent), the ARNs of the revisions deregistered (or to deregister in check mode).
      type: list
      elements: str
      sample: [arn:aws:ecs:us-east-1:123456789012:task-definition/airflow-scheduler:1]
"""

import contextlib
from typing import Any

with contextlib.suppress(ImportError):  # a missing botocore is reported by AnsibleAWSModule
    from botocore.exceptions import BotoCoreError, ClientError

from ansible.module_utils.aws_retry import jittered_backoff
from ansible.module_utils.batch_items import fail_on_repeats
from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule

# Module option -> RegisterTaskDefinition parameter, for the task-level fields.
TASK_FIELDS = {
    "cpu": "cpu",
    "memory": "memory",
    "network_mode": "networkMode",
    "requires_compatibilities": "requiresCompatibilities",
    "execution_role_arn": "executionRoleArn",
    "task_role_arn": "taskRoleArn",
    "runtime_platform": "runtimePlatform",
    "volumes": "volumes",
}
# The other RegisterTaskDefinition parameters (but family, containerDefinitions and tags): the module never
# sets them, so a latest revision that has one differs from the wanted definition. What else
# DescribeTaskDefinition returns (taskDefinitionArn, revision, status, compatibilities, requiresAttributes,
# registeredAt, registeredBy, deregisteredAt, ...) is ECS's own and not compared.
UNMANAGED_TASK_FIELDS = (
    "placementConstraints",
    "pidMode",
    "ipcMode",
    "proxyConfiguration",
    "inferenceAccelerators",
    "ephemeralStorage",
    "enableFaultInjection",
    "trustedExecutionConfiguration",
)
# Values that are the same as not giving the field (ECS returns some of them on every revision).
TASK_DEFAULTS = {"enableFaultInjection": False}
CONTAINER_DEFAULTS = {
    "essential": True,
    "cpu": 0,
    "versionConsistency": "enabled",
    "disableNetworking": False,
    "privileged": False,
    "readonlyRootFilesystem": False,
    "interactive": False,
    "pseudoTerminal": False,
}
HEALTH_CHECK_DEFAULTS = {"interval": 30, "timeout": 5, "retries": 3, "startPeriod": 0}
# Task size fields and the unit ECS converts from (1 vCPU = 1024 CPU units, 1 GB = 1024 MiB).
SIZE_UNITS = {"cpu": "vcpu", "memory": "gb"}


def pruned(value: Any) -> Any:
    """The value without the None, empty list and empty dict entries of its dicts, at any depth."""
    if isinstance(value, dict):
        kept = {key: pruned(item) for key, item in value.items()}
        return {key: item for key, item in kept.items() if item is not None and item not in ([], {})}
    if isinstance(value, list):
        return [pruned(item) for item in value]
    return value


def without_defaults(fields: dict, defaults: dict) -> dict:
    """The fields, less those at their default value (of the same type: 0 is not the default False)."""
    return {
        key: value
        for key, value in fields.items()
        if not (key in defaults and value == defaults[key] and type(value) is type(defaults[key]))
    }


def task_size(field: str, value: Any) -> str:
    """A task cpu or memory as ECS stores it: V("1 vCPU") -> V("1024"), V("2 GB") -> V("2048")."""
    text = str(value).strip()
    unit = SIZE_UNITS[field]
    if text.lower().endswith(unit):
        try:
            return str(round(float(text[: -len(unit)]) * 1024))
        except ValueError:
            return text
    return text


def comparable_port(mapping: dict, network_mode: str | None) -> dict:
    mapping = dict(mapping)
    if mapping.get("protocol") == "tcp":
        del mapping["protocol"]
    host_port = mapping.get("hostPort")
    if host_port == 0 or (network_mode in ("awsvpc", "host") and host_port == mapping.get("containerPort")):
        mapping.pop("hostPort", None)
    return mapping


def comparable_container(container: dict, network_mode: str | None) -> dict:
    """A container definition with ECS's defaults, empty fields and orderings evened out."""
    fields = without_defaults(pruned(container), CONTAINER_DEFAULTS)
    for key in ("environment", "secrets"):
        if key in fields:
            fields[key] = sorted(fields[key], key=lambda pair: str(pair.get("name")))
    if "portMappings" in fields:
        fields["portMappings"] = [comparable_port(mapping, network_mode) for mapping in fields["portMappings"]]
    if "healthCheck" in fields:
        fields["healthCheck"] = without_defaults(fields["healthCheck"], HEALTH_CHECK_DEFAULTS)
    return fields


def comparable(definition: dict) -> dict:
    """What makes a task definition (RegisterTaskDefinition or DescribeTaskDefinition form) what it is.

    Two definitions that give the same result here run the same containers the same way; any field added,
    changed or removed on either side (other than a default ECS fills in) makes them differ.
    """
    task = {key: definition.get(key) for key in (*TASK_FIELDS.values(), *UNMANAGED_TASK_FIELDS)}
    task = without_defaults(pruned(task), TASK_DEFAULTS)
    for key in SIZE_UNITS:
        if key in task:
            task[key] = task_size(key, task[key])
    if "requiresCompatibilities" in task:
        task["requiresCompatibilities"] = sorted(task["requiresCompatibilities"])
    containers = sorted(definition.get("containerDefinitions") or [], key=lambda c: str(c.get("name")))
    task["containerDefinitions"] = [comparable_container(c, definition.get("networkMode")) for c in containers]
    return task


def wanted_definition(item: dict) -> dict:
    """The item as RegisterTaskDefinition parameters (family aside)."""
    wanted = {api: item[option] for option, api in TASK_FIELDS.items() if item.get(option) is not None}
    wanted["containerDefinitions"] = item["container_definitions"]
    return wanted


def matches(definition: dict | None, item: dict) -> bool:
    return definition is not None and comparable(definition) == comparable(wanted_definition(item))


def latest_revision(module: AnsibleAWSModule, client: Any, family: str) -> dict | None:
    """The family's latest ACTIVE revision, None when it has none."""
    try:
        return client.describe_task_definition(taskDefinition=family, aws_retry=True)["taskDefinition"]
    except is_boto3_error_code("ClientException"):
        return None  # "Unable to describe task definition": no active revision
    except (BotoCoreError, ClientError) as e:  # pylint: disable=duplicate-except
        module.fail_json_aws(e, msg=f"Failed to describe the task definition family '{family}'")


def view(definition: dict | None) -> dict:
    """What the diff shows of a definition: what is compared."""
    return comparable(definition) if definition else {}


def outcome(family: str, definition: dict | None, changed: bool, **extra: Any) -> dict:
    revision = definition.get("revision") if definition else None
    return {
        "family": family,
        "revision": revision,
        "task_definition": f"{family}:{revision}" if revision else None,
        "task_definition_arn": definition.get("taskDefinitionArn") if definition else None,
        "changed": changed,
        **extra,
    }


def register(module: AnsibleAWSModule, client: Any, item: dict) -> dict:
    params = {"family": item["family"], **wanted_definition(item)}
    try:
        return client.register_task_definition(aws_retry=True, **params)["taskDefinition"]
    except (BotoCoreError, ClientError) as e:
        module.fail_json_aws(e, msg=f"Failed to register a new revision of task definition family '{item['family']}'")


def ensure_present(module: AnsibleAWSModule, client: Any, item: dict) -> tuple[dict, dict | None]:
    current = latest_revision(module, client, item["family"])
    if matches(current, item):
        return outcome(item["family"], current, False), None
    wanted = wanted_definition(item)
    diff = {"before": {"family": item["family"], **view(current)}, "after": {"family": item["family"], **view(wanted)}}
    if module.check_mode:
        return outcome(item["family"], None, True), diff
    return outcome(item["family"], register(module, client, item), True), diff


def active_revisions(module: AnsibleAWSModule, client: Any, family: str) -> list[str]:
    """ARNs of the family's ACTIVE revisions (familyPrefix also matches longer names: keep exact ones)."""
    arns = []
    try:
        paginator = client.get_paginator("list_task_definitions")
        for page in paginator.paginate(familyPrefix=family, status="ACTIVE"):
            arns += [arn for arn in page["taskDefinitionArns"] if arn.rsplit("/", 1)[-1].rsplit(":", 1)[0] == family]
    except (BotoCoreError, ClientError) as e:
        module.fail_json_aws(e, msg=f"Failed to list the revisions of task definition family '{family}'")
    return arns


def ensure_absent(module: AnsibleAWSModule, client: Any, item: dict) -> tuple[dict, dict | None]:
    family = item["family"]
    arns = active_revisions(module, client, family)
    if not module.check_mode:
        for arn in arns:
            try:
                client.deregister_task_definition(taskDefinition=arn, aws_retry=True)
            except (BotoCoreError, ClientError) as e:
                module.fail_json_aws(e, msg=f"Failed to deregister task definition {arn}")
    diff = {"before": {"family": family, "active": arns}, "after": {"family": family, "active": []}} if arns else None
    return outcome(family, None, bool(arns), deregistered=arns), diff


def validate(module: AnsibleAWSModule) -> None:
    items = module.params["task_definitions"]
    fail_on_repeats(module, "task_definitions", "family", [item["family"] for item in items])
    if module.params["state"] != "present":
        return
    for item in items:
        containers = item["container_definitions"]
        if not containers:
            module.fail_json(msg=f"Task definition family '{item['family']}' needs container_definitions")
        unnamed = [c for c in containers if not c.get("name") or not c.get("image")]
        if unnamed:
            module.fail_json(
                msg=f"Every container of task definition family '{item['family']}' needs a name and an image"
            )
        names = [c["name"] for c in containers]
        fail_on_repeats(module, f"container_definitions of family '{item['family']}'", "container", names)


def main() -> None:
    argument_spec = dict(
        task_definitions=dict(
            type="list",
            elements="dict",
            required=True,
            options=dict(
                family=dict(type="str", required=True),
                container_definitions=dict(type="list", elements="dict"),
                cpu=dict(type="str"),
                memory=dict(type="str"),
                network_mode=dict(type="str", default="awsvpc", choices=["awsvpc", "bridge", "host", "none"]),
                requires_compatibilities=dict(type="list", elements="str", default=["FARGATE"]),
                execution_role_arn=dict(type="str"),
                task_role_arn=dict(type="str"),
                runtime_platform=dict(type="dict"),
                volumes=dict(type="list", elements="dict"),
            ),
        ),
        state=dict(type="str", default="present", choices=["present", "absent"]),
    )
    module = AnsibleAWSModule(argument_spec=argument_spec, supports_check_mode=True)
    validate(module)
    client = module.client("ecs", retry_decorator=jittered_backoff())
    ensure = ensure_present if module.params["state"] == "present" else ensure_absent
    results, diffs = [], []
    for item in module.params["task_definitions"]:
        result, diff = ensure(module, client, item)
        results.append(result)
        if diff:
            diffs.append(diff)
    output: dict[str, Any] = {"changed": any(r["changed"] for r in results), "task_definitions": results}
    if module._diff:
        output["diff"] = diffs
    module.exit_json(**output)


if __name__ == "__main__":
    main()
