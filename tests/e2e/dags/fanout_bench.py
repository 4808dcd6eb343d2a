"""50 independent no-op tasks: the fan-out `python -m e2e.bench` times (uploaded to the DAG bucket by the bench only).

Nothing but the task start-up is measured: scheduling, queueing, the worker or local executor, the
Execution API and the task runner. The DAG keeps Airflow's defaults (max_active_tasks 16 per DAG).
"""

from __future__ import annotations

from datetime import UTC, datetime

from airflow.sdk import dag, task

FANOUT = 50


@dag(
    dag_id="fanout_bench",
    schedule=None,
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    tags=["bench"],
)
def fanout_bench() -> None:
    @task
    def noop(i: int) -> int:
        return i

    for i in range(FANOUT):
        noop.override(task_id=f"noop_{i:02d}")(i)


fanout_bench()
