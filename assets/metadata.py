"""Metadata shown in the Dagster UI."""

from __future__ import annotations

import polars as pl


def markdown_table(frame: pl.DataFrame) -> str:
    """A small frame as a markdown table (for the UI's metadata panel)."""
    head = "| " + " | ".join(frame.columns) + " |\n|" + "---|" * frame.width + "\n"
    body = "".join(
        "| " + " | ".join("" if v is None else str(v) for v in row) + " |\n" for row in frame.iter_rows()
    )
    return head + body
