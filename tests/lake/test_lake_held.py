"""Tables held open between uses (#17, resources/lake_held.py): each use sees the table as a fresh open
would (commits of other writers, a table made again), and a table is opened once, not at every use."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import polars as pl
import pytest
from deltalake import DeltaTable, write_deltalake

from resources.lake import LakeResource
from resources.lake_held import held_table

SCHEMA = {"n": pl.Int64()}


def _write(uri: str, values: list[int]) -> None:
    write_deltalake(uri, pl.DataFrame({"n": values}).to_arrow(), mode="append")


def test_a_held_table_is_opened_once_and_sees_every_other_writers_commit(tmp_path: Path) -> None:
    uri = str(tmp_path / "t")
    _write(uri, [0])
    opens = []

    def opened() -> DeltaTable:
        opens.append(1)
        return DeltaTable(uri)

    for commit in range(1, 6):
        _write(uri, [commit])  # another writer, through the uri
        with held_table(tmp_path / "t", uri, opened) as table:
            assert table is not None
            assert table.version() == commit
            assert sorted(pl.scan_delta(table).collect()["n"]) == list(range(commit + 1))
    assert len(opens) == 1


def test_the_lake_reads_and_writes_through_held_tables_as_fresh_ones(tmp_path: Path) -> None:
    lake = LakeResource(uri=str(tmp_path / "lake"))
    for batch in (1, 2):
        lake.append("t", pl.DataFrame({"n": [batch], "batch_id": [batch]}), batch_id=batch)
    assert lake.version("t") == 1  # held from here on
    write_deltalake(lake.table_uri("t"), pl.DataFrame({"n": [3], "batch_id": [3]}).to_arrow(), mode="append")
    assert lake.version("t") == 2
    assert lake.batch_version("t") == 2  # the other writer recorded no batch
    assert sorted(lake.read("t", SCHEMA)["n"]) == [1, 2, 3]
    lake.delete_batches_after("t", 1)
    assert sorted(lake.read("t", SCHEMA)["n"]) == [1]
    assert sorted(pl.read_delta(lake.table_uri("t"))["n"]) == [1]


def test_a_table_deleted_and_made_again_is_read_afresh(tmp_path: Path) -> None:
    lake = LakeResource(uri=str(tmp_path / "lake"))
    for n in range(4):
        lake.append("t", pl.DataFrame({"n": [n]}), batch_id=n + 1)
    assert sorted(lake.read("t", SCHEMA)["n"]) == [0, 1, 2, 3]  # held at version 3
    shutil.rmtree(tmp_path / "lake" / "t")
    _write(lake.table_uri("t"), [7])  # version 0 of another table at the same place
    assert lake.version("t") == 0
    assert lake.read("t", SCHEMA)["n"].to_list() == [7]
    assert lake.batch_version("t") == 0


def test_a_table_in_use_is_not_handed_to_another_use(tmp_path: Path) -> None:
    uri = str(tmp_path / "t")
    _write(uri, [0])
    seen: list[DeltaTable | None] = []
    inner_done = threading.Event()

    def other_thread() -> None:
        with held_table(tmp_path / "t", uri, lambda: DeltaTable(uri)) as table:
            seen.append(table)
        inner_done.set()

    with held_table(tmp_path / "t", uri, lambda: DeltaTable(uri)) as outer:
        worker = threading.Thread(target=other_thread)
        worker.start()
        assert inner_done.wait(30)
        worker.join()
    assert seen[0] is not None and seen[0] is not outer


def test_a_table_restored_from_an_older_copy_is_read_afresh_once_another_writer_passes_it(
    tmp_path: Path,
) -> None:
    """The restored table's log reaches the held version again by another writer's commit: that commit
    file is not the one the held table read, so the lake reads what is on disk, not what it held."""
    lake = LakeResource(uri=str(tmp_path / "lake"))
    for batch in (1, 2):
        lake.append("t", pl.DataFrame({"n": [batch], "batch_id": [batch]}), batch_id=batch)
    shutil.copytree(tmp_path / "lake" / "t", tmp_path / "copy")  # version 1: rows 1, 2
    lake.delete_batches_after("t", 1)  # version 2: row 1
    assert sorted(lake.read("t", SCHEMA)["n"]) == [1]  # held at version 2
    shutil.rmtree(tmp_path / "lake" / "t")
    shutil.copytree(tmp_path / "copy", tmp_path / "lake" / "t")  # the older copy, version 1
    write_deltalake(lake.table_uri("t"), pl.DataFrame({"n": [3], "batch_id": [3]}).to_arrow(), mode="append")
    assert sorted(lake.read("t", SCHEMA)["n"]) == [1, 2, 3]
    assert lake.batch_version("t") == 2


def test_a_use_with_no_commit_since_reads_no_log_and_the_next_commit_is_seen(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`update_incremental` lists the table's log (2-4 ms on a log of thousands of files): a use with no
    commit since the last is one stat of the next commit file, and a commit made since is still read."""
    uri = str(tmp_path / "t")
    _write(uri, [0])
    updates: list[int] = []
    update = DeltaTable.update_incremental

    def counted(table: DeltaTable) -> None:
        updates.append(1)
        update(table)

    monkeypatch.setattr(DeltaTable, "update_incremental", counted)
    for _ in range(3):
        with held_table(tmp_path / "t", uri, lambda: DeltaTable(uri)) as table:
            assert table is not None and table.version() == 0
    assert updates == []
    _write(uri, [1])
    _write(uri, [2])
    with held_table(tmp_path / "t", uri, lambda: DeltaTable(uri)) as table:
        assert table is not None and table.version() == 2
        assert sorted(pl.scan_delta(table).collect()["n"]) == [0, 1, 2]
    assert updates == [1]
