"""`LakeResource.scan` / `read`: the one way to read a table, or an empty frame of its schema."""

from __future__ import annotations

import polars as pl
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
