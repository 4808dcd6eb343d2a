"""A DAG the e2e ships with `make deploy-dags`: on a Celery worker, the DAGs' own dependency (matplotlib,
from image/requirements.txt) imports from the image's package set, and a package the image lacks
(polars: in neither the stock image nor the recipe) fails the task as it would on AWS."""

from __future__ import annotations

import sys
from datetime import UTC, datetime

from airflow.sdk import dag, task


@dag(
    dag_id="image_packages",
    schedule=None,
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    default_args={"retries": 0},
)
def image_packages() -> None:
    @task
    def recipe_package() -> None:
        import matplotlib  # noqa: PLC0415

        print(f"matplotlib {matplotlib.__version__} from {matplotlib.__file__} (python {sys.prefix})")

    @task
    def missing_package() -> None:
        import polars  # noqa: F401, PLC0415

    recipe_package()
    missing_package()


image_packages()
