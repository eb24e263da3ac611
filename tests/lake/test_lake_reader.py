"""`LakeResource.scan` / `read`: the one way to read a table, or an empty frame of its schema."""

from __future__ import annotations

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from resources.lake import LakeResource

SCHEMA: dict[str, pl.DataType] = {"id": pl.String(), "n": pl.Int64()}


def test_a_table_never_written_reads_as_an_empty_frame_of_its_schema(lake: LakeResource) -> None:
    assert lake.version("things") is None
    assert lake.scan("things", SCHEMA).collect_schema() == pl.Schema(SCHEMA)
    assert_frame_equal(lake.read("things", SCHEMA), pl.DataFrame(schema=SCHEMA))
    assert_frame_equal(lake.read("things", SCHEMA, ["n"]), pl.DataFrame(schema={"n": pl.Int64()}))


def test_a_table_reads_with_its_schemas_columns_in_order_at_any_version(lake: LakeResource) -> None:
    lake.write("things", pl.DataFrame({"n": [1], "id": ["a"], "extra": [True]}))
    lake.write("things", pl.DataFrame({"n": [2], "id": ["b"], "extra": [False]}))
    assert lake.version("things") == 1
    assert lake.read("things", SCHEMA).sort("n").rows() == [("a", 1), ("b", 2)]
    assert lake.read("things", SCHEMA, version=0).rows() == [("a", 1)]
    assert lake.read("things", SCHEMA, ["id"]).sort("id")["id"].to_list() == ["a", "b"]


def test_a_snapshot_reads_its_tables_as_they_were_and_writes_nothing(lake: LakeResource) -> None:
    lake.write("things", pl.DataFrame({"id": ["a"], "n": [1]}))
    seen = lake.snapshot(["things", "others"])
    lake.write("things", pl.DataFrame({"id": ["b"], "n": [2]}))
    lake.write("others", pl.DataFrame({"id": ["c"], "n": [3]}))
    assert seen.pinned == {"things": 0, "others": None}
    assert seen.read("things", SCHEMA).rows() == [("a", 1)]
    assert seen.read("others", SCHEMA).is_empty()  # not written yet when the snapshot was taken
    assert lake.at(seen.pinned).read("things", SCHEMA).rows() == [("a", 1)]
    with pytest.raises(KeyError, match="not in this view"):
        seen.read("events", SCHEMA)
    with pytest.raises(RuntimeError, match="read-only"):
        seen.write("things", pl.DataFrame({"id": ["d"], "n": [4]}))


def test_commit_of_finds_the_version_that_recorded_an_app_version(lake: LakeResource) -> None:
    for run in (1, 2, 3):
        lake.write_tagged("things", pl.DataFrame({"id": [f"r{run}"], "n": [run]}), {"app": run})
        lake.write("things", pl.DataFrame({"id": ["x"], "n": [0]}))  # a commit of another writer
    assert [lake.commit_of("things", "app", run) for run in (1, 2, 3)] == [0, 2, 4]
    assert lake.commit_of("things", "app", 4) is None
    assert lake.commit_of("things", "other-app", 1) is None
    assert lake.commit_of("nothing", "app", 1) is None


def test_commit_of_skips_versions_whose_log_was_cleaned_up(lake: LakeResource) -> None:
    for run in range(1, 7):
        lake.write_tagged("things", pl.DataFrame({"id": [f"r{run}"], "n": [run]}), {"app": run})
        if run == 4:
            table = lake.table("things")
            assert table is not None
            table.create_checkpoint()  # at version 3
    assert lake.root is not None
    for version in range(3):  # what cleanup_metadata does to commits older than the log retention
        (lake.root / "things" / "_delta_log" / f"{version:020d}.json").unlink()
    assert lake.commit_of("things", "app", 2) is None
    assert [lake.commit_of("things", "app", run) for run in (4, 5, 6)] == [3, 4, 5]


def test_an_append_with_a_new_column_widens_a_table_from_an_earlier_release(lake: LakeResource) -> None:
    """A lake written before `events` gained columns (say `context`) still takes new batches."""
    lake.write("things", pl.DataFrame({"id": ["a"], "n": [1]}))
    lake.write("things", pl.DataFrame({"id": ["b"], "n": [2], "context": ['{"locale": "de-DE"}']}))
    wide = {**SCHEMA, "context": pl.String()}
    assert lake.read("things", wide).sort("id").rows() == [("a", 1, None), ("b", 2, '{"locale": "de-DE"}')]


OLD_ITEM = pl.Struct({"sku": pl.String(), "n": pl.Int64()})
ITEM = pl.Struct({"sku": pl.String(), "note": pl.String(), "n": pl.Int64()})  # a field in the middle
WIDE: dict[str, pl.DataType] = {**SCHEMA, "items": pl.List(ITEM), "tags": pl.List(pl.String())}


def write_old(lake: LakeResource, name: str) -> None:
    """Table `name` as an earlier release wrote it: no `tags`, items without `note`."""
    items = pl.Series("items", [[{"sku": "s1", "n": 2}]], dtype=pl.List(OLD_ITEM))
    lake.write(name, pl.DataFrame({"id": ["a"], "n": [1]}).with_columns(items))


def test_what_a_table_from_an_earlier_release_lacks_reads_as_null(lake: LakeResource) -> None:
    """A list column the table lacks reads as null, a struct field it lacks as a null field."""
    write_old(lake, "things")
    assert lake.scan("things", WIDE).collect_schema() == pl.Schema(WIDE)
    assert lake.read("things", WIDE).to_dicts() == [
        {"id": "a", "n": 1, "items": [{"sku": "s1", "note": None, "n": 2}], "tags": None}
    ]


def test_appends_and_an_overwrite_widen_a_table_from_an_earlier_release(lake: LakeResource) -> None:
    """A struct gaining a field is rewritten whole (delta-rs' delete, merge and compaction cannot read a
    file lacking a field of its table); the append keeps its tags, and the rows stay deletable."""
    new = pl.DataFrame(
        {"id": ["b"], "n": [3], "items": [[{"sku": "s2", "note": "gift", "n": 1}]], "tags": [["x"]]},
        schema=WIDE,
    )
    write_old(lake, "appended")
    lake.write_tagged("appended", new, {"app": 7})
    assert lake.read("appended", WIDE).sort("id").to_dicts() == [
        {"id": "a", "n": 1, "items": [{"sku": "s1", "note": None, "n": 2}], "tags": None},
        {"id": "b", "n": 3, "items": [{"sku": "s2", "note": "gift", "n": 1}], "tags": ["x"]},
    ]
    assert lake.app_version("appended", "app") == 7
    table = lake.table("appended")
    assert table is not None
    table.optimize.compact()
    table.delete("n <= 1")
    assert lake.read("appended", WIDE)["id"].to_list() == ["b"]
    write_old(lake, "rewritten")
    lake.write("rewritten", new, mode="overwrite")  # the rows and the schema replaced
    assert_frame_equal(lake.read("rewritten", WIDE), new)
    assert pl.scan_delta(lake.table_uri("rewritten")).collect_schema() == pl.Schema(WIDE)


def test_an_upsert_with_a_column_from_a_later_release_keeps_it(lake: LakeResource) -> None:
    lake.upsert("things", pl.DataFrame({"id": ["a", "b"], "n": [1, 2]}), key="id")
    later = pl.DataFrame({"id": ["b", "c"], "n": [3, 4], "note": ["x", "y"]})
    lake.upsert("things", later, key="id")
    lake.upsert("things", later.clear(), key="id", tags={"app": 1})
    rows = lake.read("things", {**SCHEMA, "note": pl.String()}).sort("id").rows()
    assert rows == [("a", 1, None), ("b", 3, "x"), ("c", 4, "y")]


def test_a_whole_upsert_leaves_exactly_its_rows_and_rewrites_only_the_files_it_changes(
    lake: LakeResource,
) -> None:
    for part in (["a", "b"], ["c", "d"], ["e", "f"]):  # three files
        lake.upsert("things", pl.DataFrame({"id": part, "n": [1, None]}), key="id")
    whole = pl.DataFrame({"id": ["a", "b", "c", "d", "e", "g"], "n": [1, None, 1, 5, 1, 7]})
    lake.upsert("things", whole, key="id", whole=True)  # f goes, d changes, g comes; a, b stay as they are
    assert_frame_equal(lake.read("things", SCHEMA).sort("id"), whole)
    table = lake.table("things")
    assert table is not None
    assert table.history(1)[0]["operationMetrics"]["num_target_files_removed"] == 2
    lake.upsert("things", whole.clear(), key="id", whole=True)
    assert lake.read("things", SCHEMA).height == 0
