"""Parse books.toscrape.com HTML (BeautifulSoup) into validated rows and a typed Arrow table."""

from __future__ import annotations

import io
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from urllib.parse import urljoin

import pyarrow as pa
import pyarrow.parquet as pq
from bs4 import BeautifulSoup

PARSER = "html.parser"  # the standard library's parser: no lxml needed on the workers

RATINGS = {"One": 1, "Two": 2, "Three": 3, "Four": 4, "Five": 5}
CURRENCIES = {"£": "GBP", "$": "USD", "€": "EUR"}
PRICE = re.compile(r"^(?P<symbol>\D*?)\s*(?P<amount>\d{1,8}(?:\.\d{1,2})?)$")
AVAILABILITY = re.compile(r"^(?:(?P<out>out of stock)|in stock(?: \((?P<count>\d+) available\))?)$", re.IGNORECASE)

SCHEMA = pa.schema(
    [
        pa.field("upc", pa.string(), nullable=False),
        pa.field("title", pa.string(), nullable=False),
        pa.field("price", pa.decimal128(10, 2), nullable=False),
        pa.field("currency", pa.string(), nullable=False),
        pa.field("rating", pa.int8(), nullable=False),
        pa.field("in_stock", pa.bool_(), nullable=False),
        pa.field("available", pa.int32(), nullable=True),  # copies in stock; null when the page gives no count
        pa.field("category", pa.string(), nullable=False),
        pa.field("url", pa.string(), nullable=False),
        pa.field("scraped_at", pa.timestamp("us", tz="UTC"), nullable=False),
    ]
)


class InvalidBook(ValueError):
    """A book page that cannot become a valid row; `reason` is short and stable, for counting."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


@dataclass(frozen=True)
class Book:
    upc: str
    title: str
    price: Decimal
    currency: str
    rating: int
    in_stock: bool
    available: int | None
    category: str
    url: str
    scraped_at: datetime


def _text(node) -> str:
    return " ".join(node.get_text(" ", strip=True).split()) if node is not None else ""


def catalogue_links(html: bytes | str, page_url: str) -> list[str]:
    """Absolute URLs of the book pages a catalogue page links to, in page order, without repeats."""
    soup = BeautifulSoup(html, PARSER)
    links = [urljoin(page_url, a["href"]) for a in soup.select("article.product_pod h3 a[href]")]
    return list(dict.fromkeys(links))


def parse_price(text: str) -> tuple[Decimal, str]:
    """`£51.77` -> (Decimal('51.77'), 'GBP'); also accepts the `Â£` of UTF-8 read as Latin-1."""
    if not text:
        raise InvalidBook("missing price")
    match = PRICE.match(text.replace("Â", "").strip())
    if not match:
        raise InvalidBook("bad price", repr(text))
    currency = CURRENCIES.get(match["symbol"].strip())
    if currency is None:
        raise InvalidBook("unknown currency", repr(text))
    try:
        return Decimal(match["amount"]).quantize(Decimal("0.01")), currency
    except InvalidOperation as exc:
        raise InvalidBook("bad price", repr(text)) from exc


def parse_rating(classes: Iterable[str] | None) -> int:
    """`['star-rating', 'Three']` -> 3."""
    if classes is None:
        raise InvalidBook("missing rating")
    words = [name for name in classes if name != "star-rating"]
    if len(words) != 1 or words[0] not in RATINGS:
        raise InvalidBook("bad rating", " ".join(classes))
    return RATINGS[words[0]]


def parse_availability(text: str) -> tuple[bool, int | None]:
    """`In stock (22 available)` -> (True, 22); `Out of stock` -> (False, 0); `In stock` -> (True, None)."""
    if not text:
        raise InvalidBook("missing availability")
    match = AVAILABILITY.match(text)
    if not match:
        raise InvalidBook("bad availability", repr(text))
    if match["out"]:
        return False, 0
    return True, int(match["count"]) if match["count"] else None


def parse_book(html: bytes | str, url: str, scraped_at: datetime) -> Book:
    """One book page -> Book; raises InvalidBook naming the first field that is missing or malformed."""
    soup = BeautifulSoup(html, PARSER)
    main = soup.select_one("div.product_main")
    if main is None:
        raise InvalidBook("not a book page")
    title = _text(main.find("h1"))
    if not title:
        raise InvalidBook("missing title")
    price, currency = parse_price(_text(main.select_one("p.price_color")))
    rating_node = main.select_one("p.star-rating")
    rating = parse_rating(rating_node.get("class") if rating_node is not None else None)
    in_stock, available = parse_availability(_text(main.select_one("p.availability")))
    crumbs = soup.select("ul.breadcrumb > li")
    # Home > Books > <category> > <title>
    category = _text(crumbs[2]) if len(crumbs) >= 4 else ""
    if not category:
        raise InvalidBook("missing category")
    info = {_text(row.th): _text(row.td) for row in soup.select("table.table-striped tr") if row.th and row.td}
    upc = info.get("UPC", "")
    if not upc:
        raise InvalidBook("missing upc")
    return Book(upc, title, price, currency, rating, in_stock, available, category, url, scraped_at)


def to_table(books: Iterable[Book]) -> pa.Table:
    """Rows -> Arrow table with SCHEMA (types and nullability enforced by pyarrow)."""
    return pa.Table.from_pylist([asdict(book) for book in books], schema=SCHEMA)


def to_parquet(table: pa.Table) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="snappy")
    return buffer.getvalue()


def read_parquet(data: bytes) -> pa.Table:
    return pq.read_table(io.BytesIO(data))


def reject(url: str, key: str, error: InvalidBook) -> Mapping[str, str]:
    return {"url": url, "key": key, "reason": error.reason, "detail": str(error)}
