"""Parsing: fixture pages in books.toscrape.com's real markup, valid and malformed, into typed rows."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pyarrow as pa
import pytest
from books_support import SITE
from etl.parse import (
    SCHEMA,
    Book,
    InvalidBook,
    catalogue_links,
    parse_availability,
    parse_book,
    parse_price,
    parse_rating,
    read_parquet,
    to_parquet,
    to_table,
)

SCRAPED_AT = datetime(2026, 3, 14, 6, 30, tzinfo=UTC)
BASE = "https://books.toscrape.com/catalogue/"


def page(slug: str) -> str:
    return (SITE / "catalogue" / slug / "index.html").read_text(encoding="utf-8")


def parse(slug: str, html: str | None = None) -> Book:
    return parse_book((html if html is not None else page(slug)).encode(), f"{BASE}{slug}/index.html", SCRAPED_AT)


def test_catalogue_page_links_to_its_books_in_order():
    html = (SITE / "catalogue" / "page-1.html").read_bytes()
    assert catalogue_links(html, BASE + "page-1.html") == [
        BASE + "a-light-in-the-attic_1000/index.html",
        BASE + "tipping-the-velvet_999/index.html",
        BASE + "soumission_998/index.html",
        BASE + "sharp-objects_997/index.html",
    ]


def test_book_page_becomes_a_typed_row():
    assert parse("a-light-in-the-attic_1000") == Book(
        upc="a897fe39b1053632",
        title="A Light in the Attic",
        price=Decimal("51.77"),
        currency="GBP",
        rating=3,
        in_stock=True,
        available=22,
        category="Poetry",
        url=BASE + "a-light-in-the-attic_1000/index.html",
        scraped_at=SCRAPED_AT,
    )


def test_out_of_stock_book_has_no_copies():
    book = parse("the-boys-in-the-boat-nine-americans-and-their-epic-quest-for-gold-at-the-1936-berlin-olympics_992")
    assert (book.in_stock, book.available, book.category, book.rating) == (False, 0, "Default", 4)


@pytest.mark.parametrize(
    ("slug", "reason"),
    [
        ("the-requiem-red_995", "missing price"),
        ("the-dirty-little-secrets-of-getting-your-dream-job_994", "bad rating"),
        ("starving-hearts-triangular-trade-trilogy-1_990", "bad price"),
    ],
)
def test_malformed_fixture_pages_are_rejected_with_a_reason(slug, reason):
    with pytest.raises(InvalidBook) as error:
        parse(slug)
    assert error.value.reason == reason


VALID = "a-light-in-the-attic_1000"


@pytest.mark.parametrize(
    ("old", "new", "reason"),
    [
        ("<h1>A Light in the Attic</h1>", "<h1> </h1>", "missing title"),
        ('<p class="price_color">£51.77</p>', '<p class="price_color">¥51.77</p>', "unknown currency"),
        ('<p class="price_color">£51.77</p>', '<p class="price_color">£51,77</p>', "bad price"),
        ('<p class="star-rating Three">', '<p class="star-rating">', "bad rating"),
        ('<p class="star-rating Three">', '<p class="star-rating Three Four">', "bad rating"),
        ('<p class="star-rating Three">', '<p class="stars Three">', "missing rating"),
        ("        In stock (22 available)\n</p>", "        Available soon\n</p>", "bad availability"),
        ('<p class="instock availability">', '<p class="instock">', "missing availability"),
        ('<a href="../category/books/poetry_23/index.html">Poetry</a>\n    </li>', "</li>", "missing category"),
        ("<th>UPC</th><td>a897fe39b1053632</td>", "<th>UPC</th><td></td>", "missing upc"),
        ('<div class="col-sm-6 product_main">', '<div class="col-sm-6">', "not a book page"),
    ],
)
def test_bad_input_is_rejected_with_the_field_that_is_wrong(old, new, reason):
    html = page(VALID)
    assert html.count(old) == 1, f"fixture no longer contains {old!r}"
    with pytest.raises(InvalidBook) as error:
        parse(VALID, html.replace(old, new))
    assert error.value.reason == reason


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("£51.77", (Decimal("51.77"), "GBP")),
        ("Â£51.77", (Decimal("51.77"), "GBP")),  # UTF-8 read as Latin-1, as requests does without a charset
        ("$ 7", (Decimal("7.00"), "USD")),
        ("€0.5", (Decimal("0.50"), "EUR")),
    ],
)
def test_parse_price(text, expected):
    assert parse_price(text) == expected


def test_parse_rating_and_availability():
    assert [parse_rating(["star-rating", word]) for word in ("One", "Two", "Three", "Four", "Five")] == [1, 2, 3, 4, 5]
    assert parse_availability("In stock (3 available)") == (True, 3)
    assert parse_availability("In stock") == (True, None)
    assert parse_availability("Out of stock") == (False, 0)


def test_table_has_the_explicit_schema_and_survives_parquet():
    books = [parse(VALID), parse("tipping-the-velvet_999")]
    table = read_parquet(to_parquet(to_table(books)))
    assert table.schema.equals(SCHEMA)
    assert [(field.name, str(field.type), field.nullable) for field in table.schema] == [
        ("upc", "string", False),
        ("title", "string", False),
        ("price", "decimal128(10, 2)", False),
        ("currency", "string", False),
        ("rating", "int8", False),
        ("in_stock", "bool", False),
        ("available", "int32", True),
        ("category", "string", False),
        ("url", "string", False),
        ("scraped_at", "timestamp[us, tz=UTC]", False),
    ]
    assert table.column("price").to_pylist() == [Decimal("51.77"), Decimal("53.74")]
    assert table.column("scraped_at").to_pylist() == [SCRAPED_AT, SCRAPED_AT]


def test_table_refuses_values_of_the_wrong_type():
    book = parse(VALID)
    with pytest.raises((pa.ArrowInvalid, pa.ArrowTypeError)):
        to_table([Book(**{**book.__dict__, "rating": "three"})])
