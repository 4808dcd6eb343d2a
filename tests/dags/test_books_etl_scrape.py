"""Scrape step: polite HTTP client and raw HTML storage, against the fixture site on a local server."""

from __future__ import annotations

import hashlib
import json

import pytest
from etl.config import USER_AGENT, ScrapeSettings
from etl.scrape import FetchError, PoliteClient, ScrapeError, book_slug, catalogue_url, scrape_page

DT = "2026-03-14"


class FakeTime:
    """A clock that moves only when the client sleeps; records every sleep."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(round(seconds, 3))
        self.now += seconds


def settings(site, **overrides) -> ScrapeSettings:
    values = {"base_url": site.url, "request_delay": 0.0, "timeout": 2.0, "max_attempts": 3, "backoff": 0.5}
    return ScrapeSettings(**{**values, **overrides})


def client(site, fake: FakeTime, **overrides) -> PoliteClient:
    return PoliteClient(settings(site, **overrides), sleep=fake.sleep, clock=fake.clock)


def test_client_identifies_the_project_in_user_agent(site):
    body = PoliteClient(settings(site)).get(site.url + "catalogue/page-1.html")
    assert b'<article class="product_pod">' in body
    assert site.user_agents == {USER_AGENT}
    assert "airflow-ecs" in USER_AGENT


def test_client_waits_the_request_delay_between_requests(site):
    fake = FakeTime()
    polite = client(site, fake, request_delay=1.5)
    for page in (1, 2, 3):
        polite.get(catalogue_url(site.url, page))
    assert fake.sleeps == [1.5, 1.5]
    assert polite.requests == 3


def test_client_retries_server_errors_with_exponential_backoff(site):
    site.fail("/catalogue/page-1.html", 500, 502, "ok")
    fake = FakeTime()
    body = client(site, fake, backoff=0.5).get(catalogue_url(site.url, 1))
    assert b"product_pod" in body
    assert site.hits["/catalogue/page-1.html"] == 3
    assert fake.sleeps == [0.5, 1.0]


def test_client_honours_retry_after(site):
    site.fail("/catalogue/page-1.html", 429, "ok")
    fake = FakeTime()
    client(site, fake, backoff=0.1).get(catalogue_url(site.url, 1))
    assert fake.sleeps == [site.retry_after]


def test_client_gives_up_after_max_attempts_with_a_clear_message(site):
    site.fail("/catalogue/page-2.html", 500)
    fake = FakeTime()
    url = catalogue_url(site.url, 2)
    with pytest.raises(FetchError) as error:
        client(site, fake, max_attempts=3, backoff=0.5).get(url)
    assert str(error.value) == f"GET {url} failed after 3 tries: HTTP 500 Internal Server Error"
    assert site.hits["/catalogue/page-2.html"] == 3
    assert fake.sleeps == [0.5, 1.0]


def test_slow_page_times_out_and_is_retried_then_fails(site):
    site.fail("/catalogue/page-3.html", "slow")
    fake = FakeTime()
    url = catalogue_url(site.url, 3)
    timed_out = rf"^GET {url} failed after 2 tries: (ReadTimeout|ConnectionError): .*timed out"
    with pytest.raises(FetchError, match=timed_out):
        client(site, fake, timeout=0.2, max_attempts=2).get(url)
    assert site.hits["/catalogue/page-3.html"] == 2


def test_client_does_not_retry_a_missing_page(site):
    url = catalogue_url(site.url, 99)
    with pytest.raises(FetchError, match=r"HTTP 404 .*\(not retried\)$"):
        client(site, FakeTime()).get(url)
    assert site.hits["/catalogue/page-99.html"] == 1


def test_scrape_page_stores_catalogue_books_and_manifest(site, memory_store):
    summary = scrape_page(1, settings(site), memory_store, DT)

    prefix = f"raw/{DT}/page-1/"
    assert memory_store.list("") == [
        f"{prefix}books/a-light-in-the-attic_1000.html",
        f"{prefix}books/sharp-objects_997.html",
        f"{prefix}books/soumission_998.html",
        f"{prefix}books/tipping-the-velvet_999.html",
        f"{prefix}catalogue.html",
        f"{prefix}manifest.json",
    ]
    manifest = json.loads(memory_store.get(f"{prefix}manifest.json"))
    assert [book["url"] for book in manifest["books"]] == [
        f"{site.url}catalogue/a-light-in-the-attic_1000/index.html",
        f"{site.url}catalogue/tipping-the-velvet_999/index.html",
        f"{site.url}catalogue/soumission_998/index.html",
        f"{site.url}catalogue/sharp-objects_997/index.html",
    ]
    assert b"<h1>Sharp Objects</h1>" in memory_store.get(f"{prefix}books/sharp-objects_997.html")
    assert summary == {
        "page": 1,
        "manifest_key": f"{prefix}manifest.json",
        "books": 4,
        "bytes": sum(len(memory_store.get(key)) for key in memory_store.list(prefix)),
        "removed": 0,
    }
    assert sum(site.hits.values()) == 5  # one catalogue page and four book pages, each fetched once


def test_rescraping_a_page_removes_objects_it_no_longer_has(site, memory_store):
    stale = f"raw/{DT}/page-2/books/a-book-that-left-the-catalogue_1.html"
    memory_store.put(stale, b"<html></html>")
    memory_store.put(f"raw/{DT}/page-1/catalogue.html", b"another page: untouched")

    summary = scrape_page(2, settings(site), memory_store, DT)

    assert summary["removed"] == 1
    assert stale not in memory_store.objects
    assert memory_store.get(f"raw/{DT}/page-1/catalogue.html") == b"another page: untouched"


def test_a_failing_book_page_fails_the_whole_page_and_stores_nothing(site, memory_store):
    site.fail("/catalogue/soumission_998/index.html", 502)
    with pytest.raises(FetchError, match=r"soumission_998/index.html failed after 2 tries: HTTP 502"):
        scrape_page(1, settings(site, max_attempts=2, backoff=0.0), memory_store, DT)
    assert memory_store.objects == {}


def test_a_catalogue_page_without_books_is_an_error(site, memory_store):
    with pytest.raises(ScrapeError, match="lists no books: has the page layout changed"):
        scrape_page(1, settings(site, base_url=site.url + "redesigned/"), memory_store, DT)


@pytest.mark.parametrize(
    ("url", "slug"),
    [
        ("https://books.toscrape.com/catalogue/a-light-in-the-attic_1000/index.html", "a-light-in-the-attic_1000"),
        ("https://books.toscrape.com/catalogue/sharp-objects_997/", "sharp-objects_997"),
        ("https://books.toscrape.com/catalogue/l'été à paris_12/index.html?x=1", "l-t-paris_12"),
        ("https://books.toscrape.com/index.html", "sha1:"),  # no book folder: a hash of the URL
    ],
)
def test_book_slug(url, slug):
    if slug == "sha1:":
        slug = hashlib.sha1(url.encode()).hexdigest()[:12]
    assert book_slug(url) == slug


def test_catalogue_url_is_relative_to_the_base_url():
    assert catalogue_url("https://books.toscrape.com/", 7) == "https://books.toscrape.com/catalogue/page-7.html"
    assert catalogue_url("http://127.0.0.1:8000/mirror/", 1) == "http://127.0.0.1:8000/mirror/catalogue/page-1.html"
