"""A write bigger than `STREAM_ROWS` goes to delta-rs as a stream of slices (#17, peak RSS): the table
reads back exactly what was written, partitioned or not, appended or overwritten, nested types included."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import polars as pl
import pyarrow as pa
from polars.testing import assert_frame_equal

from resources.lake import LakeResource
from resources.lake_files import STREAM_ROWS, arrow_stream

ROWS = 2 * STREAM_ROWS + 123  # three slices, the last a short one
SCHEMA: dict[str, pl.DataType] = {
    "event_id": pl.String(),
    "event_date": pl.Date(),
    "event_ts": pl.Datetime("us", "UTC"),
    "price": pl.Float64(),
    "quantity": pl.Int64(),
    "lines": pl.List(pl.Struct({"product_id": pl.String(), "n": pl.Int64()})),
    "traits": pl.Struct({"email": pl.String(), "first_name": pl.String()}),
}


def frame(rows: int, offset: int = 0) -> pl.DataFrame:
    start = datetime(2026, 12, 1, tzinfo=UTC)
    return pl.DataFrame(
        {
            "event_id": [f"e-{offset + i}" for i in range(rows)],
            "event_date": [date(2026, 12, 1 + (i % 3)) for i in range(rows)],
            "event_ts": [start + timedelta(seconds=i) for i in range(rows)],
            "price": [None if i % 7 == 0 else i / 4 for i in range(rows)],
            "quantity": [i % 5 for i in range(rows)],
            "lines": [[{"product_id": f"p-{i % 11}", "n": i % 3}] if i % 2 else [] for i in range(rows)],
            "traits": [{"email": None, "first_name": "Ada" if i % 3 else None} for i in range(rows)],
        },
        schema=SCHEMA,
    )


def test_a_big_frame_is_handed_over_as_a_stream_and_a_small_one_as_a_table() -> None:
    assert isinstance(arrow_stream(frame(ROWS)), pa.RecordBatchReader)
    assert isinstance(arrow_stream(frame(10)), pa.Table)
    streamed = arrow_stream(frame(ROWS))
    assert isinstance(streamed, pa.RecordBatchReader)
    assert streamed.read_all().num_rows == ROWS


def test_streamed_appends_and_overwrites_read_back_exactly(tmp_path: Path) -> None:
    lake = LakeResource(uri=str(tmp_path / "lake"))
    first, second = frame(ROWS), frame(ROWS, offset=ROWS)
    lake.append("events", first, batch_id=1, partition_by=["event_date"])
    lake.append("events", second, batch_id=2, partition_by=["event_date"])
    both = lake.read("events", SCHEMA).sort("event_id")
    assert_frame_equal(both, pl.concat([first, second]).sort("event_id"))
    assert lake.batch_version("events") == 2  # each append one commit, tagged with its batch

    lake.overwrite("identities_copy", first, batch_id=3)
    assert_frame_equal(lake.read("identities_copy", SCHEMA).sort("event_id"), first.sort("event_id"))
