"""`LakeResource.upsert`'s cheaper forms (`resources.lake_merge`, #17): an insert-only upsert appends
the keys the table lacks (with `held_since`, looked up in the files that can hold them only); `since`
bounds a MERGE to the files at or after the source's least value."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from resources.lake import LakeResource
from resources.lake_merge import bound

AT = datetime(2026, 12, 6, 8, 0, tzinfo=UTC)
SCHEMA: dict[str, pl.DataType] = {"id": pl.String(), "n": pl.Int64(), "at": pl.Datetime("us", "UTC")}


def rows(ids: list[str], n: int, minutes: int) -> pl.DataFrame:
    at = AT + timedelta(minutes=minutes)
    return pl.DataFrame({"id": ids, "n": [n] * len(ids), "at": [at] * len(ids)}, schema=SCHEMA)


def last_commit(lake: LakeResource, name: str) -> dict:
    table = lake.table(name)
    assert table is not None
    return table.history(1)[0]


def test_an_insert_only_upsert_appends_the_new_keys_and_keeps_the_held_ones_as_they_are(
    lake: LakeResource,
) -> None:
    lake.upsert("things", rows(["a", "b"], 1, 0), key="id", insert_only=True)
    lake.upsert("things", rows(["b", "c"], 2, 1), key="id", tags={"app": 7}, insert_only=True)
    assert lake.read("things", SCHEMA).sort("id").select("id", "n").rows() == [("a", 1), ("b", 1), ("c", 2)]
    assert last_commit(lake, "things")["operation"] == "WRITE"  # an append: no MERGE's join of every file
    assert lake.app_version("things", "app") == 7
    lake.upsert("things", rows(["a", "c"], 3, 2), key="id", tags={"app": 8}, insert_only=True)
    assert lake.read("things", SCHEMA).height == 3  # every key held: nothing added, the tag recorded
    assert lake.app_version("things", "app") == 8


def test_an_insert_only_upsert_with_a_column_from_a_later_release_keeps_it(lake: LakeResource) -> None:
    lake.upsert("things", rows(["a"], 1, 0), key="id", insert_only=True)
    later = rows(["a", "b"], 2, 1).with_columns(pl.lit("x").alias("note"))
    lake.upsert("things", later, key="id", insert_only=True)
    found = lake.read("things", {**SCHEMA, "note": pl.String()}).sort("id").select("id", "n", "note")
    assert found.rows() == [("a", 1, None), ("b", 2, "x")]


def data_files(lake: LakeResource, name: str) -> list[Path]:
    table = lake.table(name)
    assert table is not None
    return [Path(uri.removeprefix("file://")) for uri in table.file_uris()]


@pytest.mark.parametrize("floor", [AT + timedelta(minutes=1), AT.replace(tzinfo=None) + timedelta(minutes=1)])
def test_an_insert_only_upsert_held_since_a_value_reads_no_file_below_it(
    lake: LakeResource, floor: datetime
) -> None:
    # minute 0: never opened (its ids' statistics, "a" to "z", do not rule it out)
    lake.upsert("things", rows(["a", "z"], 1, 0), key="id", insert_only=True)
    [older] = data_files(lake, "things")
    unknown = pl.DataFrame({"id": ["n"], "n": [1], "at": [None]}, schema=SCHEMA)  # a null: read
    lake.upsert("things", unknown, key="id", insert_only=True)
    lake.upsert("things", rows(["c"], 1, 1), key="id", insert_only=True)
    older.unlink()  # a read of it fails now
    again = rows(["c", "n", "e"], 2, 3)
    lake.upsert("things", again, key="id", insert_only=True, held_since=("at", floor))  # naive: as UTC
    recent = (pl.col("at") >= AT + timedelta(minutes=1)) | pl.col("at").is_null()
    found = lake.collect("things", SCHEMA, lambda r: r.filter(recent).sort("id").select("id", "n")).rows()
    assert found == [("c", 1), ("e", 2), ("n", 1)]  # the held ones kept as they were, "e" appended


@pytest.mark.parametrize("held_since", [None, ("at", None)])
def test_an_insert_only_upsert_without_a_least_value_reads_every_file(
    lake: LakeResource, held_since: tuple[str, datetime | None] | None
) -> None:
    lake.upsert("things", rows(["a", "z"], 1, 0), key="id", insert_only=True)
    [older] = data_files(lake, "things")
    lake.upsert("things", rows(["c"], 1, 1), key="id", insert_only=True)
    older.unlink()
    with pytest.raises(FileNotFoundError):
        lake.upsert("things", rows(["c", "e"], 2, 3), key="id", insert_only=True, held_since=held_since)


def test_an_upsert_since_a_column_reads_only_the_files_at_or_after_its_least_value(
    lake: LakeResource,
) -> None:
    for minute, part in enumerate((["a", "b"], ["c", "d"], ["e", "f"])):  # three files, one a minute
        lake.upsert("things", rows(part, 1, minute), key="id")
    changed = rows(["d", "e"], 5, 0).with_columns(
        pl.Series("at", [AT + timedelta(minutes=m) for m in (1, 2)])
    )
    lake.upsert("things", changed, key="id", since="at")
    metrics = last_commit(lake, "things")["operationMetrics"]
    assert metrics["num_target_files_skipped_during_scan"] == 1  # the file of minute 0
    assert metrics["num_target_rows_updated"] == 2 and metrics["num_target_rows_inserted"] == 0
    found = lake.read("things", SCHEMA).sort("id")
    assert found.select("id", "n").rows() == [("a", 1), ("b", 1), ("c", 1), ("d", 5), ("e", 5), ("f", 1)]


def test_an_upsert_since_a_column_with_a_null_reads_every_file(lake: LakeResource) -> None:
    lake.upsert("things", rows(["a"], 1, 0), key="id")
    lake.upsert("things", rows(["b"], 1, 1), key="id")
    changed = pl.DataFrame(
        {"id": ["b", "c"], "n": [2, 2], "at": [AT + timedelta(minutes=1), None]}, schema=SCHEMA
    )
    lake.upsert("things", changed, key="id", since="at")
    assert last_commit(lake, "things")["operationMetrics"]["num_target_files_skipped_during_scan"] == 0
    expected = pl.concat([rows(["a"], 1, 0), changed]).sort("id")
    assert_frame_equal(lake.read("things", SCHEMA).sort("id"), expected)


UTC_AT, NAIVE_AT = pl.Datetime("us", "UTC"), pl.Datetime("us")


@pytest.mark.parametrize(
    ("values", "dtype", "expected"),
    [
        ([AT, AT - timedelta(seconds=1.5)], UTC_AT, " AND t.at >= '2026-12-06T07:59:58.500000+00:00'"),
        ([datetime(2026, 12, 6, 9, 0)], NAIVE_AT, " AND t.at >= '2026-12-06T09:00:00+00:00'"),  # as UTC
        ([AT, None], UTC_AT, ""),
        ([], UTC_AT, ""),
    ],
)
def test_the_bound_is_the_least_value_as_utc_and_none_with_a_null(
    values: list[datetime | None], dtype: pl.DataType, expected: str
) -> None:
    assert bound(pl.DataFrame({"at": values}, schema={"at": dtype}), "at") == expected
