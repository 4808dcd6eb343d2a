#!/usr/bin/python
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: ecs_run_task
short_description: Run a one-off ECS task and wait until it exits successfully
description:
  - Runs one or more copies of an ECS task definition with C(RunTask), waits until every task has
    stopped and fails unless the checked containers exited with code C(0).
  - Meant for one-off jobs such as C(airflow db migrate). M(community.aws.ecs_task) with
    I(operation=run) only waits for C(RUNNING) and does not fail on a non-zero exit code.
  - This is an action, not a desired state. Every run outside check mode starts new tasks and reports
    C(changed=true).
  - The task fails when C(RunTask) returns C(failures), when its stop code is C(TaskFailedToStart), or
    when a checked container has no exit code or an exit code other than C(0).
  - In check mode no AWS API is called; the module reports what it would run.
  - C(RunTask) carries a client token, so a call the module retries (throttling, a dropped connection) starts
    the tasks once.
  - A failed task's message carries the last lines of each checked container's awslogs stream.
  - When I(wait_timeout) expires the tasks are left running; the failure names each task and its last status.
author:
  - airflow-ecs project
options:
  cluster:
    description:
      - Name or ARN of the ECS cluster to run the task in.
    type: str
    required: true
  task_definition:
    description:
      - The task definition to run, as C(family), C(family:revision) or a full ARN.
      - A bare C(family) resolves to its latest C(ACTIVE) revision; that revision is the one that runs.
    type: str
    required: true
  launch_type:
    description:
      - Launch type of the task.
      - Ignored when I(capacity_provider_strategy) is set; setting both explicitly is an error.
    type: str
    choices: ['FARGATE', 'EC2', 'EXTERNAL']
    default: FARGATE
  capacity_provider_strategy:
    description:
      - Capacity provider strategy to run the task with, instead of I(launch_type).
    type: list
    elements: dict
    suboptions:
      capacity_provider:
        description: Name of the capacity provider, for example C(FARGATE_SPOT).
        type: str
        required: true
      weight:
        description: Relative share of tasks for this capacity provider.
        type: int
      base:
        description: Minimum number of tasks on this capacity provider.
        type: int
  network_configuration:
    description:
      - Network settings for task definitions with network mode C(awsvpc), sent as C(awsvpcConfiguration).
    type: dict
    suboptions:
      subnets:
        description: IDs of the subnets to place the task in.
        type: list
        elements: str
        required: true
      security_groups:
        description: IDs of the security groups to attach to the task.
        type: list
        elements: str
      assign_public_ip:
        description: Whether the task's network interface gets a public IP address.
        type: bool
        default: false
  overrides:
    description:
      - Task overrides, passed to C(RunTask) unchanged. Keys use the AWS API spelling (camelCase), for
        example C(containerOverrides) with C(name) and C(command) or C(environment).
    type: dict
  started_by:
    description:
      - Value of C(startedBy) on the task, to find the tasks started by this module later.
    type: str
    default: ansible
  count:
    description:
      - How many copies of the task to run (1 to 10). Each must succeed.
    type: int
    default: 1
  wait:
    description:
      - Wait until all tasks have stopped and check their exit codes.
      - With I(wait=false) the module returns as soon as C(RunTask) has answered and checks no exit code.
    type: bool
    default: true
  wait_timeout:
    description:
      - How many seconds to wait for all tasks to stop before failing.
    type: int
    default: 1800
  poll_interval:
    description:
      - Seconds between two C(DescribeTasks) calls while waiting.
    type: int
    default: 5
  reuse_running:
    description:
      - When a task of the same task definition revision, started with the same I(started_by), is still running
        (a run that was interrupted while it waited), wait for it instead of starting another copy.
    type: bool
    default: true
  role_propagation_timeout:
    description:
      - Seconds to keep retrying C(RunTask) while ECS cannot assume a role of the task definition yet (a role
        created moments ago is not assumable until IAM has propagated it).
    type: int
    default: 90
  container_name:
    description:
      - Name of the container whose exit code decides success.
      - By default every container marked C(essential) in the task definition must exit with code C(0);
        the exit codes of non-essential containers (sidecars) are ignored.
      - Must be a container of the task definition; this is checked before the task is run.
    type: str
    aliases: ['essential_container']
  tags:
    description:
      - Tags to put on the tasks.
    type: dict
    aliases: ['resource_tags']
  propagate_tags:
    description:
      - Copy the task definition's tags to the tasks (C(TASK_DEFINITION)) or not (C(NONE)).
    type: str
    choices: ['TASK_DEFINITION', 'NONE']
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
notes:
  - Stopped tasks stay visible to C(DescribeTasks) for about an hour, so a very long I(wait_timeout)
    on a busy cluster is not a problem; a task that disappears is reported with status C(MISSING).
seealso:
  - module: community.aws.ecs_task
  - module: community.aws.ecs_taskdefinition
"""

EXAMPLES = r"""
- name: Migrate the Airflow metadata database
  ecs_run_task:
    cluster: airflow
    task_definition: airflow-migrate:3
    network_configuration:
      subnets: "{{ private_subnet_ids }}"
      security_groups: ["{{ airflow_sg_id }}"]
    overrides:
      containerOverrides:
        - name: airflow
          command: ["db", "migrate"]
    container_name: airflow
    wait_timeout: 900
    tags:
      airflow-ecs:stack: airflow
  register: migrate

- name: Show how the migrate task ended
  ansible.builtin.debug:
    msg: "{{ migrate.tasks[0].task_arn }} stopped: {{ migrate.tasks[0].stopped_reason }}"

- name: Run a job on Fargate Spot and do not wait for it
  ecs_run_task:
    cluster: airflow
    task_definition: airflow-reindex
    capacity_provider_strategy:
      - capacity_provider: FARGATE_SPOT
        weight: 1
    network_configuration:
      subnets: "{{ private_subnet_ids }}"
      security_groups: ["{{ airflow_sg_id }}"]
    wait: false
"""

RETURN = r"""
msg:
  description: What happened, in one sentence.
  returned: always
  type: str
  sample: >-
    1 task(s) of arn:aws:ecs:us-east-1:123456789012:task-definition/airflow-migrate:3 in cluster airflow
    exited 0 (checked containers: airflow)
cluster:
  description: The cluster the task ran in, as given.
  returned: always
  type: str
  sample: airflow
task_definition_arn:
  description: ARN of the task definition revision that ran.
  returned: when the task definition was found (not in check mode)
  type: str
  sample: arn:aws:ecs:us-east-1:123456789012:task-definition/airflow-migrate:3
tasks:
  description:
    - The tasks as last described by ECS, in snake_case; empty in check mode.
    - Also returned when the module fails on a non-zero exit code or a timeout.
  returned: always
  type: list
  elements: dict
  contains:
    task_arn:
      description: ARN of the task.
      type: str
      sample: arn:aws:ecs:us-east-1:123456789012:task/airflow/0123456789abcdef0123456789abcdef
    task_definition_arn:
      description: ARN of the task definition revision.
      type: str
    last_status:
      description: Last known status, C(STOPPED) once the wait has finished.
      type: str
      sample: STOPPED
    desired_status:
      description: Desired status of the task.
      type: str
      sample: STOPPED
    stop_code:
      description:
        - Why the task stopped, for example C(EssentialContainerExited) or C(TaskFailedToStart).
        - Null while the task runs.
      type: str
      sample: EssentialContainerExited
    stopped_reason:
      description: Free-text reason the task stopped; null while running.
      type: str
      sample: Essential container in task exited
    started_by:
      description: The I(started_by) value.
      type: str
      sample: ansible
    tags:
      description: Tags of the task, as a dict.
      type: dict
      sample: {"airflow-ecs:stack": "airflow"}
    overrides:
      description: The overrides the task ran with, in the AWS API spelling (not converted to snake_case).
      type: dict
    containers:
      description: The task's containers.
      type: list
      elements: dict
      contains:
        name:
          description: Container name from the task definition.
          type: str
          sample: airflow
        exit_code:
          description: Exit code of the container; null if it never ran or has not exited.
          type: int
          sample: 0
        reason:
          description: Why the container stopped or failed to start, if ECS says; otherwise null.
          type: str
          sample: "CannotPullContainerError: pull image manifest has been retried 5 time(s)"
        last_status:
          description: Last known status of the container.
          type: str
          sample: STOPPED
failures:
  description: The C(failures) list of the C(RunTask) answer, in snake_case.
  returned: when C(RunTask) reported failures (the module then fails)
  type: list
  elements: dict
  sample: [{"arn": "arn:aws:ecs:us-east-1:123456789012:cluster/airflow", "reason": "RESOURCE:ENI"}]
"""

import contextlib
import time
import uuid
from typing import Any

with contextlib.suppress(ImportError):  # AnsibleAWSModule reports a missing botocore
    from botocore.exceptions import BotoCoreError, ClientError

from ansible.module_utils.aws_retry import jittered_backoff
from ansible.module_utils.common.dict_transformations import camel_dict_to_snake_dict
from ansible.module_utils.ecs_logs import log_tail
from ansible_collections.amazon.aws.plugins.module_utils.botocore import normalize_boto3_result
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.tagging import (
    ansible_dict_to_boto3_tag_list,
    boto3_tag_list_to_ansible_dict,
)

MAX_COUNT = 10  # RunTask accepts at most 10 tasks per call


def argument_spec() -> dict[str, Any]:
    return dict(
        cluster=dict(type="str", required=True),
        task_definition=dict(type="str", required=True),
        launch_type=dict(type="str", choices=["FARGATE", "EC2", "EXTERNAL"], default="FARGATE"),
        capacity_provider_strategy=dict(
            type="list",
            elements="dict",
            options=dict(
                capacity_provider=dict(type="str", required=True),
                weight=dict(type="int"),
                base=dict(type="int"),
            ),
        ),
        network_configuration=dict(
            type="dict",
            options=dict(
                subnets=dict(type="list", elements="str", required=True),
                security_groups=dict(type="list", elements="str"),
                assign_public_ip=dict(type="bool", default=False),
            ),
        ),
        overrides=dict(type="dict"),
        started_by=dict(type="str", default="ansible"),
        count=dict(type="int", default=1),
        wait=dict(type="bool", default=True),
        wait_timeout=dict(type="int", default=1800),
        poll_interval=dict(type="int", default=5),
        container_name=dict(type="str", aliases=["essential_container"]),
        tags=dict(type="dict", aliases=["resource_tags"]),
        propagate_tags=dict(type="str", choices=["TASK_DEFINITION", "NONE"]),
        reuse_running=dict(type="bool", default=True),
        role_propagation_timeout=dict(type="int", default=90),
    )


def validate_params(module: AnsibleAWSModule) -> None:
    params = module.params
    if not 1 <= params["count"] <= MAX_COUNT:
        module.fail_json(msg=f"count must be between 1 and {MAX_COUNT}, got {params['count']}")
    if params["wait_timeout"] < 1:
        module.fail_json(msg=f"wait_timeout must be at least 1 second, got {params['wait_timeout']}")
    if params["poll_interval"] < 1:
        module.fail_json(msg=f"poll_interval must be at least 1 second, got {params['poll_interval']}")


def network_configuration_request(network: dict[str, Any]) -> dict[str, Any]:
    """Translate the snake_case option into RunTask's awsvpcConfiguration."""
    vpc_config: dict[str, Any] = {
        "subnets": network["subnets"],
        "assignPublicIp": "ENABLED" if network["assign_public_ip"] else "DISABLED",
    }
    if network.get("security_groups"):
        vpc_config["securityGroups"] = network["security_groups"]
    return {"awsvpcConfiguration": vpc_config}


def capacity_provider_strategy_request(strategy: list[dict[str, Any]]) -> list[dict[str, Any]]:
    items = []
    for entry in strategy:
        item: dict[str, Any] = {"capacityProvider": entry["capacity_provider"]}
        if entry.get("weight") is not None:
            item["weight"] = entry["weight"]
        if entry.get("base") is not None:
            item["base"] = entry["base"]
        items.append(item)
    return items


def run_task_request(params: dict[str, Any], task_definition_arn: str) -> dict[str, Any]:
    """Build the RunTask keyword arguments from the module parameters."""
    request: dict[str, Any] = {
        "cluster": params["cluster"],
        "taskDefinition": task_definition_arn,
        "count": params["count"],
        "startedBy": params["started_by"],
    }
    if params["capacity_provider_strategy"]:
        request["capacityProviderStrategy"] = capacity_provider_strategy_request(params["capacity_provider_strategy"])
    else:
        request["launchType"] = params["launch_type"]
    if params["network_configuration"]:
        request["networkConfiguration"] = network_configuration_request(params["network_configuration"])
    if params["overrides"]:
        request["overrides"] = params["overrides"]
    if params["tags"]:
        request["tags"] = ansible_dict_to_boto3_tag_list(params["tags"], "key", "value")
    if params["propagate_tags"]:
        request["propagateTags"] = params["propagate_tags"]
    request["clientToken"] = str(uuid.uuid4())  # one start, however often the call is retried
    return request


def describe_task_definition(module: AnsibleAWSModule, client: Any) -> dict[str, Any]:
    name, cluster = module.params["task_definition"], module.params["cluster"]
    try:
        return client.describe_task_definition(taskDefinition=name, aws_retry=True)["taskDefinition"]
    except (BotoCoreError, ClientError) as e:
        module.fail_json_aws(
            e,
            msg=f"Could not describe task definition {name} (does it exist?) to run in cluster {cluster}",
            cluster=cluster,
            tasks=[],
        )


def checked_container_names(module: AnsibleAWSModule, task_definition: dict[str, Any]) -> list[str]:
    """Names of the containers whose exit code must be 0: the chosen one, or every essential one."""
    definitions = task_definition.get("containerDefinitions", [])
    names = [container["name"] for container in definitions]
    wanted = module.params["container_name"]
    if wanted:
        if wanted not in names:
            module.fail_json(
                msg=f"container_name {wanted} is not a container of task definition "
                f"{task_definition['taskDefinitionArn']} (containers: {', '.join(names)})",
                cluster=module.params["cluster"],
                tasks=[],
            )
        return [wanted]
    return [container["name"] for container in definitions if container.get("essential", True)]


ROLE_NOT_ASSUMABLE = "unable to assume"  # ECS: "ECS was unable to assume the role '...' that was provided"


def start(module: AnsibleAWSModule, client: Any, request: dict[str, Any]) -> dict[str, Any]:
    """RunTask, retried while ECS cannot assume a just-created role yet (IAM propagation)."""
    deadline = time.monotonic() + module.params["role_propagation_timeout"]
    while True:
        try:
            return client.run_task(aws_retry=True, **request)
        except ClientError as e:
            message = e.response.get("Error", {}).get("Message", "")
            if ROLE_NOT_ASSUMABLE not in message.lower() or time.monotonic() > deadline:
                raise
        time.sleep(min(5, module.params["poll_interval"]))
        request = {**request, "clientToken": str(uuid.uuid4())}  # the failed call started nothing


def already_running(module: AnsibleAWSModule, client: Any, task_definition_arn: str) -> list[dict[str, Any]]:
    """Tasks of this revision, started by this caller, that have not stopped (an interrupted earlier run)."""
    cluster = module.params["cluster"]
    try:
        arns = client.list_tasks(
            cluster=cluster, startedBy=module.params["started_by"], desiredStatus="RUNNING", aws_retry=True
        )["taskArns"]
    except (BotoCoreError, ClientError) as e:
        module.fail_json_aws(
            e,
            msg=f"Failed to look for running copies of {task_definition_arn} in cluster {cluster}",
            cluster=cluster,
            tasks=[],
        )
    tasks = describe_tasks(module, client, cluster, arns) if arns else []
    return [t for t in tasks if t.get("taskDefinitionArn") == task_definition_arn and t.get("lastStatus") != "STOPPED"]


def run_tasks(module: AnsibleAWSModule, client: Any, request: dict[str, Any]) -> list[dict[str, Any]]:
    """Call RunTask; fail with the answer's failures if it has any."""
    where = f"task definition {request['taskDefinition']} in cluster {request['cluster']}"
    try:
        response = start(module, client, request)
    except (BotoCoreError, ClientError) as e:
        module.fail_json_aws(e, msg=f"Failed to run {where}", cluster=request["cluster"], tasks=[])
    tasks = response.get("tasks", [])
    failures = response.get("failures", [])
    if failures:
        reasons = "; ".join(
            f"{f.get('arn', '?')}: {f.get('reason', '?')} {f.get('detail', '')}".strip() for f in failures
        )
        module.fail_json(
            msg=f"RunTask reported failures for {where}: {reasons}",
            failures=[camel_dict_to_snake_dict(f) for f in failures],
            changed=bool(tasks),
            cluster=request["cluster"],
            task_definition_arn=request["taskDefinition"],
            tasks=[task_summary(task) for task in tasks],
        )
    if not tasks:
        module.fail_json(msg=f"RunTask started no task for {where}", cluster=request["cluster"], tasks=[])
    return tasks


def describe_tasks(module: AnsibleAWSModule, client: Any, cluster: str, arns: list[str]) -> list[dict[str, Any]]:
    """Describe the tasks in the order of `arns`; a task ECS no longer knows gets lastStatus MISSING."""
    try:
        response = client.describe_tasks(cluster=cluster, tasks=arns, include=["TAGS"], aws_retry=True)
    except (BotoCoreError, ClientError) as e:
        module.fail_json_aws(e, msg=f"Failed to describe tasks {', '.join(arns)} in cluster {cluster}", changed=True)
    by_arn = {task["taskArn"]: task for task in response.get("tasks", [])}
    return [by_arn.get(arn, {"taskArn": arn, "lastStatus": "MISSING"}) for arn in arns]


def wait_until_stopped(
    module: AnsibleAWSModule, client: Any, cluster: str, arns: list[str], task_definition_arn: str
) -> list[dict[str, Any]]:
    """Poll DescribeTasks until every task is STOPPED; fail naming the tasks on timeout."""
    timeout = module.params["wait_timeout"]
    deadline = time.monotonic() + timeout
    while True:
        tasks = describe_tasks(module, client, cluster, arns)
        if all(task.get("lastStatus") == "STOPPED" for task in tasks):
            return tasks
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            running = [task for task in tasks if task.get("lastStatus") != "STOPPED"]
            statuses = ", ".join(f"{task['taskArn']} ({task.get('lastStatus', 'UNKNOWN')})" for task in running)
            module.fail_json(
                msg=f"Timed out after {timeout} s waiting for tasks of {task_definition_arn} in cluster {cluster} "
                f"to stop; still not stopped: {statuses}. The tasks were left running.",
                changed=True,
                cluster=cluster,
                task_definition_arn=task_definition_arn,
                tasks=[task_summary(task) for task in tasks],
            )
        time.sleep(min(module.params["poll_interval"], remaining))


def task_problems(task: dict[str, Any], checked_names: list[str]) -> list[str]:
    """Why a stopped task counts as failed; an empty list means it succeeded."""
    arn = task["taskArn"]
    stopped_reason = task.get("stoppedReason") or "none given"
    problems = []
    if task.get("stopCode") == "TaskFailedToStart":
        problems.append(f"task {arn} failed to start (stop code TaskFailedToStart, stopped reason: {stopped_reason})")
    containers = {container.get("name"): container for container in task.get("containers", [])}
    for name in checked_names:
        container = containers.get(name, {})
        exit_code = container.get("exitCode")
        if exit_code == 0:
            continue
        what = "has no exit code" if exit_code is None else f"exited with code {exit_code}"
        reason = f" (reason: {container['reason']})" if container.get("reason") else ""
        problems.append(f"task {arn}: container {name} {what}{reason}; stopped reason: {stopped_reason}")
    return problems


def container_summary(container: dict[str, Any]) -> dict[str, Any]:
    summary = camel_dict_to_snake_dict(container)
    for key in ("name", "exit_code", "reason", "last_status"):
        summary.setdefault(key, None)
    return summary


def task_summary(task: dict[str, Any]) -> dict[str, Any]:
    """snake_case task with the keys callers rely on always present (None when ECS omits them)."""
    task = normalize_boto3_result(task)
    summary = camel_dict_to_snake_dict(task, ignore_list=["overrides", "tags"])
    summary["tags"] = boto3_tag_list_to_ansible_dict(task.get("tags", []), "key", "value")
    summary["containers"] = [container_summary(container) for container in task.get("containers", [])]
    for key in ("task_arn", "task_definition_arn", "last_status", "desired_status", "stop_code", "stopped_reason"):
        summary.setdefault(key, None)
    if summary["stopped_reason"] == "":
        summary["stopped_reason"] = None
    return summary


def main() -> None:
    module = AnsibleAWSModule(
        argument_spec=argument_spec(),
        mutually_exclusive=[["launch_type", "capacity_provider_strategy"]],
        supports_check_mode=True,
    )
    validate_params(module)
    params = module.params
    cluster = params["cluster"]

    if module.check_mode:
        module.exit_json(
            changed=True,
            msg=f"would run task {params['task_definition']} in cluster {cluster} (count {params['count']})",
            cluster=cluster,
            tasks=[],
        )

    client = module.client("ecs", retry_decorator=jittered_backoff())
    task_definition = describe_task_definition(module, client)
    task_definition_arn = task_definition["taskDefinitionArn"]
    checked_names = checked_container_names(module, task_definition)
    started = already_running(module, client, task_definition_arn) if params["reuse_running"] else []
    if not started:
        started = run_tasks(module, client, run_task_request(params, task_definition_arn))
    arns = [task["taskArn"] for task in started]
    result = dict(changed=True, cluster=cluster, task_definition_arn=task_definition_arn)

    if not params["wait"]:
        module.exit_json(
            msg=f"Started {len(arns)} task(s) of {task_definition_arn} in cluster {cluster}: {', '.join(arns)}",
            tasks=[task_summary(task) for task in started],
            **result,
        )

    stopped = wait_until_stopped(module, client, cluster, arns, task_definition_arn)
    summaries = [task_summary(task) for task in stopped]
    failed = {task["taskArn"]: task_problems(task, checked_names) for task in stopped}
    problems = [problem for reasons in failed.values() for problem in reasons]
    if problems:
        logs = module.client("logs", retry_decorator=jittered_backoff())
        tails = [
            f"last log lines of {name} in task {arn.rsplit('/', 1)[-1]}:\n"
            + log_tail(logs, task_definition, name, arn.rsplit("/", 1)[-1])
            for arn, reasons in failed.items()
            if reasons
            for name in checked_names
        ]
        module.fail_json(
            msg=f"Task of {task_definition_arn} in cluster {cluster} failed: {'; '.join(problems)}\n"
            + "\n".join(tails),
            tasks=summaries,
            **result,
        )
    module.exit_json(
        msg=f"{len(arns)} task(s) of {task_definition_arn} in cluster {cluster} exited 0 "
        f"(checked containers: {', '.join(checked_names)})",
        tasks=summaries,
        **result,
    )


if __name__ == "__main__":
    main()
