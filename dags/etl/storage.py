"""The data bucket: key layout and a small S3 store on the amazon provider's S3Hook.

Layout (one partition per logical date `dt`, every key derived from it, so a re-run of the same
date overwrites the same keys and removes leftovers instead of adding objects):

    raw/<dt>/page-<n>/catalogue.html        catalogue page n as fetched
    raw/<dt>/page-<n>/books/<slug>.html     the book pages it links to
    raw/<dt>/page-<n>/manifest.json         URLs, keys and fetch times of the above
    staging/<dt>/books.parquet              transform output, input of upload
    staging/<dt>/rejects.json               rows that failed validation, with the reason
    curated/books/dt=<dt>/books.parquet     the published table
    reports/dt=<dt>/report.md, chart.png    the analysis
"""

from __future__ import annotations

# The S3 hook (and with it Airflow) is imported when a store is made, not when this module is.
# ruff: noqa: PLC0415
import logging
from collections.abc import Mapping
from typing import Any, Protocol

from etl.config import AWS_CONN_ID

log = logging.getLogger(__name__)

CONTENT_TYPES = {
    ".html": "text/html",
    ".json": "application/json",
    ".md": "text/markdown; charset=utf-8",
    ".parquet": "application/vnd.apache.parquet",
    ".png": "image/png",
}


def raw_prefix(dt: str, page: int) -> str:
    return f"raw/{dt}/page-{page}/"


def staging_key(dt: str, name: str) -> str:
    return f"staging/{dt}/{name}"


def curated_prefix(dt: str) -> str:
    return f"curated/books/dt={dt}/"


def curated_key(dt: str) -> str:
    return curated_prefix(dt) + "books.parquet"


def report_prefix(dt: str) -> str:
    return f"reports/dt={dt}/"


def content_type(key: str) -> str:
    for suffix, kind in CONTENT_TYPES.items():
        if key.endswith(suffix):
            return kind
    return "application/octet-stream"


class Store(Protocol):
    """What the task functions need from a bucket (S3Store; an in-memory dict in unit tests)."""

    def put(self, key: str, data: bytes) -> None: ...

    def get(self, key: str) -> bytes: ...

    def list(self, prefix: str) -> list[str]: ...

    def replace_prefix(self, prefix: str, objects: Mapping[str, bytes]) -> list[str]: ...


class S3Store:
    """Bytes in and out of one bucket through S3Hook (connection `aws_default` by default)."""

    def __init__(self, bucket: str, aws_conn_id: str = AWS_CONN_ID, hook: Any = None) -> None:
        self.bucket = bucket
        if hook is None:
            from airflow.providers.amazon.aws.hooks.s3 import S3Hook

            hook = S3Hook(aws_conn_id=aws_conn_id)
        self.hook = hook

    def bucket_exists(self) -> bool:
        return self.hook.check_for_bucket(self.bucket)

    def put(self, key: str, data: bytes) -> None:
        self.hook.get_conn().put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type(key))

    def get(self, key: str) -> bytes:
        return self.hook.get_conn().get_object(Bucket=self.bucket, Key=key)["Body"].read()

    def list(self, prefix: str) -> list[str]:
        return sorted(self.hook.list_keys(bucket_name=self.bucket, prefix=prefix))

    def delete(self, keys: list[str]) -> None:
        if keys:
            self.hook.delete_objects(bucket=self.bucket, keys=keys)

    def replace_prefix(self, prefix: str, objects: Mapping[str, bytes]) -> list[str]:
        """Make `prefix` hold exactly `objects`: write them, then delete any other key under it.

        Returns the deleted keys. Writing first means readers never see the prefix empty.
        """
        outside = [key for key in objects if not key.startswith(prefix)]
        if outside:
            raise ValueError(f"keys {outside} are not under {prefix!r}")
        for key, data in objects.items():
            self.put(key, data)
        stale = [key for key in self.list(prefix) if key not in objects]
        if stale:
            log.info("Removing %d stale object(s) under s3://%s/%s", len(stale), self.bucket, prefix)
            self.delete(stale)
        return stale
