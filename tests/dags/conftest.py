"""Fixtures for the DAG tests: an isolated Airflow home, the fixture site over HTTP, the data bucket on moto.

Airflow reads its configuration once, when first imported, so the environment below is set when
this file loads, before any test imports Airflow. Airflow itself is imported only inside the
fixtures and tests that need it: collecting these tests (or running the other test directories)
does not import it. The variables point at a throwaway directory and mean nothing to Ansible.
"""

# ruff: noqa: PLC0415

from __future__ import annotations

import atexit
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
DAGS = HERE.parents[1] / "dags"  # the bundle root in production

_AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="books-etl-airflow-home-"))
atexit.register(shutil.rmtree, _AIRFLOW_HOME, ignore_errors=True)
os.environ.update(
    {
        "AIRFLOW_HOME": str(_AIRFLOW_HOME),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{_AIRFLOW_HOME}/airflow.db",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
    }
)
# dags/ is the bundle root in production: Airflow puts it on sys.path, so `import etl` works there.
sys.path[:0] = [str(DAGS), str(HERE)]

from books_support import BUCKET, SITE, MemoryStore, SiteServer, load_dagbag  # noqa: E402


def pytest_configure(config: pytest.Config) -> None:
    # Raised inside Airflow 3.3 itself (.airflowignore matching, the in-process API of dag.test()).
    for warning in (
        r"ignore:GitWildMatchPattern \('gitwildmatch'\) is deprecated:DeprecationWarning",
        r"ignore:Using `httpx` with `starlette.testclient` is deprecated",
    ):
        config.addinivalue_line("filterwarnings", warning)


@pytest.fixture(autouse=True)
def _restore_environment() -> Iterator[None]:
    """Task runs in dag.test() export AIRFLOW_CTX_* and similar: keep them out of later tests."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture(scope="session")
def site_server() -> Iterator[SiteServer]:
    server = SiteServer(SITE).start()
    yield server
    server.stop()


@pytest.fixture
def site(site_server: SiteServer) -> SiteServer:
    """The fixture copy of books.toscrape.com: 3 catalogue pages, 12 book pages (3 of them malformed)."""
    site_server.reset()
    return site_server


@pytest.fixture
def memory_store() -> MemoryStore:
    return MemoryStore()


@pytest.fixture
def aws_default(clean_emulator, monkeypatch: pytest.MonkeyPatch):
    """Connection aws_default pointing at a blank moto server, as AIRFLOW_CONN_AWS_DEFAULT (JSON)."""
    connection = {
        "conn_type": "aws",
        "login": "testing",
        "password": "testing",
        "extra": {"endpoint_url": clean_emulator.url, "region_name": "us-east-1"},
    }
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", json.dumps(connection))
    return clean_emulator


@pytest.fixture
def s3(aws_default):
    """A boto3 S3 client on the emulator, with the data bucket created."""
    client = aws_default.client("s3")
    client.create_bucket(Bucket=BUCKET)
    return client


@pytest.fixture(scope="session")
def airflow_db() -> float:
    """Migrate the SQLite metadata DB once per session (what `airflow db migrate` does); returns seconds."""
    start = time.monotonic()
    from airflow.utils.db import upgradedb

    upgradedb()
    return time.monotonic() - start


@pytest.fixture
def books_dag():
    """A freshly parsed books_etl DAG: tests may change it (e.g. retries) without affecting others."""
    dagbag = load_dagbag(DAGS)
    assert not dagbag.import_errors, dagbag.import_errors
    return dagbag.dags["books_etl"]


@pytest.fixture
def run_dag(airflow_db):
    """dag.test() the DAG for a logical date and conf; returns (dag run, {(task_id, map_index): state}, seconds)."""

    def run(dag, logical_date: datetime, conf: dict):
        from airflow.utils.session import create_session

        start = time.monotonic()
        dag_run = dag.test(logical_date=logical_date, run_conf=conf)
        seconds = time.monotonic() - start
        with create_session() as session:
            states = {(ti.task_id, ti.map_index): ti.state for ti in dag_run.get_task_instances(session=session)}
        return dag_run, states, seconds

    return run
