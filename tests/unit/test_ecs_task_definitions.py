"""library/ecs_task_definitions.py against a moto server, through the real `ansible` CLI."""

from __future__ import annotations

from typing import Any

from ansible_runner import run_module
from emulator import Emulator

MODULE = "ecs_task_definitions"
ROLE = "arn:aws:iam::123456789012:role/execution"


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
