"""The stack's Airflow cluster policy: a task on the AwsEcsExecutor runs with the task role of its DAG.

The deploy writes this file to $AIRFLOW_HOME/config/airflow_local_settings.py of the dag-processor before
it starts (airflow_outputs.dag_processor_command), and gives every Airflow container the DAG -> role
mapping of airflow_task_roles as JSON in AIRFLOW_ECS_TASK_ROLES:

    {"executor": ["AwsEcsExecutor", "airflow.providers...AwsEcsExecutor"],  # every name of the executor
     "task_definition": "<stack>-task", "container": "task",
     "pool": "fargate_tasks", "pool_slots": 4, "task_cpu": 512,
     "default_role": "<ARN of <stack>-task>",
     "roles": {"<dag_id>": "<ARN of <stack>-task-<name>>", ...}}

The DAG processor applies `task_policy` to every task it parses. For a task on the executor, it sets
executor_config["overrides"]["taskRoleArn"] to its DAG's role (the default role for a DAG not mapped):
the executor merges executor_config into its RunTask call, so the Fargate task runs with that role, and
nothing the DAG says can choose another. A DAG whose executor_config names another role, another task
definition or anything but the task's size and environment is refused (AirflowClusterPolicyViolation:
the DAG shows as an import error and does not run).

Every such task goes into the pool `pool` (airflow_ecs_executor_max_tasks slots, set by the migrate task), taking
one slot per task_cpu units it asks for: at most that many of the stack's Fargate tasks' vCPU run at once, which
is what the preflight's quota check counts. A task asking for more than the whole pool is refused.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Mapping
from typing import Any

from airflow.exceptions import AirflowClusterPolicyViolation

# Airflow copies every public name of airflow_local_settings into airflow.settings: only the hook.
__all__ = ["task_policy"]
MAPPING_VARIABLE = "AIRFLOW_ECS_TASK_ROLES"
# What a DAG may put into executor_config (RunTask's parameters): its task's size and environment. The
# cluster, network, launch type and roles are the stack's.
ALLOWED_KEYS = {"taskDefinition", "overrides"}
ALLOWED_OVERRIDES = {"taskRoleArn", "cpu", "memory", "ephemeralStorage", "containerOverrides"}
ALLOWED_CONTAINER_OVERRIDES = {"name", "cpu", "memory", "memoryReservation", "environment", "resourceRequirements"}


def load_mapping(environ: Mapping[str, str] = os.environ) -> dict[str, Any] | None:
    """The mapping the deploy set, or None where the executor is not configured."""
    raw = environ.get(MAPPING_VARIABLE)
    return json.loads(raw) if raw else None


def runs_on_the_executor(task: Any, mapping: dict[str, Any]) -> bool:
    """The task names the AwsEcsExecutor (by its alias, module path or class name, as Airflow accepts)."""
    return getattr(task, "executor", None) in set(mapping["executor"])


def role_of(dag_id: str, mapping: dict[str, Any]) -> str:
    return mapping["roles"].get(dag_id, mapping["default_role"])


def _refuse(task: Any, problem: str) -> None:
    raise AirflowClusterPolicyViolation(
        f"DAG {task.dag_id!r}, task {task.task_id!r}: {problem} (the stack maps DAGs to task roles: airflow_task_roles)"
    )


def checked_config(task: Any, mapping: dict[str, Any]) -> dict[str, Any]:
    """The task's executor_config with the role of its DAG set; AirflowClusterPolicyViolation when it asks for
    anything else."""
    config = copy.deepcopy(getattr(task, "executor_config", None) or {})
    if not isinstance(config, dict):
        _refuse(task, "executor_config must be a mapping of RunTask parameters")
    role = role_of(task.dag_id, mapping)
    unknown = sorted(set(config) - ALLOWED_KEYS)
    if unknown:
        _refuse(task, f"executor_config may set only {sorted(ALLOWED_KEYS)} for the AwsEcsExecutor, not {unknown}")
    if config.get("taskDefinition", mapping["task_definition"]) != mapping["task_definition"]:
        _refuse(
            task,
            f"executor_config names the task definition {config['taskDefinition']!r}; tasks on the AwsEcsExecutor run "
            f"{mapping['task_definition']!r} with the task role of their DAG",
        )
    overrides = config.get("overrides", {})
    if not isinstance(overrides, dict):
        _refuse(task, "executor_config['overrides'] must be a mapping")
    unknown = sorted(set(overrides) - ALLOWED_OVERRIDES)
    if unknown:
        _refuse(task, f"executor_config['overrides'] may set only {sorted(ALLOWED_OVERRIDES)}, not {unknown}")
    asked = overrides.get("taskRoleArn", role)
    if asked != role:
        known = {mapping["default_role"], *mapping["roles"].values()}
        whose = "the task role of other DAGs" if asked in known else "a task role"
        _refuse(task, f"executor_config names {whose} ({asked}); DAG {task.dag_id!r} runs with {role}")
    containers = overrides.get("containerOverrides", [])
    if (
        not isinstance(containers, list)
        or not all(isinstance(c, dict) for c in containers)
        or ("containerOverrides" in overrides and not containers)
    ):
        _refuse(task, "executor_config['overrides']['containerOverrides'] must be a non-empty list of mappings")
    for container in containers:
        unknown = sorted(set(container) - ALLOWED_CONTAINER_OVERRIDES)
        if unknown or container.get("name") != mapping["container"]:
            _refuse(
                task,
                f"a containerOverrides entry must name the container {mapping['container']!r} and may set only "
                f"{sorted(ALLOWED_CONTAINER_OVERRIDES)}",
            )
    config["overrides"] = {**overrides, "taskRoleArn": role}
    return config


def pool_slots(task: Any, config: dict[str, Any], mapping: dict[str, Any]) -> int:
    """Slots of the executor's pool the task takes: one per task_cpu units of the CPU it asks for."""
    asked = config["overrides"].get("cpu", mapping["task_cpu"])
    try:
        cpu = int(asked)
    except (TypeError, ValueError):
        _refuse(task, f"executor_config['overrides']['cpu'] must be Fargate CPU units, not {asked!r}")
    slots = max(1, -(-cpu // int(mapping["task_cpu"])))
    if slots > int(mapping["pool_slots"]):
        _refuse(
            task,
            f"it asks for {cpu} CPU units, {slots} slots of the pool {mapping['pool']!r}, which has "
            f"{mapping['pool_slots']} (airflow_ecs_executor_max_tasks): it could never run",
        )
    return slots


def task_policy(task: Any) -> None:
    """Airflow's task cluster policy (run by the DAG processor for every task it parses)."""
    mapping = load_mapping()
    if mapping is None or not runs_on_the_executor(task, mapping):
        return
    config = checked_config(task, mapping)
    placement = {"executor_config": config, "pool": mapping["pool"], "pool_slots": pool_slots(task, config, mapping)}
    for name, value in placement.items():
        if hasattr(task, "partial_kwargs"):  # a mapped task (.expand()): these are partial arguments
            task.partial_kwargs[name] = value
        else:
            setattr(task, name, value)
