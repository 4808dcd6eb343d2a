"""Upload step: publish the staged Parquet as the partition of its logical date."""

from __future__ import annotations

import logging

from etl import parse, storage

log = logging.getLogger(__name__)


def publish_partition(store: storage.Store, dt: str, staged_key: str) -> dict:
    """Check the staged Parquet and make it the only object of curated/books/dt=<dt>/.

    Idempotent: the key depends only on the date, and anything else in the partition is removed,
    so a re-run replaces the data and never duplicates it.
    """
    data = store.get(staged_key)
    table = parse.read_parquet(data)
    if not table.schema.equals(parse.SCHEMA):
        raise ValueError(f"{staged_key} has schema {table.schema}, expected {parse.SCHEMA}")
    key = storage.curated_key(dt)
    removed = store.replace_prefix(storage.curated_prefix(dt), {key: data})
    log.info("Published %d rows (%d bytes) to %s, removed %s", table.num_rows, len(data), key, removed or "nothing")
    return {"dt": dt, "key": key, "rows": table.num_rows, "bytes": len(data), "removed": removed}
