"""`make shell SERVICE=<node>` finds the task a node runs in (scripts/ecs_shell.py), against moto's ECS."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import boto3
from moto import mock_aws

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("ecs_shell", ROOT / "scripts" / "ecs_shell.py")
ecs_shell = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ecs_shell)


def _service(ecs, name: str) -> None:
    ecs.register_task_definition(family=name, containerDefinitions=[{"name": "c", "image": "i", "memory": 128}])
    ecs.create_service(cluster="airflow", serviceName=name, taskDefinition=name, desiredCount=0)


@mock_aws
def test_a_colocated_node_is_reached_in_the_scheduler_task_and_a_separate_one_in_its_own():
    ecs = boto3.client("ecs", region_name="us-east-1")
    ecs.create_cluster(clusterName="airflow")
    _service(ecs, "airflow-scheduler")
    assert ecs_shell.service_of(ecs, "airflow", "airflow", "dag-processor") == "airflow-scheduler"
    assert ecs_shell.service_of(ecs, "airflow", "airflow", "worker") == "airflow-worker"  # its own, found or not
    _service(ecs, "airflow-dag-processor")  # airflow_nodes_colocate: false
    assert ecs_shell.service_of(ecs, "airflow", "airflow", "dag-processor") == "airflow-dag-processor"
