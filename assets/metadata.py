"""Metadata shown in the Dagster UI."""

from __future__ import annotations

import polars as pl

RUN_BATCHES = "batch_ids"  # `ingest_log`'s metadata: the batches its run committed, for the in-run checks
RUN_EVALUATION = "evaluation"  # `triggers`' metadata: the engine run its run committed, for the in-run checks


def markdown_table(frame: pl.DataFrame) -> str:
    """A small frame as a markdown table (for the UI's metadata panel)."""
    head = "| " + " | ".join(frame.columns) + " |\n|" + "---|" * frame.width + "\n"
    body = "".join(
        "| " + " | ".join("" if v is None else str(v) for v in row) + " |\n" for row in frame.iter_rows()
    )
    return head + body
