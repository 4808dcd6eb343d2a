"""The DAG files parse quickly and cleanly, and books_etl is wired as designed."""

# Airflow is imported inside the tests, after conftest.py has configured it.
# ruff: noqa: PLC0415

from __future__ import annotations

import ast
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from books_support import DAGS, load_dagbag

# Modules the DAG file may import when it is parsed: the standard library, the Task SDK, etl.config.
PARSE_TIME_IMPORTS = {"__future__", "datetime", "logging", "os", "airflow.sdk", "etl", "etl.config"}
HEAVY = ("pandas", "matplotlib", "pyarrow", "bs4", "requests", "boto3", "airflow.providers")


@pytest.fixture(scope="module")
def dagbag():
    return load_dagbag(DAGS)


@pytest.fixture(scope="module")
def dag(dagbag):
    return dagbag.dags["books_etl"]


def test_every_dag_file_imports_without_errors(dagbag):
    assert dagbag.import_errors == {}
    assert sorted(Path(stat.file).name for stat in dagbag.dagbag_stats) == ["books_etl.py"]
    assert sorted(dagbag.dag_ids) == ["books_etl"]


def test_every_dag_file_parses_well_under_a_second(dagbag):
    # Parse time of one file, measured by the DagBag itself (Airflow is already imported).
    slow = {stat.file: stat.duration for stat in dagbag.dagbag_stats if stat.duration >= timedelta(seconds=0.5)}
    assert slow == {}


def test_dag_file_imports_its_package_when_dags_is_the_bundle_root(monkeypatch):
    # In production dags/ is an S3 bundle: Airflow adds its local copy to sys.path, nothing else does.
    from airflow.dag_processing.dagbag import BundleDagBag

    monkeypatch.setattr(sys, "path", [entry for entry in sys.path if Path(entry).resolve() != DAGS])
    for name in [name for name in sys.modules if name == "etl" or name.startswith("etl.")]:
        monkeypatch.delitem(sys.modules, name)

    bundle = BundleDagBag(dag_folder=DAGS, bundle_path=DAGS, bundle_name="dags")

    assert (bundle.import_errors, list(bundle.dags)) == ({}, ["books_etl"])
    assert Path(sys.modules["etl.config"].__file__).parent == DAGS / "etl"


def test_etl_package_is_not_parsed_as_dags(dagbag):
    # dags/.airflowignore keeps the DAG processor out of the etl/ package.
    assert all("/etl/" not in stat.file for stat in dagbag.dagbag_stats)
    assert (DAGS / ".airflowignore").read_text().splitlines().count("etl/") == 1


def _top_level_imports(path: Path) -> set[str]:
    imports = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            imports.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            imports.add(node.module or "")
    return imports


def test_dag_file_does_no_heavy_imports_at_parse_time():
    assert _top_level_imports(DAGS / "books_etl.py") <= PARSE_TIME_IMPORTS
    config_imports = _top_level_imports(DAGS / "etl" / "config.py")
    assert all(name.split(".")[0] in sys.stdlib_module_names for name in config_imports), config_imports
    assert not any(name.startswith(HEAVY) for name in _top_level_imports(DAGS / "etl" / "__init__.py"))


def test_tasks_and_dependencies(dag):
    assert sorted(dag.task_ids) == ["analyze", "plan", "scrape_page", "transform", "upload"]
    downstream = {task.task_id: sorted(task.downstream_task_ids) for task in dag.tasks}
    assert downstream == {
        "plan": ["scrape_page"],
        "scrape_page": ["transform"],
        "transform": ["analyze", "upload"],
        "upload": ["analyze"],
        "analyze": [],
    }


def test_scrape_is_mapped_over_the_planned_pages(dag):
    from airflow.sdk.definitions.mappedoperator import MappedOperator

    mapped = sorted(task.task_id for task in dag.tasks if isinstance(task, MappedOperator))
    assert mapped == ["scrape_page"]
    scrape = dag.get_task("scrape_page")
    expand = scrape.op_kwargs_expand_input.value  # the .expand(page=...) of a TaskFlow task
    assert sorted(expand) == ["page"]
    assert expand["page"].operator.task_id == "plan"
    assert scrape.max_active_tis_per_dag == 2


def test_schedule_catchup_and_start_date(dag):
    assert dag.schedule == "@daily"
    assert dag.catchup is False
    assert dag.max_active_runs == 1
    assert dag.start_date.isoformat() == "2026-01-01T00:00:00+00:00"
    assert {"etl", "books"} <= set(dag.tags)


def test_paused_at_creation_is_left_to_airflow_config(dag):
    # AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION (default True) decides; the DAG must not force False.
    assert dag.is_paused_upon_creation is None


def test_every_task_retries_with_exponential_backoff(dag):
    for task in dag.tasks:
        assert task.retries == 3, task.task_id
        assert task.retry_exponential_backoff == 2.0, task.task_id
        assert task.retry_delay == timedelta(minutes=1), task.task_id
        assert task.max_retry_delay == timedelta(minutes=15), task.task_id
        assert task.execution_timeout == timedelta(minutes=30), task.task_id


def test_params_default_to_the_real_site_politely(dag):
    params = {key: dag.params[key] for key in dag.params}
    assert params == {
        "base_url": "https://books.toscrape.com/",
        "page_count": 50,
        "request_delay_seconds": 1.0,
        "request_timeout_seconds": 20.0,
        "http_max_attempts": 3,
        "http_backoff_seconds": 2.0,
        "data_bucket": "",
    }
