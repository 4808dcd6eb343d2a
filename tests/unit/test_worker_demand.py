"""The worker-demand publisher (roles/airflow_nodes/files/worker_demand.py) and the count filter of ecs_service."""

from __future__ import annotations

import importlib.util
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import create_engine

ROOT = Path(__file__).resolve().parents[2]


def _load(path: str):
    spec = importlib.util.spec_from_file_location(path.replace("/", "_").removesuffix(".py"), ROOT / path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


demand = _load("roles/airflow_nodes/files/worker_demand.py")
ecs_filters = _load("plugins/filter/ecs.py")


@pytest.mark.parametrize(
    ("active", "concurrency", "workers"),
    [(0, 8, 0), (1, 8, 1), (8, 8, 1), (9, 8, 2), (16, 8, 2), (17, 8, 3), (100, 16, 7), (5, 1, 5), (-3, 8, 0)],
)
def test_desired_workers_is_the_ceiling_of_active_tasks_per_slot_count(active, concurrency, workers):
    assert demand.desired_workers(active, concurrency) == workers


def test_a_concurrency_below_one_is_refused():
    with pytest.raises(ValueError, match="at least 1"):
        demand.desired_workers(3, 0)


def test_scale_in_waits_for_the_whole_window_and_scale_out_does_not():
    assert demand.smoothed([]) == 0
    assert demand.smoothed([1, 4, 2]) == 4  # a dip never removes workers while the peak is in the window
    assert demand.smoothed([0, 0, 0]) == 0


def test_active_tasks_are_the_queued_and_running_celery_task_instances():
    engine = create_engine("sqlite://", creator=lambda: sqlite3.connect(":memory:", check_same_thread=False))
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE task_instance (task_id TEXT, state TEXT, executor TEXT)")
        states = ["queued", "running", "running", "success", "failed", None, "scheduled", "deferred", "up_for_retry"]
        for number, state in enumerate(states):
            connection.exec_driver_sql("INSERT INTO task_instance VALUES (?, ?, NULL)", (f"t{number}", state))
        assert demand.count_active_tasks(connection) == 3
        # A task naming Celery counts; one on the ECS executor runs as its own Fargate task and does not.
        connection.exec_driver_sql("INSERT INTO task_instance VALUES ('celery', 'queued', 'CeleryExecutor')")
        connection.exec_driver_sql("INSERT INTO task_instance VALUES ('ecs', 'running', 'AwsEcsExecutor')")
        assert demand.count_active_tasks(connection) == 4


@pytest.mark.parametrize(
    ("current", "scaling", "expected"),
    [
        (None, None, 2),  # no autoscaling: desired_count
        (5, None, 2),
        (None, {"min_count": 0, "max_count": 4}, 2),  # a new service starts at desired_count, clamped
        (None, {"min_count": 3, "max_count": 6}, 3),
        (4, {"min_count": 0, "max_count": 10}, 4),  # an existing one keeps the autoscaler's count
        (9, {"min_count": 0, "max_count": 4}, 4),  # ... within the bounds
        (0, {"min_count": 1, "max_count": 4}, 1),
        ("", {"min_count": 0, "max_count": 4}, 2),
    ],
)
def test_deploys_keep_the_autoscalers_count_within_the_bounds(current, scaling, expected):
    assert ecs_filters.ecs_scaled_count(current, {"desired_count": 2, "autoscaling": scaling}) == expected
