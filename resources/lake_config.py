"""How lakemail writes its Delta tables: the Parquet writer's settings and a new table's properties."""

from __future__ import annotations

from deltalake import WriterProperties

from transforms.schema import STATS_COLUMNS

# Commits between two checkpoints of a table lakemail creates (Delta's default: 100). Each open of a table
# reads its last checkpoint and every commit after it: a micro-batch run opens its tables some 16 times,
# 20-40 ms each 60 commits after a checkpoint against 3-5 ms just after one; a checkpoint of a run's table
# costs 30-200 ms. Every 10 commits: a 1k-event ingest 0.34 s against 0.44 s (#17).
CHECKPOINT_INTERVAL = 10
CHECKPOINT_SETTING = "delta.checkpointInterval"


def writer_properties() -> WriterProperties:  # zstd: smaller and faster than snappy on this data (measured)
    return WriterProperties(compression="ZSTD")


def table_configuration(name: str) -> dict[str, str | None]:
    """Delta table properties set when lakemail creates table `name`: its stats columns, and a checkpoint
    every CHECKPOINT_INTERVAL commits."""
    columns = STATS_COLUMNS.get(name)
    stats = {"delta.dataSkippingStatsColumns": ",".join(columns)} if columns else {}
    return {CHECKPOINT_SETTING: str(CHECKPOINT_INTERVAL), **stats}
