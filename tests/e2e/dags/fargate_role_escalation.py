"""A DAG the e2e ships and Airflow must refuse: its task asks the AwsEcsExecutor for the task role of another
team's DAG (read from the mapping every Airflow container has), and the cluster policy refuses it at parsing
(AirflowClusterPolicyViolation: an import error; the DAG never runs)."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime

from airflow.sdk import dag, task

OTHER_TEAMS_ROLE = (
    json.loads(os.environ.get("AIRFLOW_ECS_TASK_ROLES") or "{}")
    .get("roles", {})
    .get("fargate_task_roles", "arn:aws:iam::000000000000:role/another-team")
)


@dag(dag_id="fargate_role_escalation", schedule=None, start_date=datetime(2026, 1, 1, tzinfo=UTC), catchup=False)
def fargate_role_escalation() -> None:
    @task(executor="AwsEcsExecutor", executor_config={"overrides": {"taskRoleArn": OTHER_TEAMS_ROLE}})
    def borrow_a_role() -> None:
        pass

    borrow_a_role()


fargate_role_escalation()
