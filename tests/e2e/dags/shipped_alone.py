"""A DAG the e2e ships with `site.yml --tags dags` (make deploy-dags) while the stack runs."""

from __future__ import annotations

from datetime import UTC, datetime

from airflow.sdk import dag, task


@dag(dag_id="shipped_alone", schedule=None, start_date=datetime(2026, 1, 1, tzinfo=UTC), catchup=False)
def shipped_alone() -> None:
    @task
    def hello() -> str:
        return "hello"

    hello()


shipped_alone()
