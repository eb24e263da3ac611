"""A table lakemail creates is checkpointed every CHECKPOINT_INTERVAL commits (resources/lake_config.py), and
maintenance sets the interval on a table made before."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pyarrow as pa
from deltalake import DeltaTable, write_deltalake

from assets.maintenance import maintain_table
from resources.lake import LakeResource
from resources.lake_config import CHECKPOINT_INTERVAL, CHECKPOINT_SETTING


def test_a_new_table_is_checkpointed_every_interval_and_reads_back_whole(tmp_path: Path) -> None:
    lake = LakeResource(uri=str(tmp_path / "lake"))
    for batch in range(1, 2 * CHECKPOINT_INTERVAL + 2):
        lake.append("ingest_log", pl.DataFrame({"source_file": [f"f{batch}"], "n": [batch]}), batch_id=batch)
    log = tmp_path / "lake" / "ingest_log" / "_delta_log"
    checkpoints = sorted(p.name.split(".")[0] for p in log.glob("*.checkpoint.parquet"))
    every = [f"{v:020d}" for v in (CHECKPOINT_INTERVAL - 1, 2 * CHECKPOINT_INTERVAL - 1)]
    assert checkpoints == every  # Delta's default (100) would have written none
    table = DeltaTable(lake.table_uri("ingest_log"))
    assert table.metadata().configuration["delta.checkpointInterval"] == str(CHECKPOINT_INTERVAL)
    rows = lake.read("ingest_log", {"source_file": pl.String(), "n": pl.Int64()}).sort("n")
    assert rows["n"].to_list() == list(range(1, 2 * CHECKPOINT_INTERVAL + 2))
    assert lake.committed_batch() == 2 * CHECKPOINT_INTERVAL + 1


def test_maintenance_sets_the_interval_on_a_table_made_before_it(tmp_path: Path) -> None:
    lake = LakeResource(uri=str(tmp_path / "lake"))
    uri = lake.table_uri("quarantine")
    for batch in range(1, 4):  # as a release before a13ab9d made it: Delta's default interval
        write_deltalake(uri, pa.table({"source_line": [batch]}), mode="append")
    assert CHECKPOINT_SETTING not in DeltaTable(uri).metadata().configuration
    maintain_table(lake, "quarantine", vacuum_retention_hours=168)
    table = DeltaTable(uri)
    assert table.metadata().configuration[CHECKPOINT_SETTING] == str(CHECKPOINT_INTERVAL)
    while (table.version() + 1) % CHECKPOINT_INTERVAL:
        lake.append("quarantine", pl.DataFrame({"source_line": [table.version()]}), batch_id=table.version())
        table = DeltaTable(uri)
    assert (Path(uri) / "_delta_log" / f"{table.version():020d}.checkpoint.parquet").exists()
    assert lake.read("quarantine", {"source_line": pl.Int64()}).height == table.version() - 1
