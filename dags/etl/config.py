"""Defaults and run settings shared by the DAG file and the task functions (standard library only).

The DAG file imports this module at parse time, so it must stay cheap: no third-party imports.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime

DEFAULT_BASE_URL = "https://books.toscrape.com/"
DEFAULT_PAGE_COUNT = 50  # the whole catalogue: 50 pages of 20 books
DEFAULT_REQUEST_DELAY = 1.0  # seconds between two requests of one task: at most 1 request/s each
DEFAULT_REQUEST_TIMEOUT = 20.0  # seconds, connect and read
DEFAULT_HTTP_ATTEMPTS = 3  # tries per URL inside a task, before the Airflow task retry takes over
DEFAULT_HTTP_BACKOFF = 2.0  # seconds before the 2nd try, doubled for each further try

# Where the data goes: the `data_bucket` param, else the Airflow Variable (the deployment sets
# AIRFLOW_VAR_ETL_DATA_BUCKET on the containers), else the ETL_DATA_BUCKET env var, else this.
BUCKET_VARIABLE = "etl_data_bucket"
BUCKET_ENV = "ETL_DATA_BUCKET"
DEFAULT_BUCKET = "airflow-etl-data"
AWS_CONN_ID = "aws_default"  # absent connection: the hook falls back to the ECS task role

USER_AGENT = "airflow-ecs-books-etl/1.0 (Apache Airflow DAG books_etl; polite scraper: 1 request/s, backs off)"

_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


@dataclass(frozen=True)
class ScrapeSettings:
    """How a scrape task talks to the site; built from the DAG params."""

    base_url: str = DEFAULT_BASE_URL
    request_delay: float = DEFAULT_REQUEST_DELAY
    timeout: float = DEFAULT_REQUEST_TIMEOUT
    max_attempts: int = DEFAULT_HTTP_ATTEMPTS
    backoff: float = DEFAULT_HTTP_BACKOFF

    @classmethod
    def from_params(cls, params: Mapping) -> ScrapeSettings:
        base_url = str(params.get("base_url") or DEFAULT_BASE_URL)
        return cls(
            base_url=base_url if base_url.endswith("/") else base_url + "/",
            request_delay=float(params.get("request_delay_seconds", DEFAULT_REQUEST_DELAY)),
            timeout=float(params.get("request_timeout_seconds", DEFAULT_REQUEST_TIMEOUT)),
            max_attempts=int(params.get("http_max_attempts", DEFAULT_HTTP_ATTEMPTS)),
            backoff=float(params.get("http_backoff_seconds", DEFAULT_HTTP_BACKOFF)),
        )


def choose_bucket(param: str | None, variable: str | None, environ: Mapping[str, str]) -> str:
    """First non-empty of: DAG param, Airflow Variable, ETL_DATA_BUCKET env var, default."""
    for candidate in (param, variable, environ.get(BUCKET_ENV), DEFAULT_BUCKET):
        name = (candidate or "").strip()
        if name:
            if not _BUCKET_NAME.match(name):
                raise ValueError(f"data bucket name {name!r} is not a valid S3 bucket name")
            return name
    raise AssertionError("unreachable: DEFAULT_BUCKET is set")


def partition_date(logical_date: datetime | date | None, run_after: datetime) -> str:
    """YYYY-MM-DD partition of a run: its logical date, or run_after for runs without one."""
    when = logical_date if logical_date is not None else run_after
    return when.strftime("%Y-%m-%d")
