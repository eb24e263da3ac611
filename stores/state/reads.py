"""What a micro-batch asks the state store instead of Delta: which landed files were taken (and with which
sha256), and which event ids were accepted before (dedupe with no date horizon). Each is a batch get of
the keys the batch holds: its cost follows the batch, not the lake."""

from __future__ import annotations

import polars as pl

from resources.state import StateReader, StateStore
from stores.state.namespaces import LANDED_RECORD, VALUE_SCHEMAS
from transforms.schema import INGEST_LOG_SCHEMA
from transforms.state import decode


def landed_log(store: StateReader, paths: list[str], columns: list[str]) -> pl.DataFrame:
    """The `ingest_log` rows (`columns` of INGEST_LOG_SCHEMA) of the files at `paths`, from the store."""
    schema = {c: INGEST_LOG_SCHEMA[c] for c in columns}
    held = list(store.get_many("landed_files", paths).items())
    if not held:
        return pl.DataFrame(schema=schema)
    records = decode([v for _, v in held], VALUE_SCHEMAS["landed_files"]).with_columns(
        pl.Series("source_file", [p for p, _ in held], dtype=pl.String)
    )
    rows = records.explode("records").drop_nulls("records").unnest("records")
    return rows.select(
        [
            pl.col(c).cast(t) if c in (*LANDED_RECORD, "source_file") else pl.lit(None, t).alias(c)
            for c, t in schema.items()
        ]
    )


def seen_ids(store: StateStore, ids: pl.Series) -> pl.Series:
    """The ids of `ids` the store has accepted before (in any earlier batch)."""
    return store.get_frame("event_ids", ids)["key"].rename("event_id")  # sorted by Polars (#17)
