"""Scrape one catalogue page of books.toscrape.com and the book pages it links to; keep the raw HTML.

Politeness: a User-Agent naming the project, at most one request per `request_delay` seconds per
task, a timeout on every request, and a bounded number of tries per URL with exponential backoff
(honouring Retry-After). Past that the task fails and Airflow's own retries take over.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from urllib.parse import urljoin, urlsplit

import requests

from etl import parse, storage
from etl.config import USER_AGENT, ScrapeSettings

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
MAX_RETRY_AFTER = 60.0  # seconds; a longer Retry-After is capped, the task retry covers the rest


class FetchError(RuntimeError):
    """A URL could not be fetched; the message names the URL, the tries and the last problem."""


class ScrapeError(RuntimeError):
    """A fetched page is not what the scraper expects."""


class PoliteClient:
    """HTTP GET with a User-Agent, a minimum delay between requests, a timeout and bounded retries."""

    def __init__(
        self,
        settings: ScrapeSettings,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.session = session or requests.Session()
        self.session.headers["User-Agent"] = USER_AGENT
        self.sleep = sleep
        self.clock = clock
        self.requests = 0
        self._last_request: float | None = None

    def close(self) -> None:
        self.session.close()

    def get(self, url: str) -> bytes:
        """Body of a 200 answer; FetchError after `max_attempts` failed tries or on a non-retryable status."""
        attempts = self.settings.max_attempts
        for attempt in range(1, attempts + 1):
            self._wait_turn()
            retry_after = None
            try:
                response = self.session.get(url, timeout=self.settings.timeout)
            except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as exc:
                problem = f"{type(exc).__name__}: {exc}"
            else:
                if response.status_code == 200:
                    return response.content
                problem = f"HTTP {response.status_code} {response.reason}"
                if response.status_code not in RETRY_STATUSES:
                    raise FetchError(f"GET {url} failed: {problem} (not retried)")
                retry_after = _retry_after_seconds(response.headers.get("Retry-After"))
            if attempt == attempts:
                break
            delay = self.settings.backoff * 2 ** (attempt - 1)
            if retry_after is not None:
                delay = max(delay, min(retry_after, MAX_RETRY_AFTER))
            log.warning("GET %s: %s; try %d of %d in %.1f s", url, problem, attempt + 1, attempts, delay)
            self.sleep(delay)
        raise FetchError(f"GET {url} failed after {attempts} tries: {problem}")

    def _wait_turn(self) -> None:
        now = self.clock()
        if self._last_request is not None:
            wait = self._last_request + self.settings.request_delay - now
            if wait > 0:
                self.sleep(wait)
                now = self.clock()
        self._last_request = now
        self.requests += 1


def _retry_after_seconds(value: str | None) -> float | None:
    if value and value.strip().isdigit():
        return float(value.strip())
    return None


def catalogue_url(base_url: str, page: int) -> str:
    return urljoin(base_url, f"catalogue/page-{page}.html")


def book_slug(url: str) -> str:
    """`.../catalogue/a-light-in-the-attic_1000/index.html` -> `a-light-in-the-attic_1000`."""
    parts = [part for part in urlsplit(url).path.split("/") if part and part != "index.html"]
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", parts[-1] if parts else "").strip("-.")
    return slug or _short_hash(url)


def _short_hash(url: str) -> str:
    return hashlib.sha1(url.encode(), usedforsecurity=False).hexdigest()[:12]


def scrape_page(
    page: int,
    settings: ScrapeSettings,
    store: storage.Store,
    dt: str,
) -> dict:
    """Fetch catalogue page `page` and its book pages; store them under raw/<dt>/page-<page>/.

    Nothing is stored unless every page was fetched: the task then fails and Airflow retries it.
    Returns a small summary for XCom; the manifest in S3 lists every stored book page.
    """
    client = PoliteClient(settings)
    try:
        url = catalogue_url(settings.base_url, page)
        catalogue = client.get(url)
        links = parse.catalogue_links(catalogue, url)
        if not links:
            raise ScrapeError(f"catalogue page {page} ({url}) lists no books: has the page layout changed?")
        prefix = storage.raw_prefix(dt, page)
        objects = {prefix + "catalogue.html": catalogue}
        books = []
        for link in links:
            body = client.get(link)
            key = f"{prefix}books/{book_slug(link)}.html"
            if key in objects:  # two URLs with the same slug: keep both
                key = f"{prefix}books/{book_slug(link)}-{_short_hash(link)}.html"
            objects[key] = body
            books.append({"url": link, "key": key, "fetched_at": datetime.now(UTC).isoformat()})
        requests_made = client.requests
    finally:
        client.close()
    manifest = {"page": page, "url": url, "dt": dt, "books": books}
    manifest_key = prefix + "manifest.json"
    objects[manifest_key] = json.dumps(manifest, indent=1).encode()
    removed = store.replace_prefix(prefix, objects)
    size = sum(len(data) for data in objects.values())
    log.info(
        "Page %d: stored %d book pages (%d bytes, %d requests) under %s", page, len(books), size, requests_made, prefix
    )
    return {"page": page, "manifest_key": manifest_key, "books": len(books), "bytes": size, "removed": len(removed)}
