"""60 short independent tasks: the e2e replaces the broker task while they run, and every one must succeed
on its first try (the queues and their messages live on the broker's EFS volume; e2e/runner.py)."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from airflow.sdk import dag, task

TASKS = 60


@dag(
    dag_id="broker_replacement",
    schedule=None,
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    tags=["e2e"],
)
def broker_replacement() -> None:
    @task(retries=0)
    def short(i: int) -> int:
        time.sleep(2)
        return i

    for i in range(TASKS):
        short.override(task_id=f"short_{i:02d}")(i)


broker_replacement()
