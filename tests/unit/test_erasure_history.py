"""Erasure in old versions, pure part: of the old files still on storage, all but those a compaction
removed are read for the person."""

from __future__ import annotations

import polars as pl

from transforms.erasure.history import files_to_read


def actions(*rows: tuple[int, str | None, str | None, bool | None]) -> pl.DataFrame:
    schema = {"version": pl.Int64, "add": pl.String, "remove": pl.String, "data_change": pl.Boolean}
    return pl.DataFrame(rows, schema=schema, orient="row")


def test_only_files_a_compaction_removed_are_left_unread() -> None:
    log = actions(
        (0, "merged", None, None),
        (1, None, "merged", True),  # a merge, delete or overwrite: rows may be gone from the current version
        (1, "compacted", None, None),
        (2, None, "compacted", False),  # OPTIMIZE: its rows are in the files commit 2 added
        (2, "d=a%2520b/big", None, None),
        (3, None, "d=a%2520b/small", False),  # the log encodes the path storage (and vacuum) names
        (3, None, "no-flag", None),
    )
    old = ["merged", "compacted", "d=a%20b/small", "no-flag", "orphan", "before-the-log"]
    assert files_to_read(old, log) == ["before-the-log", "merged", "no-flag", "orphan"]
    assert files_to_read([], log) == []
