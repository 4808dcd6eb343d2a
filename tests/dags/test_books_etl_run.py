"""The whole DAG with dag.test(): the fixture site over local HTTP, the data bucket on moto."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import pyarrow.parquet as pq
import pytest
from books_support import BUCKET, EXPECTED_INVALID, EXPECTED_REPORT_LINES, EXPECTED_SUMMARY, PNG_MAGIC, xcom_value
from etl.parse import SCHEMA

LOGICAL_DATE = datetime(2026, 3, 14, tzinfo=UTC)
DT = "2026-03-14"
ALL_SUCCESS = {
    ("plan", -1): "success",
    ("scrape_page", 0): "success",
    ("scrape_page", 1): "success",
    ("scrape_page", 2): "success",
    ("transform", -1): "success",
    ("upload", -1): "success",
    ("analyze", -1): "success",
}


def conf(site, **overrides) -> dict:
    """Params of a test run: the local site, no delay between requests, short timeouts and backoff."""
    return {
        "base_url": site.url,
        "page_count": 3,
        "request_delay_seconds": 0,
        "request_timeout_seconds": 2,
        "http_max_attempts": 2,
        "http_backoff_seconds": 0.05,
        **overrides,
    }


def objects(s3) -> dict[str, int]:
    """Every key in the data bucket with its size."""
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET)
    return {item["Key"]: item["Size"] for page in pages for item in page.get("Contents", [])}


def read(s3, key: str) -> bytes:
    return s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()


@pytest.fixture
def bucket_variable(s3, monkeypatch: pytest.MonkeyPatch) -> str:
    """The data bucket named the way the deployment names it: AIRFLOW_VAR_ETL_DATA_BUCKET."""
    monkeypatch.setenv("AIRFLOW_VAR_ETL_DATA_BUCKET", BUCKET)
    return BUCKET


def assert_published(s3, dag_run) -> None:
    """The run's partition, report and chart hold what the fixture site has; XComs carry the counts."""
    table = pq.read_table(io.BytesIO(read(s3, f"curated/books/dt={DT}/books.parquet")))
    assert table.num_rows == 9
    assert table.schema.equals(SCHEMA)

    chart = read(s3, f"reports/dt={DT}/chart.png")
    assert chart.startswith(PNG_MAGIC)
    assert len(chart) > 10_000

    report = read(s3, f"reports/dt={DT}/report.md").decode().splitlines()
    assert report[0] == f"# Books catalogue report, {DT}"
    for line in EXPECTED_REPORT_LINES:
        assert line in report

    transform = xcom_value(dag_run, "transform")
    assert (transform["rows"], transform["invalid"], transform["invalid_by_reason"]) == (9, 3, EXPECTED_INVALID)
    analysis = xcom_value(dag_run, "analyze")
    assert {key: analysis[key] for key in EXPECTED_SUMMARY} == EXPECTED_SUMMARY
    assert [xcom_value(dag_run, "scrape_page", index)["books"] for index in range(3)] == [4, 4, 4]


def test_dag_run_publishes_data_and_report_and_a_rerun_replaces_them(site, s3, bucket_variable, books_dag, run_dag):
    first_run, states, seconds = run_dag(books_dag, LOGICAL_DATE, conf(site))

    assert (first_run.state, states) == ("success", ALL_SUCCESS)
    first = objects(s3)
    assert sorted(key for key in first if not key.startswith("raw/")) == [
        f"curated/books/dt={DT}/books.parquet",
        f"reports/dt={DT}/chart.png",
        f"reports/dt={DT}/report.md",
        f"staging/{DT}/books.parquet",
        f"staging/{DT}/rejects.json",
    ]
    assert len([key for key in first if key.startswith(f"raw/{DT}/")]) == 3 * (1 + 4 + 1)  # catalogue, books, manifest
    assert_published(s3, first_run)

    # The same logical date again: same keys, same rows; the partition is replaced, not added to.
    second_run, states, rerun_seconds = run_dag(books_dag, LOGICAL_DATE, conf(site))

    assert (second_run.state, states) == ("success", ALL_SUCCESS)
    assert sorted(objects(s3)) == sorted(first)
    assert_published(s3, second_run)
    print(f"dag.test(): first run {seconds:.1f} s (with the in-process API start-up), re-run {rerun_seconds:.1f} s")


def test_a_failing_page_fails_only_its_mapped_task(site, s3, books_dag, run_dag, capfd):
    site.fail("/catalogue/page-2.html", 500)
    scrape = books_dag.get_task("scrape_page")
    scrape.retries = 1  # one Airflow retry, soon: the real DAG waits a minute and more
    scrape.retry_delay = timedelta(0)

    dag_run, states, _ = run_dag(books_dag, LOGICAL_DATE, conf(site, data_bucket=BUCKET, http_max_attempts=2))

    assert dag_run.state == "failed"
    assert states == {
        ("plan", -1): "success",
        ("scrape_page", 0): "success",
        ("scrape_page", 1): "failed",
        ("scrape_page", 2): "success",
        ("transform", -1): "upstream_failed",
        ("upload", -1): "upstream_failed",
        ("analyze", -1): "upstream_failed",
    }
    assert site.hits["/catalogue/page-2.html"] == 2 * 2  # 2 HTTP tries in each of 2 task tries
    assert site.hits["/catalogue/page-1.html"] == site.hits["/catalogue/page-3.html"] == 1
    output = capfd.readouterr()
    assert f"GET {site.url}catalogue/page-2.html failed after 2 tries: HTTP 500" in output.out + output.err
    keys = objects(s3)
    assert not any(key.startswith(("curated/", "reports/", f"raw/{DT}/page-2/")) for key in keys)
    assert len([key for key in keys if key.startswith((f"raw/{DT}/page-1/", f"raw/{DT}/page-3/"))]) == 12
