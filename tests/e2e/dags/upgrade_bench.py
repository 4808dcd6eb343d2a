"""60 tasks of 10 s each: the work `python -m e2e.bench` keeps running through a rolling upgrade of every
Airflow service (uploaded to the DAG bucket by the bench only). No retries: a task instance the upgrade
kills stays failed, so the count of successes is the count of work not lost."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from airflow.sdk import dag, task

TASKS = 60
SECONDS = 10


@dag(
    dag_id="upgrade_bench",
    schedule=None,
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    tags=["bench"],
    default_args={"retries": 0},
)
def upgrade_bench() -> None:
    @task
    def work(i: int) -> int:
        time.sleep(SECONDS)
        return i

    for i in range(TASKS):
        work.override(task_id=f"work_{i:02d}")(i)


upgrade_bench()
