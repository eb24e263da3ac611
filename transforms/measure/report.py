"""The experiments as people read them: a text or markdown table and JSON rows (pure)."""

from __future__ import annotations

import base64
import math
from datetime import date, datetime, timedelta
from typing import Any

import polars as pl

HEADERS = (
    "kind",
    "arm",
    "exposed",
    "sent",
    "clicked",
    "click rate [95% CI]",
    "converted",
    "conversion [95% CI]",
    "revenue/shopper [95% CI]",
    "uplift pts [95% CI]",
    "p",
    "revenue uplift [95% CI]",
    "note",
)


def _pct(value: float | None) -> str:
    return "" if value is None else f"{value * 100:.1f}%"


def _rate(value: float | None, low: float | None, high: float | None) -> str:
    return "" if value is None else f"{_pct(value)} [{_pct(low)}, {_pct(high)}]"


def _points(value: float | None, low: float | None, high: float | None) -> str:
    if value is None or low is None or high is None:
        return ""
    return f"{value * 100:+.1f} [{low * 100:+.1f}, {high * 100:+.1f}]"


def _money(value: float | None, low: float | None, high: float | None, sign: str = "") -> str:
    if value is None:
        return ""
    if low is None or high is None:  # an arm of one shopper, or nothing spent in the kind: no interval
        return f"{value:{sign}.2f} [n/a]"
    return f"{value:{sign}.2f} [{low:{sign}.2f}, {high:{sign}.2f}]"


def _p(value: float | None) -> str:
    if value is None:
        return ""
    return "<0.001" if value < 0.001 else f"{value:.3f}"


def cells(pooled: pl.DataFrame) -> list[list[str]]:
    """One row of display strings per (kind, arm)."""
    rows = []
    for r in pooled.iter_rows(named=True):
        rows.append(
            [
                r["kind"],
                r["arm"],
                str(r["exposed"]),
                str(r["sent"]),
                str(r["clicked"]),
                _rate(r["click_rate"], r["click_low"], r["click_high"]),
                str(r["converted"]),
                _rate(r["conversion_rate"], r["conversion_low"], r["conversion_high"]),
                _money(r["revenue_per_shopper"], r["revenue_low"], r["revenue_high"]),
                _points(r["uplift"], r["uplift_low"], r["uplift_high"]),
                _p(r["p_value"]),
                _money(r["revenue_uplift"], r["revenue_uplift_low"], r["revenue_uplift_high"], "+"),
                r["note"] or "",
            ]
        )
    return rows


def currency_lines(pooled: pl.DataFrame) -> list[str]:
    """Which currency the revenue figures are in (none when no order names one)."""
    codes = sorted(set(pooled["currency"].drop_nulls()))
    if not codes:
        return []
    shown = ", ".join(codes)  # one: every figure comes from the same orders
    return [
        f"revenue in {shown} (the currency most orders name); orders in others are conversions, not revenue"
    ]


EMPTY = "No shopper has been assigned to an experiment yet."


def experiments_markdown(pooled: pl.DataFrame) -> str:
    """A markdown table of the pooled figures (the asset's metadata in the Dagster UI)."""
    if pooled.height == 0:
        return EMPTY
    head = "| " + " | ".join(HEADERS) + " |\n|" + "---|" * len(HEADERS) + "\n"
    body = "".join("| " + " | ".join(c.replace("|", "/") for c in row) + " |\n" for row in cells(pooled))
    return head + body + "".join(f"\n{line}\n" for line in currency_lines(pooled))


MAX_INLINE_PNG = 1_000_000  # bytes: a bigger picture is left out of the markdown (its file still has it)


def png_markdown(png: bytes, alt: str = "What the emails earn") -> str | None:
    """The PNG as a markdown image with a `data:` URI (the Dagster UI renders it on the asset's page;
    it allows `data:` image sources), or None when it is too big to carry in metadata."""
    if len(png) > MAX_INLINE_PNG or not png.startswith(b"\x89PNG"):
        return None
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})"


def experiments_text(pooled: pl.DataFrame, since: str | None = None) -> str:
    """An aligned text table of the pooled figures, notes below it (`lakemail report`; `since`: its
    `--since`, the day the figures start, as written)."""
    if pooled.height == 0:  # with --since, shoppers assigned before it may well be there
        return f"No shopper has been assigned to an experiment from {since} on." if since else EMPTY
    rows = [list(HEADERS[:-1])] + [row[:-1] for row in cells(pooled)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    notes = [f"{r['kind']} {r['arm']}: {r['note']}" for r in pooled.iter_rows(named=True) if r["note"]]
    return "\n".join(lines + ["", *currency_lines(pooled)] + (["", *notes] if notes else []))


def duration_text(span: timedelta) -> str:
    """`5d`, `36h`, `90m`, `45s`: as LAKEMAIL_ATTRIBUTION_WINDOW is written (and read back)."""
    seconds = span.total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:.6f}".rstrip("0").rstrip(".") + "s"  # microseconds, as timedelta keeps them


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def experiments_json(pooled: pl.DataFrame) -> list[dict[str, Any]]:
    """The pooled figures as JSON-ready rows (rates and their intervals as fractions, revenue in `currency`,
    the shop's)."""
    return [{k: _plain(v) for k, v in row.items()} for row in pooled.drop("day").iter_rows(named=True)]
