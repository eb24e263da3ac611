"""Appends written in bounded memory (`resources.lake_files`, #17): the rows, the commit and the file
statistics a reader skips files by are what delta-rs' own writer gives, or stricter; what this writer does
not handle goes to delta-rs."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake

from resources.lake import LakeResource
from resources.lake_files import MAX_PARTITIONS

START = datetime(2026, 12, 5, 10, 0, 0, 123_456, tzinfo=UTC)
SCHEMA = {
    "event_id": pl.String(),
    "user_id": pl.String(),
    "event_ts": pl.Datetime("us", "UTC"),
    "event_date": pl.Date(),
    "note": pl.String(),
    "price": pl.Float64(),
    "source_line": pl.Int64(),
    "batch_id": pl.Int64(),
}
STATS = ("event_id", "event_ts", "event_date", "note", "price", "source_line", "batch_id")


def rows(count: int, batch_id: int, days: int = 2, offset: int = 0) -> pl.DataFrame:
    """`count` rows over `days` dates, a microsecond apart (delta-rs' stats keep milliseconds)."""
    stamps = [START + timedelta(days=(i % days), microseconds=i) for i in range(offset, offset + count)]
    return pl.DataFrame(
        {
            "event_id": [f"e-{i:06d}" for i in range(offset, offset + count)],
            "user_id": [f"person-{i}@example.com" for i in range(offset, offset + count)],
            "event_ts": stamps,
            "event_date": [s.date() for s in stamps],
            "note": [("x" * 300 if i == offset else None) for i in range(offset, offset + count)],
            "price": [float("nan") if i % 7 == 0 else i / 3 for i in range(offset, offset + count)],
            "source_line": list(range(offset, offset + count)),
            "batch_id": [batch_id] * count,
        },
        schema=SCHEMA,
    )


def stamp(value: Any) -> str:
    assert isinstance(value, datetime)
    return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def new_lake(tmp_path: Path) -> LakeResource:
    """A lake whose `events` table delta-rs created, its stats columns `STATS`."""
    lake = LakeResource(uri=str(tmp_path / "lake"))
    empty = rows(0, 0).to_arrow()
    configuration = {"delta.dataSkippingStatsColumns": ",".join(STATS)}
    write_deltalake(lake.table_uri("events"), empty, partition_by=["event_date"], configuration=configuration)
    return lake


def last_adds(lake: LakeResource) -> list[dict]:
    log = Path(lake.table_uri("events")) / "_delta_log"
    last = sorted(log.glob("*.json"))[-1]
    return [json.loads(line)["add"] for line in last.read_text().splitlines() if '"add"' in line]


def test_an_append_reads_back_whole_with_exact_statistics_and_no_personal_column(tmp_path: Path) -> None:
    lake = new_lake(tmp_path)
    frame = rows(9_000, 1)
    lake.append("events", frame, batch_id=1, partition_by=["event_date"])

    back = lake.read("events", SCHEMA)
    assert back.sort("event_id").equals(frame.sort("event_id"))  # NaN included
    assert lake.batch_version("events") == 1  # the commit records its batch
    adds = last_adds(lake)
    assert sorted(a["partitionValues"]["event_date"] for a in adds) == ["2026-12-05", "2026-12-06"]
    for add in adds:
        day = date.fromisoformat(add["partitionValues"]["event_date"])
        part = frame.filter(pl.col("event_date") == day)
        stats = json.loads(add["stats"])
        assert stats["numRecords"] == part.height == 4_500
        # to the microsecond: a reader comparing with a stamp between two milliseconds skips nothing it needs
        assert stats["minValues"]["event_ts"] == stamp(part["event_ts"].min())
        assert stats["maxValues"]["event_ts"] == stamp(part["event_ts"].max())
        assert stats["minValues"]["event_id"] == part["event_id"].min()
        assert stats["maxValues"]["source_line"] == part["source_line"].max()
        assert "price" not in stats["minValues"]  # NaN has no order: never stated
        assert stats["nullCount"]["note"] == part["note"].null_count()
        assert "event_date" not in stats["nullCount"]  # the partition value is not in the file
    assert "user_id" not in json.dumps(adds) and "example.com" not in json.dumps(adds)
    first = next(a for a in adds if a["partitionValues"]["event_date"] == "2026-12-05")
    assert "note" not in json.loads(first["stats"])["minValues"]  # a 300-character string is not stated


def test_a_reader_skipping_by_the_statistics_finds_every_row(tmp_path: Path) -> None:
    lake = new_lake(tmp_path)
    for batch in range(1, 4):
        lake.append("events", rows(5_000, batch, offset=batch * 5_000), batch_id=batch)
    table = DeltaTable(lake.table_uri("events"))
    for stamp in (START + timedelta(microseconds=m) for m in (5_000, 9_999, 10_000, 10_001, 19_999)):
        day_stamp = stamp if (stamp - START).microseconds % 2 == 0 else stamp + timedelta(days=1)
        expected = 1
        assert (
            lake.scan("events", SCHEMA).filter(pl.col("event_ts") == day_stamp).collect().height == expected
        )
        found = table.to_pyarrow_dataset().to_table(filter=pa.compute.field("event_ts") == day_stamp)
        assert found.num_rows == expected
        later = lake.scan("events", SCHEMA).filter(pl.col("event_ts") >= day_stamp).collect()
        assert later.height == lake.read("events", SCHEMA).filter(pl.col("event_ts") >= day_stamp).height


def test_a_delete_and_a_rollback_find_the_rows_in_its_files(tmp_path: Path) -> None:
    lake = new_lake(tmp_path)
    lake.append("events", rows(5_000, 1), batch_id=1)
    lake.append("events", rows(5_000, 2, offset=5_000), batch_id=2)
    DeltaTable(lake.table_uri("events")).delete("event_id = 'e-004321'")
    lake.delete_batches_after("events", 1)
    back = lake.read("events", SCHEMA)
    assert back.height == 4_999 and back["batch_id"].unique().to_list() == [1]
    assert "e-004321" not in back["event_id"].to_list()


def test_what_it_does_not_handle_is_written_by_delta_rs(tmp_path: Path) -> None:
    lake = new_lake(tmp_path)
    many_days = rows(5_000, 1, days=MAX_PARTITIONS + 1)
    lake.append("events", many_days, batch_id=1)
    stats = [json.loads(a["stats"]) for a in last_adds(lake)]
    assert len(stats) == MAX_PARTITIONS + 1
    assert all(
        s["maxValues"]["event_ts"].count(".") == 1 and len(s["maxValues"]["event_ts"]) < 27 for s in stats
    )

    wider = rows(5_000, 2, offset=5_000).with_columns(pl.lit("v2").alias("release"))  # a column added
    lake.append("events", wider, batch_id=2)
    back = lake.read("events", {**SCHEMA, "release": pl.String()})
    assert back.height == 10_000
    assert back.group_by("batch_id").agg(pl.col("release").null_count()).sort("batch_id")[
        "release"
    ].to_list() == [
        5_000,
        0,
    ]


def test_a_failure_after_the_commit_keeps_the_committed_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A post-commit hook (a checkpoint) failing raises after the commit is in the log (found by review):
    the files it names must stay, or the table could not be read."""
    lake = new_lake(tmp_path)
    commit = DeltaTable.create_write_transaction

    def commit_then_fail(table: DeltaTable, *args: Any, **kwargs: Any) -> None:
        commit(table, *args, **kwargs)
        raise OSError("the checkpoint could not be written")

    monkeypatch.setattr(DeltaTable, "create_write_transaction", commit_then_fail)
    with pytest.raises(OSError, match="checkpoint"):
        lake.append("events", rows(5_000, 1), batch_id=1)
    monkeypatch.undo()
    assert lake.batch_version("events") == 1
    assert lake.read("events", SCHEMA).height == 5_000
