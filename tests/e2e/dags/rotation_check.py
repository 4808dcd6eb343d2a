"""A DAG the e2e runs before and after a rotation of every secret: a stored connection and variable
(both encrypted with the Fernet key) read on a Celery worker must be what the run's conf says."""

from __future__ import annotations

from datetime import UTC, datetime

from airflow.sdk import BaseHook, Variable, dag, task


@dag(dag_id="rotation_check", schedule=None, start_date=datetime(2026, 1, 1, tzinfo=UTC), catchup=False)
def rotation_check() -> None:
    @task
    def read_stored_secrets(params: dict | None = None) -> None:
        connection = BaseHook.get_connection(params["conn_id"])
        if connection.password != params["password"]:
            raise ValueError(f"connection {params['conn_id']} does not hold the password it was stored with")
        if Variable.get(params["variable"]) != params["value"]:
            raise ValueError(f"variable {params['variable']} does not hold the value it was stored with")

    read_stored_secrets()


rotation_check()
