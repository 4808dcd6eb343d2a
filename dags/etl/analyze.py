"""Aggregates, a PNG chart and a Markdown report of one published partition."""

from __future__ import annotations

import io
import logging
from collections.abc import Mapping
from typing import Any

import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from etl import parse, storage

log = logging.getLogger(__name__)

TOP_CATEGORIES = 15  # categories shown in the chart, by number of books


def load_frame(parquet: bytes) -> pd.DataFrame:
    frame = parse.read_parquet(parquet).to_pandas()
    frame["price"] = frame["price"].astype(float)  # Decimal objects -> float64 for the statistics
    return frame


def _price_stats(prices: pd.Series) -> dict[str, float]:
    return {
        "min": round(float(prices.min()), 2),
        "median": round(float(prices.median()), 2),
        "mean": round(float(prices.mean()), 2),
        "max": round(float(prices.max()), 2),
    }


def _groups(frame: pd.DataFrame, column: str) -> list[dict[str, Any]]:
    rows = []
    for value, group in frame.groupby(column, sort=True):
        rows.append(
            {
                column: value.item() if hasattr(value, "item") else value,  # numpy scalar -> int for XCom
                "books": len(group),
                **_price_stats(group["price"]),
                "in_stock_share": round(float(group["in_stock"].mean()), 4),
            }
        )
    return rows


def summarize(frame: pd.DataFrame) -> dict[str, Any]:
    """Price distribution overall, per category (most books first) and per rating; availability."""
    by_category = sorted(_groups(frame, "category"), key=lambda row: (-row["books"], row["category"]))
    return {
        "rows": len(frame),
        "currencies": sorted(frame["currency"].unique().tolist()),
        "price": _price_stats(frame["price"]),
        "in_stock_share": round(float(frame["in_stock"].mean()), 4),
        "copies_available": int(frame["available"].fillna(0).sum()),
        "by_category": by_category,
        "by_rating": _groups(frame, "rating"),
    }


def render_chart(frame: pd.DataFrame, title: str) -> bytes:
    """Two panels: price by star rating (box plot), median price of the largest categories (bars)."""
    figure = Figure(figsize=(12, 5), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    by_rating, by_category = figure.subplots(1, 2, width_ratios=[2, 3])
    ratings = sorted(frame["rating"].unique())
    by_rating.boxplot(
        [frame.loc[frame["rating"] == r, "price"] for r in ratings], tick_labels=[str(r) for r in ratings]
    )
    by_rating.set(title="Price by rating", xlabel="stars", ylabel="price")
    counts = frame["category"].value_counts()
    top = counts.sort_index().sort_values(ascending=False, kind="stable").index[:TOP_CATEGORIES]
    medians = frame[frame["category"].isin(top)].groupby("category")["price"].median().reindex(top)[::-1]
    by_category.barh(medians.index, medians.to_numpy(), color="tab:blue")
    by_category.set(title=f"Median price, {len(top)} largest categories", xlabel="price")
    figure.suptitle(title)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def _share(value: float) -> str:
    return f"{value * 100:.1f} %"


def _table(rows: list[dict[str, Any]], key: str, label: str) -> list[str]:
    lines = [
        f"| {label} | books | min | median | mean | max | in stock |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row[key]} | {row['books']} | {row['min']:.2f} | {row['median']:.2f} | {row['mean']:.2f} "
            f"| {row['max']:.2f} | {_share(row['in_stock_share'])} |"
        )
    return lines


def render_report(dt: str, summary: Mapping[str, Any], quality: Mapping[str, Any], data_key: str) -> str:
    """Markdown report: totals, data quality, price distribution per category and per rating."""
    price = summary["price"]
    currency = ", ".join(summary["currencies"])
    invalid = quality.get("invalid_by_reason") or {}
    lines = [
        f"# Books catalogue report, {dt}",
        "",
        f"Data: `{data_key}`. Chart: ![chart](chart.png)",
        "",
        "## Totals",
        "",
        f"- Valid rows: {summary['rows']}",
        f"- Invalid rows: {quality.get('invalid', 0)}"
        + (" (" + ", ".join(f"{reason}: {count}" for reason, count in invalid.items()) + ")" if invalid else ""),
        f"- Price ({currency}): min {price['min']:.2f}, median {price['median']:.2f}, "
        f"mean {price['mean']:.2f}, max {price['max']:.2f}",
        f"- In stock: {_share(summary['in_stock_share'])} of books, {summary['copies_available']} copies available",
        "",
        "## Price by category",
        "",
        *_table(summary["by_category"], "category", "category"),
        "",
        "## Price by rating",
        "",
        *_table(summary["by_rating"], "rating", "stars"),
        "",
    ]
    return "\n".join(lines)


def write_report(store: storage.Store, dt: str, data_key: str, quality: Mapping[str, Any]) -> dict[str, Any]:
    """Read the published partition, write reports/dt=<dt>/report.md and chart.png; return the aggregates."""
    frame = load_frame(store.get(data_key))
    summary = summarize(frame)
    chart = render_chart(frame, f"books.toscrape.com, {dt}: {summary['rows']} books")
    report = render_report(dt, summary, quality, data_key)
    prefix = storage.report_prefix(dt)
    store.replace_prefix(prefix, {prefix + "report.md": report.encode(), prefix + "chart.png": chart})
    log.info("Wrote %sreport.md and chart.png (%d bytes)", prefix, len(chart))
    return {"dt": dt, "report_key": prefix + "report.md", "chart_key": prefix + "chart.png", **summary}
