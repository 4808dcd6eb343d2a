"""library/ecs_task_definitions.py against a moto server, through the real `ansible` CLI."""

from __future__ import annotations

import copy
import datetime
import importlib.util
from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest
from ansible_runner import ROOT, run_module
from emulator import Emulator

MODULE = "ecs_task_definitions"
ROLE = "arn:aws:iam::123456789012:role/execution"
SECRET = "arn:aws:secretsmanager:us-east-1:123456789012:secret:airflow/db-AbCdEf"
HEALTH_CHECK = {
    "command": ["CMD-SHELL", "curl --fail http://localhost:8080/health"],
    "interval": 30,
    "timeout": 10,
    "retries": 3,
    "startPeriod": 60,
}

_filters = importlib.util.spec_from_file_location("ecs_filters", ROOT / "plugins" / "filter" / "ecs.py")
ecs_filters = importlib.util.module_from_spec(_filters)
_filters.loader.exec_module(ecs_filters)


def container(name: str, **extra: Any) -> dict:
    return {
        "name": name,
        "image": "apache/airflow:3.3.2",
        "essential": True,
        "cpu": 512,
        "environment": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
        "portMappings": [{"containerPort": 8080, "hostPort": 8080, "protocol": "tcp"}],
        **extra,
    }


def definition(family: str, **extra: Any) -> dict:
    return {
        "family": family,
        "cpu": "512",
        "memory": "1024",
        "execution_role_arn": ROLE,
        "runtime_platform": {"cpuArchitecture": "X86_64", "operatingSystemFamily": "LINUX"},
        "container_definitions": [container(family.rsplit("-", maxsplit=1)[-1])],
        **extra,
    }


def registered(emulator: Emulator, task_definition: str) -> dict:
    return emulator.client("ecs").describe_task_definition(taskDefinition=task_definition)["taskDefinition"]


def active(emulator: Emulator, family: str) -> list[str]:
    ecs = emulator.client("ecs")
    arns = ecs.list_task_definitions(familyPrefix=family, status="ACTIVE")["taskDefinitionArns"]
    return [arn.rsplit("/", 1)[-1] for arn in arns if arn.rsplit("/", 1)[-1].rsplit(":", 1)[0] == family]


def test_register_only_on_change_story(clean_emulator: Emulator) -> None:
    env = clean_emulator.env()
    items = [definition("airflow-scheduler"), definition("airflow-worker", task_role_arn=ROLE + "-task")]

    planned = run_module(MODULE, {"task_definitions": items}, env=env, check=True, diff=True)
    assert planned["changed"] is True, planned
    assert [(d["family"], d["revision"], d["changed"]) for d in planned["task_definitions"]] == [
        ("airflow-scheduler", None, True),
        ("airflow-worker", None, True),
    ]
    assert planned["diff"][0]["before"] == {"family": "airflow-scheduler"}
    assert active(clean_emulator, "airflow-scheduler") == []

    created = run_module(MODULE, {"task_definitions": items}, env=env)
    assert created["changed"] is True, created
    assert [d["task_definition"] for d in created["task_definitions"]] == ["airflow-scheduler:1", "airflow-worker:1"]
    registered = clean_emulator.client("ecs").describe_task_definition(taskDefinition="airflow-worker:1")
    assert registered["taskDefinition"]["taskRoleArn"] == ROLE + "-task"
    assert registered["taskDefinition"]["containerDefinitions"][0]["environment"][1] == {"name": "B", "value": "2"}

    again = run_module(MODULE, {"task_definitions": items}, env=env)
    assert again["changed"] is False, again
    assert [d["revision"] for d in again["task_definitions"]] == [1, 1]
    assert run_module(MODULE, {"task_definitions": items}, env=env, check=True)["changed"] is False

    new_env = [{"name": "A", "value": "1"}, {"name": "B", "value": "3"}]
    changed_items = [items[0], {**items[1], "container_definitions": [container("worker", environment=new_env)]}]
    predicted = run_module(MODULE, {"task_definitions": changed_items}, env=env, check=True, diff=True)
    assert [d["changed"] for d in predicted["task_definitions"]] == [False, True], predicted
    assert len(predicted["diff"]) == 1
    assert active(clean_emulator, "airflow-worker") == ["airflow-worker:1"]

    updated = run_module(MODULE, {"task_definitions": changed_items}, env=env)
    assert [d["task_definition"] for d in updated["task_definitions"]] == ["airflow-scheduler:1", "airflow-worker:2"]
    assert run_module(MODULE, {"task_definitions": changed_items}, env=env)["changed"] is False

    resized = run_module(MODULE, {"task_definitions": [{**items[0], "memory": "2048"}]}, env=env)
    assert resized["task_definitions"][0]["task_definition"] == "airflow-scheduler:2", resized
    without_role = run_module(MODULE, {"task_definitions": [{**changed_items[1], "task_role_arn": None}]}, env=env)
    assert without_role["task_definitions"][0]["task_definition"] == "airflow-worker:3", without_role

    families = [{"family": "airflow-scheduler"}, {"family": "airflow-worker"}]
    plan_delete = run_module(MODULE, {"task_definitions": families, "state": "absent"}, env=env, check=True)
    assert [len(d["deregistered"]) for d in plan_delete["task_definitions"]] == [2, 3], plan_delete
    assert len(active(clean_emulator, "airflow-worker")) == 3

    deleted = run_module(MODULE, {"task_definitions": families, "state": "absent"}, env=env)
    assert deleted["changed"] is True, deleted
    assert active(clean_emulator, "airflow-scheduler") == active(clean_emulator, "airflow-worker") == []
    assert run_module(MODULE, {"task_definitions": families, "state": "absent"}, env=env)["changed"] is False


def test_a_family_prefix_is_not_the_family(clean_emulator: Emulator) -> None:
    env = clean_emulator.env()
    run_module(MODULE, {"task_definitions": [definition("airflow-worker"), definition("airflow-worker-2")]}, env=env)
    deleted = run_module(MODULE, {"task_definitions": [{"family": "airflow-worker"}], "state": "absent"}, env=env)
    assert deleted["task_definitions"][0]["deregistered"][0].endswith("task-definition/airflow-worker:1"), deleted
    assert active(clean_emulator, "airflow-worker-2") == ["airflow-worker-2:1"]


def test_bad_input_is_refused_before_any_call(clean_emulator: Emulator) -> None:
    env = clean_emulator.env()
    twice = run_module(MODULE, {"task_definitions": [definition("a-x"), definition("a-x")]}, env=env)
    assert twice["msg"] == "task_definitions names the same family twice: a-x", twice
    empty = run_module(MODULE, {"task_definitions": [{"family": "a-x"}]}, env=env)
    assert empty["msg"] == "Task definition family 'a-x' needs container_definitions", empty
    nameless = run_module(
        MODULE, {"task_definitions": [{"family": "a-x", "container_definitions": [{"image": "i"}]}]}, env=env
    )
    assert "needs a name and an image" in nameless["msg"], nameless
    assert active(clean_emulator, "a-x") == []


def test_a_removed_field_registers_a_new_revision(clean_emulator: Emulator) -> None:
    """The issue: removing secrets, a health check or a task-level field from the wanted one registered nothing."""
    env = clean_emulator.env()
    full = definition(
        "t-api",
        task_role_arn=ROLE + "-task",
        container_definitions=[
            container("api", secrets=[{"name": "DB", "valueFrom": SECRET}], healthCheck=HEALTH_CHECK)
        ],
    )

    created = run_module(MODULE, {"task_definitions": [full]}, env=env)
    assert created["task_definitions"][0]["task_definition"] == "t-api:1", created
    assert run_module(MODULE, {"task_definitions": [full]}, env=env)["changed"] is False

    without_secrets = copy.deepcopy(full)
    del without_secrets["container_definitions"][0]["secrets"]
    predicted = run_module(MODULE, {"task_definitions": [without_secrets]}, env=env, check=True, diff=True)
    assert predicted["changed"] is True, predicted
    assert predicted["diff"][0]["before"]["containerDefinitions"][0]["secrets"] == [{"name": "DB", "valueFrom": SECRET}]
    assert "secrets" not in predicted["diff"][0]["after"]["containerDefinitions"][0]
    assert active(clean_emulator, "t-api") == ["t-api:1"]
    updated = run_module(MODULE, {"task_definitions": [without_secrets]}, env=env)
    assert updated["task_definitions"][0]["task_definition"] == "t-api:2", updated
    assert not registered(clean_emulator, "t-api:2")["containerDefinitions"][0].get("secrets")
    assert run_module(MODULE, {"task_definitions": [without_secrets]}, env=env)["changed"] is False

    without_check = copy.deepcopy(without_secrets)
    del without_check["container_definitions"][0]["healthCheck"]
    updated = run_module(MODULE, {"task_definitions": [without_check]}, env=env)
    assert updated["task_definitions"][0]["task_definition"] == "t-api:3", updated
    assert "healthCheck" not in registered(clean_emulator, "t-api:3")["containerDefinitions"][0]
    assert run_module(MODULE, {"task_definitions": [without_check]}, env=env)["changed"] is False

    without_platform = {**without_check, "runtime_platform": None}
    updated = run_module(MODULE, {"task_definitions": [without_platform]}, env=env)
    assert updated["task_definitions"][0]["task_definition"] == "t-api:4", updated
    assert not registered(clean_emulator, "t-api:4").get("runtimePlatform")
    assert run_module(MODULE, {"task_definitions": [without_platform]}, env=env)["changed"] is False


def test_the_stack_containers_with_a_sidecar_register_once(clean_emulator: Emulator) -> None:
    env = clean_emulator.env()
    spec = {
        "name": "scheduler",
        "image": "apache/airflow:3.3.2",
        "cpu": 1024,
        "memory": 2048,
        "command": ["scheduler"],
        "environment": {"AIRFLOW__CORE__EXECUTOR": "CeleryExecutor", "AIRFLOW__METRICS__STATSD_ON": "True"},
        "secrets": {"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": SECRET},
        "health_check": {"command": "curl --fail http://localhost:8974/health", "interval": 60, "start_period": 120},
        "sidecars": [
            {
                "name": "metrics",
                "memory": 128,
                "command": ["python", "-c", "relay"],
                "environment": {"METRICS_NAMESPACE": "t/Airflow"},
                "secrets": {"AIRFLOW__CELERY__BROKER_URL": SECRET},
            }
        ],
    }
    containers = ecs_filters.ecs_task_containers(spec, "t", "us-east-1")
    assert [c["essential"] for c in containers] == [True, False]
    item = {
        **definition("t-scheduler", cpu="1024", memory="2048", task_role_arn=ROLE + "-task"),
        "container_definitions": containers,
    }

    created = run_module(MODULE, {"task_definitions": [item]}, env=env)
    assert created["task_definitions"][0]["task_definition"] == "t-scheduler:1", created
    again = run_module(MODULE, {"task_definitions": [item]}, env=env, diff=True)
    assert again["changed"] is False, again
    assert again["task_definitions"][0]["task_definition"] == "t-scheduler:1"
    assert run_module(MODULE, {"task_definitions": [item]}, env=env, check=True)["changed"] is False


# --- The comparison, against a revision as ECS itself describes it (more filled in than the emulator does) ----

WANTED = {
    "family": "t-api",
    "cpu": "1 vCPU",
    "memory": "2 GB",
    "network_mode": "awsvpc",
    "requires_compatibilities": ["FARGATE"],
    "execution_role_arn": ROLE,
    "task_role_arn": None,
    "runtime_platform": {"cpuArchitecture": "X86_64", "operatingSystemFamily": "LINUX"},
    "container_definitions": [
        {
            "name": "api",
            "image": "apache/airflow:3.3.2",
            "environment": [{"name": "B", "value": "2"}, {"name": "A", "value": "1"}],
            "secrets": [],
            "portMappings": [{"containerPort": 8080}],
            "healthCheck": {"command": ["CMD-SHELL", "true"]},
            "logConfiguration": {"logDriver": "awslogs", "options": {"awslogs-group": "/ecs/t/api"}},
        },
        {"name": "metrics", "image": "apache/airflow:3.3.2", "essential": False, "memory": 128},
    ],
}
DESCRIBED = {
    "taskDefinitionArn": "arn:aws:ecs:us-east-1:123456789012:task-definition/t-api:3",
    "family": "t-api",
    "revision": 3,
    "status": "ACTIVE",
    "cpu": "1024",
    "memory": "2048",
    "networkMode": "awsvpc",
    "requiresCompatibilities": ["FARGATE"],
    "compatibilities": ["EC2", "FARGATE"],
    "requiresAttributes": [{"name": "com.amazonaws.ecs.capability.logging-driver.awslogs"}],
    "placementConstraints": [],
    "volumes": [],
    "executionRoleArn": ROLE,
    "runtimePlatform": {"cpuArchitecture": "X86_64", "operatingSystemFamily": "LINUX"},
    "enableFaultInjection": False,
    "registeredAt": datetime.datetime(2025, 1, 1, tzinfo=datetime.UTC),
    "registeredBy": "arn:aws:sts::123456789012:assumed-role/deployer/ansible",
    "containerDefinitions": [
        {
            "name": "metrics",
            "image": "apache/airflow:3.3.2",
            "cpu": 0,
            "memory": 128,
            "essential": False,
            "portMappings": [],
            "environment": [],
            "mountPoints": [],
            "volumesFrom": [],
            "systemControls": [],
        },
        {
            "name": "api",
            "image": "apache/airflow:3.3.2",
            "cpu": 0,
            "essential": True,
            "portMappings": [{"containerPort": 8080, "hostPort": 8080, "protocol": "tcp"}],
            "environment": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
            "mountPoints": [],
            "volumesFrom": [],
            "healthCheck": {"command": ["CMD-SHELL", "true"], "interval": 30, "timeout": 5, "retries": 3},
            "logConfiguration": {
                "logDriver": "awslogs",
                "options": {"awslogs-group": "/ecs/t/api"},
                "secretOptions": [],
            },
            "systemControls": [],
            "versionConsistency": "enabled",
        },
    ],
}


@pytest.fixture
def module(load_library_module: Callable[[str], ModuleType]) -> ModuleType:
    return load_library_module(MODULE)


def api(definition: dict) -> dict:
    return next(c for c in definition["containerDefinitions"] if c["name"] == "api")


def test_what_ecs_fills_in_is_no_difference(module: ModuleType) -> None:
    assert module.matches(DESCRIBED, WANTED)


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda w: w["container_definitions"][0].pop("logConfiguration"), id="container field removed"),
        pytest.param(lambda w: w["container_definitions"][0].pop("healthCheck"), id="health check removed"),
        pytest.param(lambda w: w["container_definitions"][0]["healthCheck"].update(timeout=10), id="default changed"),
        pytest.param(lambda w: w["container_definitions"][0].update(essential=False), id="essential changed"),
        pytest.param(lambda w: w["container_definitions"][0].update(user="50000"), id="container field added"),
        pytest.param(lambda w: w["container_definitions"][0]["portMappings"][0].update(hostPort=80), id="host port"),
        pytest.param(lambda w: w["container_definitions"].pop(), id="container removed"),
        pytest.param(lambda w: w.update(runtime_platform=None), id="task field removed"),
        pytest.param(lambda w: w.update(execution_role_arn=None), id="execution role removed"),
        pytest.param(lambda w: w.update(task_role_arn=ROLE + "-task"), id="task field added"),
        pytest.param(lambda w: w.update(memory="4 GB"), id="task field changed"),
    ],
)
def test_a_change_to_the_wanted_definition_is_a_difference(module: ModuleType, change: Callable) -> None:
    wanted = copy.deepcopy(WANTED)
    change(wanted)
    assert not module.matches(DESCRIBED, wanted)


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda d: api(d).update(secrets=[{"name": "S", "valueFrom": SECRET}]), id="secrets gone"),
        pytest.param(lambda d: api(d).update(dockerLabels={"a": "b"}), id="labels gone"),
        pytest.param(lambda d: api(d)["healthCheck"].update(startPeriod=60), id="start period gone"),
        pytest.param(lambda d: api(d).update(privileged=True), id="privileged gone"),
        pytest.param(lambda d: d.update(volumes=[{"name": "data"}]), id="volume gone"),
        pytest.param(lambda d: d.update(pidMode="task"), id="pid mode gone"),
        pytest.param(lambda d: d.update(taskRoleArn=ROLE + "-task"), id="task role gone"),
    ],
)
def test_a_field_only_the_latest_revision_has_is_a_difference(module: ModuleType, change: Callable) -> None:
    described = copy.deepcopy(DESCRIBED)
    change(described)
    assert not module.matches(described, WANTED)
