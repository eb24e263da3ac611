"""A table lakemail creates is checkpointed every CHECKPOINT_INTERVAL commits (resources/lake_config.py)."""

from __future__ import annotations

from pathlib import Path

import polars as pl
from deltalake import DeltaTable

from resources.lake import LakeResource
from resources.lake_config import CHECKPOINT_INTERVAL


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
