"""Raw HTML of one run (read back from S3, so this re-runs without re-scraping) -> staged Parquet."""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import datetime

from etl import parse, storage

log = logging.getLogger(__name__)


def parse_pages(store: storage.Store, dt: str, pages: Iterable[Mapping]) -> dict:
    """Parse every book page the scrape manifests list; stage the valid rows as Parquet.

    Invalid rows are not dropped silently: each is logged, written to staging/<dt>/rejects.json
    and counted by reason in the returned summary (which goes to XCom and into the report).
    """
    books: list[parse.Book] = []
    rejects: list[Mapping[str, str]] = []
    seen: set[str] = set()
    pages = sorted(pages, key=lambda page: page["page"])
    for page in pages:
        manifest = json.loads(store.get(page["manifest_key"]))
        for entry in manifest["books"]:
            url, key = entry["url"], entry["key"]
            if url in seen:
                rejects.append(parse.reject(url, key, parse.InvalidBook("duplicate", "listed twice")))
                continue
            seen.add(url)
            try:
                books.append(parse.parse_book(store.get(key), url, datetime.fromisoformat(entry["fetched_at"])))
            except parse.InvalidBook as exc:
                rejects.append(parse.reject(url, key, exc))
    for row in rejects:
        log.warning("Invalid row %s (%s): %s", row["url"], row["key"], row["detail"])
    by_reason = dict(sorted(Counter(row["reason"] for row in rejects).items()))
    if not books:
        raise ValueError(f"no valid rows in {len(pages)} page(s) for {dt}; invalid rows by reason: {by_reason}")
    table = parse.to_table(books)
    parquet_key = storage.staging_key(dt, "books.parquet")
    rejects_key = storage.staging_key(dt, "rejects.json")
    store.put(parquet_key, parse.to_parquet(table))
    store.put(rejects_key, json.dumps(rejects, indent=1).encode())
    log.info("Parsed %d valid and %d invalid rows %s into %s", table.num_rows, len(rejects), by_reason, parquet_key)
    return {
        "dt": dt,
        "pages": len(pages),
        "rows": table.num_rows,
        "invalid": len(rejects),
        "invalid_by_reason": by_reason,
        "parquet_key": parquet_key,
        "rejects_key": rejects_key,
    }
