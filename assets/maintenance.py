"""Lake maintenance (compact, vacuum, checkpoint, log cleanup) and pruning of Dagster's own history.

Micro-batches every few seconds leave thousands of small Delta files and thousands of Dagster runs
(150-220 KB each in DAGSTER_HOME) a day; this pass, hourly, keeps the disk and the UI healthy.
"""

import contextlib
import logging
import os
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
from dagster._core.storage.event_log.schema import AssetCheckExecutionsTable
from dagster._core.storage.event_log.sql_event_log import SqlEventLogStorage

from resources.lake import LakeResource
from resources.lake_config import CHECKPOINT_INTERVAL, CHECKPOINT_SETTING, writer_properties
from transforms.operations.maintenance import (
    MaintenanceReport,
    TableMaintenance,
    history_cutoff,
    table_maintenance,
    tables_markdown,
)
from transforms.schema import INGEST_APP_ID

log = logging.getLogger(__name__)
OPERATIONS_GROUP = "operations"
# Never delete a run that has not finished: a deleted in-flight run would lose its events and logs.
FINISHED_STATUSES = [dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED]
RUN_DELETE_BATCH = 500
TICK_PAGE = 10_000


class MaintenanceConfig(dg.Config):
    """How long replaced data files (time travel) and Dagster run history are kept."""

    vacuum_retention_hours: int = 168
    history_retention_days: float = 7


def data_files(table_dir: Path) -> dict[str, int]:
    """{relative path: size} of the table's parquet data files on disk (the log's checkpoints excluded)."""
    found: dict[str, int] = {}
    for path in table_dir.rglob("*.parquet"):
        relative = path.relative_to(table_dir)
        if relative.parts[0] == "_delta_log":
            continue
        with contextlib.suppress(FileNotFoundError):
            found[relative.as_posix()] = path.stat().st_size
    return found


def maintain_table(lake: LakeResource, name: str, vacuum_retention_hours: int) -> TableMaintenance | None:
    """Compact, vacuum, checkpoint and clean the log of table `name`, under the lake's writer lock; a table
    from before a13ab9d is set to be checkpointed every CHECKPOINT_INTERVAL commits."""
    root = lake.root
    if root is None:
        raise ValueError("maintenance measures data files on disk: local lakes only")
    table_dir = root / name
    with lake.writer_lock():  # per table, so a micro-batch waits for one table at most
        table = lake.table(name)  # loaded under the lock: the newest version
        if table is None:
            return None
        before = data_files(table_dir)
        version_before, active_before = table.version(), len(table.file_uris())
        batch_before = table.transaction_version(INGEST_APP_ID)
        if CHECKPOINT_SETTING not in table.metadata().configuration:  # a table made before a13ab9d
            table.alter.set_table_properties({CHECKPOINT_SETTING: str(CHECKPOINT_INTERVAL)})
        # zstd: smaller and faster than snappy on this data (measured), like the micro-batches.
        table.optimize.compact(writer_properties=writer_properties())
        # full=True also removes files no commit refers to (a micro-batch killed mid-write leaves some);
        # the retention still protects anything younger, and the lock any write in flight.
        table.vacuum(
            retention_hours=vacuum_retention_hours,
            dry_run=False,
            enforce_retention_duration=False,
            full=True,
        )
        table.create_checkpoint()
        table.cleanup_metadata()  # log files older than delta.logRetentionDuration, before the checkpoint
        if table.transaction_version(INGEST_APP_ID) != batch_before:
            # Exactly-once ingest reads the batch number from these app transactions: fail loudly.
            raise RuntimeError(f"maintenance changed the ingest batch version of table {name}")
        after = data_files(table_dir)
        versions, active = (version_before, table.version()), (active_before, len(table.file_uris()))
    return table_maintenance(name, before, after, active_files=active, versions=versions)


def maintain_lake(lake: LakeResource, vacuum_retention_hours: int) -> list[TableMaintenance]:
    """Maintain every Delta table of the lake, one at a time; a table that fails (a data file lost from
    under it, say) is named in the error raised once the others are done, and holds none of them back."""
    reports, failed = [], []
    for name in lake.table_names():
        try:
            report = maintain_table(lake, name, vacuum_retention_hours)
        except Exception as error:
            log.exception("maintenance of %s failed", name)
            failed.append((name, error))
            continue
        if report is not None:
            log.info("maintained %s: %s -> %s files", name, report.files_before, report.files_after)
            reports.append(report)
    if failed:
        names = ", ".join(name for name, _ in failed)
        message = f"maintenance failed on {len(failed)} table(s): {names} (the others were maintained)"
        raise RuntimeError(message) from failed[0][1]
    return reports


def delete_run(instance: dg.DagsterInstance, run_id: str) -> None:
    """Delete a run with its events, and the files that `delete_run` alone leaves in DAGSTER_HOME."""
    instance.delete_run(run_id)
    # The SQLite event log keeps one database file per run, and compute logs a folder per run; neither
    # goes with the run's rows, and they are most of the run's footprint on disk.
    # A home from before lakemail kept every run's events in one database (`history/event_log.db`) has
    # its earlier runs' files still: they go with their runs too.
    storage = instance.event_log_storage
    path_for_shard = getattr(storage, "path_for_shard", None)
    if storage.is_run_sharded and path_for_shard is not None:
        shard = path_for_shard(run_id)
    else:
        shard = os.path.join(instance.root_directory, "history", "runs", f"{run_id}.db")
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(shard + suffix)
    instance.compute_log_manager.delete_logs(prefix=[run_id])


def delete_check_executions(instance: dg.DagsterInstance, run_ids: Sequence[str]) -> None:
    """Delete the asset check executions of `run_ids`, which `delete_run` leaves in the event log's index
    (a row per check with its serialized evaluation: ~11 KB a micro-batch, kept forever otherwise)."""
    storage = instance.event_log_storage
    if not isinstance(storage, SqlEventLogStorage):
        return
    # The table has no index on run_id: one statement per batch of runs, not one scan per run.
    executions = AssetCheckExecutionsTable
    with storage.index_connection() as conn:
        conn.execute(executions.delete().where(executions.c.run_id.in_(run_ids)))


def prune_runs(instance: dg.DagsterInstance, cutoff: datetime) -> int:
    """Delete finished runs created before `cutoff`; runs not finished stay whatever their age."""
    finished_before = dg.RunsFilter(statuses=FINISHED_STATUSES, created_before=cutoff)
    deleted = 0
    # Every id a query returns gets deleted, so asking again gives the next ones: no cursor needed.
    while run_ids := instance.get_run_ids(finished_before, limit=RUN_DELETE_BATCH):
        for run_id in run_ids:
            delete_run(instance, run_id)
        delete_check_executions(instance, run_ids)
        deleted += len(run_ids)
    return deleted


def count_ticks(
    instance: dg.DagsterInstance, origin_id: str, selector_id: str, before: float, page: int = TICK_PAGE
) -> int:
    """Ticks of one instigator older than `before`, counted a page at a time (months of them at first)."""
    count = 0
    while summaries := instance.get_tick_summaries(origin_id, selector_id, before=before, limit=page):
        count += len(summaries)
        if len(summaries) < page:
            break
        before = summaries[-1].timestamp  # newest first; a tie at a page edge only skews the count
    return count


def prune_ticks(instance: dg.DagsterInstance, cutoff: datetime, page: int = TICK_PAGE) -> int:
    """Delete sensor, schedule and automation ticks older than `cutoff`."""
    before = cutoff.timestamp()
    deleted = 0
    for state in instance.all_instigator_state():
        origin_id, selector_id = state.instigator_origin_id, state.selector_id
        deleted += count_ticks(instance, origin_id, selector_id, before, page)
        instance.purge_ticks(origin_id, selector_id, before=before)
    return deleted


def run_maintenance(
    lake: LakeResource, instance: dg.DagsterInstance, config: MaintenanceConfig
) -> MaintenanceReport:
    """One maintenance pass over the Dagster instance and the lake."""
    cutoff = history_cutoff(datetime.now(UTC), config.history_retention_days)
    # Dagster's history first: a table this pass cannot mend (its run fails, naming it) must not also
    # leave DAGSTER_HOME growing hour after hour.
    runs_deleted, ticks_deleted = prune_runs(instance, cutoff), prune_ticks(instance, cutoff)
    tables = maintain_lake(lake, config.vacuum_retention_hours)
    return MaintenanceReport(tables=tables, runs_deleted=runs_deleted, ticks_deleted=ticks_deleted)


@dg.asset(group_name=OPERATIONS_GROUP, kinds={"deltalake", "dagster"})
def maintenance(
    context: dg.AssetExecutionContext, config: MaintenanceConfig, lake: LakeResource
) -> dg.MaterializeResult:
    """Compacted, vacuumed lake tables and pruned Dagster history."""
    report = run_maintenance(lake, context.instance, config)
    context.log.info(
        "maintenance: %s -> %s data files, %s bytes reclaimed, %s runs and %s ticks deleted",
        report.files_before,
        report.files_after,
        report.bytes_reclaimed,
        report.runs_deleted,
        report.ticks_deleted,
    )
    return dg.MaterializeResult(
        metadata={
            "tables": dg.MetadataValue.md(tables_markdown(report.tables)),
            "files_before": report.files_before,
            "files_after": report.files_after,
            "bytes_reclaimed": report.bytes_reclaimed,
            "runs_deleted": report.runs_deleted,
            "ticks_deleted": report.ticks_deleted,
        }
    )
