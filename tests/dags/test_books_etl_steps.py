"""Transform, upload and analyze as plain functions, on the fixture site's raw HTML (no scheduler)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pyarrow as pa
import pytest
from books_support import BUCKET, EXPECTED_INVALID, EXPECTED_REPORT_LINES, EXPECTED_SUMMARY, PNG_MAGIC, MemoryStore
from etl import config, parse
from etl.analyze import load_frame, render_chart, render_report, summarize, write_report
from etl.config import ScrapeSettings, choose_bucket, partition_date
from etl.scrape import scrape_page
from etl.storage import S3Store
from etl.transform import parse_pages
from etl.upload import publish_partition

DT = "2026-03-14"


@pytest.fixture
def scraped(site) -> tuple[MemoryStore, list[dict]]:
    """The raw HTML of the three fixture catalogue pages, as the scrape tasks leave it."""
    store = MemoryStore()
    settings = ScrapeSettings(base_url=site.url, request_delay=0.0, timeout=2.0, max_attempts=1)
    pages = [scrape_page(page, settings, store, DT) for page in (1, 2, 3)]
    site.hits.clear()
    return store, pages


def test_transform_stages_valid_rows_and_counts_invalid_ones(scraped, site):
    store, pages = scraped
    result = parse_pages(store, DT, pages)

    assert result == {
        "dt": DT,
        "pages": 3,
        "rows": 9,
        "invalid": 3,
        "invalid_by_reason": EXPECTED_INVALID,
        "parquet_key": f"staging/{DT}/books.parquet",
        "rejects_key": f"staging/{DT}/rejects.json",
    }
    table = parse.read_parquet(store.get(result["parquet_key"]))
    assert table.num_rows == 9
    assert table.schema.equals(parse.SCHEMA)
    rejects = json.loads(store.get(result["rejects_key"]))
    assert sorted((row["url"].rsplit("/", 2)[-2], row["reason"]) for row in rejects) == [
        ("starving-hearts-triangular-trade-trilogy-1_990", "bad price"),
        ("the-dirty-little-secrets-of-getting-your-dream-job_994", "bad rating"),
        ("the-requiem-red_995", "missing price"),
    ]
    assert sum(site.hits.values()) == 0  # transform reads the stored HTML, it never scrapes


def test_transform_logs_every_invalid_row(scraped, caplog):
    store, pages = scraped
    with caplog.at_level("WARNING", logger="etl.transform"):
        parse_pages(store, DT, pages)
    assert len([record for record in caplog.records if record.getMessage().startswith("Invalid row")]) == 3


def test_transform_counts_a_book_listed_twice_once(scraped):
    store, pages = scraped
    result = parse_pages(store, DT, [*pages, pages[0]])
    assert (result["rows"], result["invalid_by_reason"]["duplicate"]) == (9, 4)


def test_transform_fails_when_no_row_is_valid(scraped):
    store, _ = scraped
    manifest = json.loads(store.get(f"raw/{DT}/page-2/manifest.json"))
    manifest["books"] = [book for book in manifest["books"] if "the-requiem-red" in book["url"]]
    store.put("raw/broken/manifest.json", json.dumps(manifest).encode())
    with pytest.raises(ValueError, match=r"no valid rows in 1 page\(s\) for 2026-03-14.*'missing price': 1"):
        parse_pages(store, DT, [{"page": 2, "manifest_key": "raw/broken/manifest.json"}])


def test_upload_publishes_the_partition_and_replaces_it_on_rerun(scraped):
    store, pages = scraped
    staged = parse_pages(store, DT, pages)
    store.put(f"curated/books/dt={DT}/part-0000.parquet", b"left over by an older layout")

    first = publish_partition(store, DT, staged["parquet_key"])
    second = publish_partition(store, DT, staged["parquet_key"])

    key = f"curated/books/dt={DT}/books.parquet"
    assert first["removed"] == [f"curated/books/dt={DT}/part-0000.parquet"]
    assert second["removed"] == []
    assert (first["key"], first["rows"], second["rows"]) == (key, 9, 9)
    assert store.list("curated/") == [key]
    assert store.get(key) == store.get(staged["parquet_key"])


def test_upload_refuses_a_table_with_another_schema(memory_store):
    memory_store.put("staging/x/books.parquet", parse.to_parquet(pa.table({"title": ["A"]})))
    with pytest.raises(ValueError, match="has schema"):
        publish_partition(memory_store, DT, "staging/x/books.parquet")
    assert memory_store.list("curated/") == []


@pytest.fixture
def published(scraped) -> tuple[MemoryStore, dict, dict]:
    store, pages = scraped
    staged = parse_pages(store, DT, pages)
    return store, staged, publish_partition(store, DT, staged["parquet_key"])


def test_aggregates_match_the_fixture_data(published):
    store, _, result = published
    assert summarize(load_frame(store.get(result["key"]))) == EXPECTED_SUMMARY


def test_report_shows_the_fixture_numbers(published):
    store, staged, result = published
    summary = summarize(load_frame(store.get(result["key"])))
    report = render_report(DT, summary, staged, result["key"]).splitlines()
    assert report[0] == f"# Books catalogue report, {DT}"
    for line in EXPECTED_REPORT_LINES:
        assert line in report


def test_chart_is_a_png(published):
    store, _, result = published
    chart = render_chart(load_frame(store.get(result["key"])), "fixture")
    assert chart.startswith(PNG_MAGIC)
    assert len(chart) > 10_000


def test_analyze_writes_report_and_chart_next_to_the_data(published):
    store, staged, result = published
    aggregates = write_report(store, DT, result["key"], staged)
    assert store.list(f"reports/dt={DT}/") == [f"reports/dt={DT}/chart.png", f"reports/dt={DT}/report.md"]
    assert store.get(f"reports/dt={DT}/chart.png").startswith(PNG_MAGIC)
    assert {key: aggregates[key] for key in EXPECTED_SUMMARY} == EXPECTED_SUMMARY
    json.dumps(aggregates)  # goes to XCom: plain JSON


def test_s3_store_on_the_amazon_provider(s3):
    store = S3Store(BUCKET)
    assert store.bucket_exists()
    assert not S3Store("no-such-bucket").bucket_exists()
    store.put("reports/dt=x/report.md", b"# hi")
    store.put("reports/dt=x/old.txt", b"stale")
    assert store.replace_prefix("reports/dt=x/", {"reports/dt=x/report.md": b"# hello"}) == ["reports/dt=x/old.txt"]
    assert store.list("reports/") == ["reports/dt=x/report.md"]
    assert store.get("reports/dt=x/report.md") == b"# hello"
    head = s3.head_object(Bucket=BUCKET, Key="reports/dt=x/report.md")
    assert head["ContentType"] == "text/markdown; charset=utf-8"
    with pytest.raises(ValueError, match="not under"):
        store.replace_prefix("reports/dt=y/", {"reports/dt=x/report.md": b""})


@pytest.mark.parametrize(
    ("param", "variable", "environ", "bucket"),
    [
        ("from-param", "from-variable", {"ETL_DATA_BUCKET": "from-env"}, "from-param"),
        ("", "from-variable", {"ETL_DATA_BUCKET": "from-env"}, "from-variable"),
        (" ", None, {"ETL_DATA_BUCKET": "from-env"}, "from-env"),
        ("", None, {}, config.DEFAULT_BUCKET),
    ],
)
def test_bucket_comes_from_param_then_variable_then_env_then_default(param, variable, environ, bucket):
    assert choose_bucket(param, variable, environ) == bucket


@pytest.mark.parametrize("name", ["Upper-Case", "a", "under_score", "s3://bucket"])
def test_invalid_bucket_name_is_refused(name):
    with pytest.raises(ValueError, match="not a valid S3 bucket name"):
        choose_bucket(name, None, {})


def test_partition_is_the_logical_date_or_run_after():
    run_after = datetime(2026, 3, 15, 0, 5, tzinfo=UTC)
    assert partition_date(datetime(2026, 3, 14, tzinfo=UTC), run_after) == "2026-03-14"
    assert partition_date(None, run_after) == "2026-03-15"


def test_scrape_settings_from_params():
    settings = ScrapeSettings.from_params(
        {"base_url": "http://mirror", "request_delay_seconds": 0, "http_max_attempts": 5, "http_backoff_seconds": 1}
    )
    assert settings == ScrapeSettings(
        base_url="http://mirror/",
        request_delay=0.0,
        timeout=config.DEFAULT_REQUEST_TIMEOUT,
        max_attempts=5,
        backoff=1.0,
    )
