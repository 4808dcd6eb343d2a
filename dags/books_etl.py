"""
### books_etl

Daily snapshot of [books.toscrape.com](https://books.toscrape.com/), a sandbox shop made for scraping.

1. **plan**: resolve the data bucket, check it exists, list the catalogue pages to fetch.
2. **scrape_page** (mapped, one task per catalogue page): fetch the page and the book pages it
   links to, politely; keep the raw HTML in `s3://<bucket>/raw/<dt>/page-<n>/`.
3. **transform**: parse the raw HTML into a typed table; stage it as Parquet; count invalid rows.
4. **upload**: publish the table to `curated/books/dt=<dt>/books.parquet`, replacing that partition.
5. **analyze**: price statistics per category and per rating, availability, a chart and a
   Markdown report in `reports/dt=<dt>/`.

The bucket is the `data_bucket` param, else the Airflow Variable `etl_data_bucket` (env var
`AIRFLOW_VAR_ETL_DATA_BUCKET`), else the env var `ETL_DATA_BUCKET`, else `airflow-etl-data`.
S3 goes through the connection `aws_default`; without it, the container's credentials (task role).

This file only wires tasks: the work is in the `etl` package beside it, imported when a task runs.
"""

# Task bodies import the etl modules they need (and through them requests, BeautifulSoup, pyarrow,
# pandas, matplotlib, the S3 hook) when they run, so parsing this file stays fast.
# ruff: noqa: PLC0415

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime, timedelta

from airflow.sdk import Param, Variable, dag, get_current_context, task
from etl import config

log = logging.getLogger(__name__)

DEFAULT_ARGS = {
    "owner": "data",
    "retries": 3,
    "retry_delay": timedelta(minutes=1),
    "retry_exponential_backoff": 2.0,  # a multiplier in Airflow 3.3: waits of 1-2, 2-4, 4-8 min
    "max_retry_delay": timedelta(minutes=15),
    "execution_timeout": timedelta(minutes=30),
}

PARAMS = {
    "base_url": Param(config.DEFAULT_BASE_URL, type="string", pattern="^https?://", description="Site to scrape."),
    "page_count": Param(
        config.DEFAULT_PAGE_COUNT, type="integer", minimum=1, maximum=1000, description="Catalogue pages, from 1."
    ),
    "request_delay_seconds": Param(
        config.DEFAULT_REQUEST_DELAY, type="number", minimum=0, description="Pause between two requests of a task."
    ),
    "request_timeout_seconds": Param(
        config.DEFAULT_REQUEST_TIMEOUT, type="number", exclusiveMinimum=0, description="Per request."
    ),
    "http_max_attempts": Param(
        config.DEFAULT_HTTP_ATTEMPTS, type="integer", minimum=1, maximum=10, description="Tries per URL."
    ),
    "http_backoff_seconds": Param(
        config.DEFAULT_HTTP_BACKOFF, type="number", minimum=0, description="Wait before the 2nd try, then doubled."
    ),
    "data_bucket": Param(
        "", type="string", description="Empty: Variable etl_data_bucket, env ETL_DATA_BUCKET, then the default."
    ),
}


def _run_settings() -> tuple[str, str, dict]:
    """Bucket, partition date and params of the running task; resolved at run time, never at parse time."""
    context = get_current_context()
    params = dict(context["params"])
    bucket = config.choose_bucket(
        params.get("data_bucket"), Variable.get(config.BUCKET_VARIABLE, default=None), os.environ
    )
    dt = config.partition_date(context.get("logical_date"), context["dag_run"].run_after)
    return bucket, dt, params


@dag(
    dag_id="books_etl",
    description="Scrape books.toscrape.com, publish a Parquet partition per day and a report",
    # A daily snapshot partitioned by logical date. catchup=False: the site only shows today's
    # catalogue, so backfilled runs would store today's data under past dates. New DAGs start
    # paused (AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION), so deploying does not start scraping.
    schedule="@daily",
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(hours=3),
    default_args=DEFAULT_ARGS,
    params=PARAMS,
    tags=["etl", "books", "s3"],
    doc_md=__doc__,
)
def books_etl() -> None:
    @task
    def plan() -> list[int]:
        from etl.storage import S3Store

        bucket, dt, params = _run_settings()
        if not S3Store(bucket).bucket_exists():
            raise RuntimeError(f"data bucket {bucket!r} does not exist or is not readable via {config.AWS_CONN_ID}")
        pages = list(range(1, int(params["page_count"]) + 1))
        log.info("Scraping %d page(s) of %s into s3://%s/ for %s", len(pages), params["base_url"], bucket, dt)
        return pages

    # At most two pages at a time: with request_delay_seconds that caps the load on the site.
    @task(max_active_tis_per_dag=2, map_index_template="page {{ page }}")
    def scrape_page(page: int) -> dict:
        from etl import scrape
        from etl.storage import S3Store

        get_current_context()["page"] = page  # shown by map_index_template
        bucket, dt, params = _run_settings()
        return scrape.scrape_page(page, config.ScrapeSettings.from_params(params), S3Store(bucket), dt)

    @task
    def transform(pages: list[dict]) -> dict:
        from etl.storage import S3Store
        from etl.transform import parse_pages

        bucket, dt, _ = _run_settings()
        # pages is a lazy sequence of the mapped results: a slice fetches them in one call.
        return parse_pages(S3Store(bucket), dt, pages[:])

    @task
    def upload(staged: dict) -> dict:
        from etl.storage import S3Store
        from etl.upload import publish_partition

        bucket, dt, _ = _run_settings()
        return publish_partition(S3Store(bucket), dt, staged["parquet_key"])

    @task
    def analyze(published: dict, staged: dict) -> dict:
        from etl.analyze import write_report
        from etl.storage import S3Store

        bucket, dt, _ = _run_settings()
        return write_report(S3Store(bucket), dt, published["key"], staged)

    staged = transform(scrape_page.expand(page=plan()))
    analyze(upload(staged), staged)


books_etl()
