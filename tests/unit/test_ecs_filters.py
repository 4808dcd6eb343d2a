"""The container definition the ecs_service role registers: stable for the same spec, new for any change."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("ecs_filters", ROOT / "plugins" / "filter" / "ecs.py")
ecs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ecs)

SPEC = {
    "name": "worker",
    "image": "apache/airflow:3.3.2",
    "cpu": 1024,
    "memory": 2048,
    "environment": {"B": "2", "A": "1"},
    "secrets": {"S": "arn:aws:secretsmanager:us-east-1:123456789012:secret:s"},
    "port": 8793,
    "command": ["celery", "worker"],
}


def digest(spec: dict) -> str:
    return ecs.ecs_container_definition(spec, "airflow", "us-east-1")["dockerLabels"][ecs.DIGEST_LABEL]


def test_the_same_spec_gives_the_same_definition_whatever_the_order_of_its_variables():
    reordered = {**SPEC, "environment": {"A": "1", "B": "2"}}
    first = ecs.ecs_container_definition(SPEC, "airflow", "us-east-1")
    assert first == ecs.ecs_container_definition(reordered, "airflow", "us-east-1")
    assert [e["name"] for e in first["environment"]] == ["A", "B"]


@pytest.mark.parametrize(
    "change",
    [
        {"environment": {"A": "1", "B": "3"}},  # same length, one value: the case the module's matcher misses
        {"secrets": {"S": "arn:aws:secretsmanager:us-east-1:123456789012:secret:other"}},
        {"command": ["celery", "flower"]},
        {"image": "apache/airflow:3.3.3"},
        {"health_check": {"command": "true"}},
    ],
)
def test_any_change_gives_a_new_digest_label(change):
    assert digest({**SPEC, **change}) != digest(SPEC)


SIDECAR = {"name": "metrics", "memory": 128, "command": ["python", "-c", "relay"], "environment": {"M": "1"}}


def test_a_sidecar_shares_the_task_and_the_essential_container_gets_what_is_left():
    main, sidecar = ecs.ecs_task_containers({**SPEC, "sidecars": [SIDECAR]}, "airflow", "us-east-1")
    assert (main["name"], main["essential"], main["cpu"], main["memory"]) == ("worker", True, 1024, 1920)
    assert main["portMappings"] and main["command"] == ["celery", "worker"]
    assert (sidecar["name"], sidecar["essential"], sidecar["cpu"], sidecar["memory"]) == ("metrics", False, 0, 128)
    assert sidecar["image"] == SPEC["image"] and sidecar["command"] == ["python", "-c", "relay"]
    assert sidecar["environment"] == [{"name": "M", "value": "1"}] and sidecar["secrets"] == []
    assert "portMappings" not in sidecar or sidecar["portMappings"] == []
    assert sidecar["stopTimeout"] == 10
    # Its log stream is <service>/metrics/<task id>, in the service's group.
    assert sidecar["logConfiguration"]["options"]["awslogs-stream-prefix"] == "worker"
    assert sidecar["logConfiguration"]["options"]["awslogs-group"] == "/ecs/airflow/worker"


def test_without_sidecars_the_task_is_its_one_container():
    assert ecs.ecs_task_containers(SPEC, "airflow", "us-east-1") == [
        ecs.ecs_container_definition(SPEC, "airflow", "us-east-1")
    ]


def test_sidecars_that_leave_the_main_container_too_little_memory_are_refused():
    with pytest.raises(ValueError, match="leave the main container"):
        ecs.ecs_task_containers(
            {**SPEC, "memory": 512, "sidecars": [{**SIDECAR, "memory": 400}]}, "airflow", "us-east-1"
        )


def test_an_essential_sidecar_reserves_memory_has_its_health_check_and_its_own_log_group():
    """The colocated dag-processor: essential, a soft reservation (no hard limit), its own health and logs."""
    colocated = {
        "name": "dag-processor",
        "essential": True,
        "memory_reservation": 512,
        "command": ["dag-processor"],
        "health_check": {"command": "airflow jobs check", "interval": 60},
        "log_component": "dag-processor",
    }
    main, metrics, processor = ecs.ecs_task_containers(
        {**SPEC, "sidecars": [SIDECAR, colocated]}, "airflow", "us-east-1"
    )
    assert main["memory"] == 2048 - 128 - 512  # Fargate: reservations add up to at most the task's memory
    assert (processor["essential"], processor["memoryReservation"]) == (True, 512) and "memory" not in processor
    assert processor["healthCheck"]["command"] == ["CMD-SHELL", "airflow jobs check"]
    assert processor["logConfiguration"]["options"]["awslogs-group"] == "/ecs/airflow/dag-processor"
    assert metrics["essential"] is False and "healthCheck" not in metrics
    assert ecs.ecs_sidecar_memory(colocated) == 512 and ecs.ecs_sidecar_memory(SIDECAR) == 128
