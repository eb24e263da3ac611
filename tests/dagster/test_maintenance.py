"""Lake maintenance on a real lake of many micro-batches, and Dagster history pruning on a real instance."""

from __future__ import annotations

import os
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import orjson
import polars as pl
import pyarrow.parquet as pq
import pytest
from dagster._core.remote_origin import (
    RegisteredCodeLocationOrigin,
    RemoteInstigatorOrigin,
    RemoteJobOrigin,
    RemoteRepositoryOrigin,
)
from dagster._core.scheduler.instigation import (
    InstigatorState,
    InstigatorStatus,
    InstigatorType,
    ScheduleInstigatorData,
    SensorInstigatorData,
    TickData,
    TickStatus,
)
from dagster._core.storage.event_log import SqliteEventLogStorage
from deltalake import DeltaTable
from polars.testing import assert_frame_equal

from assets.maintenance import (
    data_files,
    maintain_lake,
    maintenance,
    prune_ticks,
)
from orchestration.definitions import build_defs
from orchestration.settings import Settings
from orchestration.sql import run_query
from resources.lake import LakeResource
from resources.lake_locks import LANES, lock_path
from resources.landing import LandingResource
from stores.ingest import ingest
from tests.conftest import land
from tests.events_data import track
from transforms.operations.maintenance import history_cutoff, table_maintenance, tables_markdown
from transforms.schema import INGEST_APP_ID
from transforms.tables import SET_UP_TABLES

TABLES = ("events", "identities", "ingest_log", "profile_updates", "quarantine")  # what ingest writes
EVENT_NAMES = ("Product Viewed", "Product Added", "Order Completed")
DAYS = 4  # event_date partitions every batch touches
BAD_LINES = (
    b"{broken",
    b"[1, 2]",
    b'{"type": "track", "event": "x"}',
    b'{"messageId": "z", "type": "alias"}',
)
QUERIES = (
    "select event_name, count(*) as n from events group by event_name order by event_name",
    "select event_date, count(*) as n from events group by event_date order by event_date",
    "select reason, count(*) as n from quarantine group by reason order by reason",
    "select count(*) as n, count(distinct event_id) as ids, sum(source_line) as lines from events",
    "select status, sum(lines) as lines, sum(accepted) as accepted, sum(duplicates) as duplicates, "
    "sum(quarantined) as quarantined from ingest_log group by status order by status",
    "select count(*) as n, count(distinct anonymous_id) as anons from identities",
)


def message(message_id: str, *, day: int, event: str, anon: str) -> bytes:
    doc = orjson.loads(track(message_id, anon=anon))
    doc.update(event=event, timestamp=f"2026-11-{day:02d}T10:00:00.000Z")
    return orjson.dumps(doc)


def batch_lines(batch: int) -> list[bytes]:
    """Good events over every day and event name, one bad line, and a duplicate of the last batch."""
    good = [
        message(f"b{batch}-{i}", day=1 + i % DAYS, event=EVENT_NAMES[i % 3], anon=f"anon-{(batch + i) % 9}")
        for i in range(6)
    ]
    duplicate = [message(f"b{batch - 1}-0", day=1, event=EVENT_NAMES[0], anon="anon-0")] if batch else []
    return good + duplicate + [BAD_LINES[batch % len(BAD_LINES)]]


def micro_batches(
    settings: Settings, lake: LakeResource, landing: LandingResource, count: int, start: int = 0
) -> None:
    """`count` real micro-batches, one small landed file each."""
    for batch in range(start, start + count):
        land(settings, f"batch-{batch:03d}.ndjson", batch_lines(batch))
        assert ingest(lake, landing).batches  # each call commits one batch


def answers(lake_uri: str) -> list[pl.DataFrame]:
    return [run_query(lake_uri, query) for query in QUERIES]


def sorted_tables(settings: Settings) -> dict[str, pl.DataFrame]:
    frames = {name: pl.read_delta(f"{settings.lake_uri}/{name}") for name in TABLES}
    return {name: frame.sort(frame.columns) for name, frame in frames.items()}


def on_disk(settings: Settings) -> dict[str, dict[str, int]]:
    return {name: data_files(Path(settings.lake_uri) / name) for name in TABLES}


def maintenance_log_text(settings: Settings, versions: dict[str, int]) -> str:
    """The commits after `versions` (table -> version) and every checkpoint of the lake, as text."""
    texts = []
    for name, version in versions.items():
        for path in (Path(settings.lake_uri) / name / "_delta_log").iterdir():
            if path.name.endswith(".json") and int(path.name.split(".")[0]) > version:
                texts.append(path.read_text())
            elif path.name.endswith(".checkpoint.parquet"):
                texts.append(str(pq.read_table(path).to_pylist()))
    return "\n".join(texts)


def table_versions(settings: Settings) -> dict[str, int]:
    return {name: DeltaTable(f"{settings.lake_uri}/{name}").version() for name in TABLES}


def batch_versions(settings: Settings) -> dict[str, int | None]:
    return {n: DeltaTable(f"{settings.lake_uri}/{n}").transaction_version(INGEST_APP_ID) for n in TABLES}


def materialize(
    settings: Settings, instance: dg.DagsterInstance, **config: Any
) -> tuple[dg.ExecuteInProcessResult, dict[str, Any]]:
    result = dg.materialize(
        [maintenance],
        instance=instance,
        resources={"lake": LakeResource(uri=settings.lake_uri)},
        run_config={"ops": {"maintenance": {"config": config}}},
    )
    assert result.success
    [event] = result.asset_materializations_for_node("maintenance")
    return result, {key: value.value for key, value in event.metadata.items()}


def test_maintenance_compacts_many_micro_batches_and_answers_stay_identical(
    settings: Settings, lake: LakeResource, landing: LandingResource, instance: dg.DagsterInstance
) -> None:
    micro_batches(settings, lake, landing, 40)
    before_answers, before_tables = answers(settings.lake_uri), sorted_tables(settings)
    before_batches, before = batch_versions(settings), on_disk(settings)
    before_versions = table_versions(settings)
    assert len(before["events"]) == 40 * DAYS and len(before["ingest_log"]) == 40

    _, metadata = materialize(settings, instance, vacuum_retention_hours=0)

    after = on_disk(settings)
    assert len(after["events"]) == DAYS  # one file per event_date partition
    assert len(after["ingest_log"]) == len(after["quarantine"]) == 1
    for name in ("events", "ingest_log", "quarantine"):
        assert not set(before[name]) & set(after[name])  # every small file was replaced and vacuumed
    for name in TABLES:
        uri = f"{settings.lake_uri}/{name}"
        live = {
            Path(u.removeprefix("file://")).relative_to(uri).as_posix() for u in DeltaTable(uri).file_uris()
        }
        assert set(after[name]) == live  # vacuum really deleted every replaced file from disk
        for path in after[name]:
            assert pq.ParquetFile(f"{uri}/{path}").metadata.row_group(0).column(0).compression == "ZSTD"
    for got, want in zip(answers(settings.lake_uri), before_answers, strict=True):
        assert_frame_equal(got, want)
    for name, frame in sorted_tables(settings).items():
        assert_frame_equal(frame, before_tables[name])
    assert batch_versions(settings) == before_batches  # exactly-once ingest reads these
    written = maintenance_log_text(settings, before_versions)
    assert "u-1" not in written and "anon-" not in written  # no person ids in new file stats or checkpoints
    assert metadata["files_before"] == sum(len(files) for files in before.values())
    assert metadata["files_after"] == sum(len(files) for files in after.values())
    gone = [size for name in TABLES for path, size in before[name].items() if path not in after[name]]
    assert metadata["bytes_reclaimed"] == sum(gone) > 0
    assert "| events | 160 | 4 |" in metadata["tables"]

    # The ingest after maintenance continues the batch numbers and still takes a file exactly once.
    micro_batches(settings, lake, landing, 1, start=40)
    assert ingest(lake, landing).batches == []
    assert lake.committed_batch() == 41
    assert run_query(settings.lake_uri, "select count(*) as n from events")["n"][0] == 41 * 6


def test_default_retention_keeps_replaced_files_for_time_travel(
    settings: Settings, lake: LakeResource, landing: LandingResource, instance: dg.DagsterInstance
) -> None:
    micro_batches(settings, lake, landing, 6)
    version = DeltaTable(f"{settings.lake_uri}/events").version()
    by_name = run_query(settings.lake_uri, QUERIES[0])
    before = on_disk(settings)

    _, metadata = materialize(settings, instance)  # vacuum_retention_hours=168

    after = on_disk(settings)
    assert set(before["events"]) < set(after["events"])  # compacted files added, none deleted yet
    assert metadata["bytes_reclaimed"] == 0
    assert len(DeltaTable(f"{settings.lake_uri}/events").file_uris()) == DAYS
    assert_frame_equal(run_query(settings.lake_uri, QUERIES[0], as_of=version), by_name)
    assert_frame_equal(run_query(settings.lake_uri, QUERIES[0]), by_name)


def test_vacuum_removes_files_no_commit_refers_to_once_past_retention(
    settings: Settings, lake: LakeResource, landing: LandingResource
) -> None:
    micro_batches(settings, lake, landing, 2)
    events_dir = Path(settings.lake_uri) / "events"
    live = next(iter(data_files(events_dir)))
    # What a micro-batch killed between writing its parquet and committing leaves behind.
    stale, fresh = events_dir / "event_date=2026-11-01" / "stale.parquet", events_dir / "fresh.parquet"
    for orphan in (stale, fresh):
        orphan.write_bytes((events_dir / live).read_bytes())
    eight_days_ago = time.time() - 8 * 24 * 3600
    os.utime(stale, (eight_days_ago, eight_days_ago))

    [report] = [r for r in maintain_lake(lake, vacuum_retention_hours=168) if r.table == "events"]

    assert not stale.exists()
    assert fresh.exists()  # younger than the retention: it could be a write in flight
    assert report.bytes_reclaimed == fresh.stat().st_size  # the stale copy, same bytes as the fresh one


def flock_waiters(inode: int) -> int:
    """How many processes or threads wait on a flock of the file with `inode` (Linux /proc/locks)."""
    waiting = 0
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()
        if "->" in fields and fields[fields.index("->") + 1] == "FLOCK":
            waiting += fields[-3].rsplit(":", 1)[-1] == str(inode)
    return waiting


def wait_for_flock_waiter(inode: int, worker: threading.Thread, limit_s: float = 60.0) -> bool:
    """True once someone waits on the lock; False if `worker` ends first or `limit_s` passes."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline and worker.is_alive():
        if flock_waiters(inode):
            return True
        time.sleep(0.01)
    return False


def test_maintenance_waits_for_the_writer_lock(
    settings: Settings, lake: LakeResource, landing: LandingResource
) -> None:
    micro_batches(settings, lake, landing, 3)
    version = DeltaTable(f"{settings.lake_uri}/events").version()
    worker = threading.Thread(target=maintain_lake, args=(lake, 0))
    lock_file = lock_path(Path(settings.lake_uri), LANES[0])  # the first of the lanes' locks it takes
    with lake.writer_lock():  # as the lanes' runs hold it
        worker.start()
        # Not a timing window: the kernel lists the worker as a waiter on the lock file's flock.
        assert wait_for_flock_waiter(lock_file.stat().st_ino, worker)
        assert DeltaTable(f"{settings.lake_uri}/events").version() == version
    worker.join()
    assert len(DeltaTable(f"{settings.lake_uri}/events").file_uris()) == DAYS


def test_expired_log_files_go_and_batch_numbers_stay(
    settings: Settings, lake: LakeResource, landing: LandingResource
) -> None:
    micro_batches(settings, lake, landing, 5)
    maintain_lake(lake, vacuum_retention_hours=0)  # leaves a checkpoint in every table
    month_ago = time.time() - 31 * 24 * 3600  # past delta.logRetentionDuration (30 days)
    for log_file in Path(settings.lake_uri).glob("*/_delta_log/0*"):
        os.utime(log_file, (month_ago, month_ago))
    before_batches = batch_versions(settings)

    # A quiet lake: nothing to compact or vacuum, so no commit whose hook would clean the log.
    reports = maintain_lake(lake, vacuum_retention_hours=168)

    assert [r.table for r in reports] == sorted(TABLES + SET_UP_TABLES)  # those empty: version 0 only
    for name in TABLES:
        log_dir = Path(settings.lake_uri) / name / "_delta_log"
        assert not (log_dir / f"{0:020d}.json").exists()  # expired commits before the checkpoint went
    assert batch_versions(settings) == before_batches  # kept by the checkpoint, not by the old commits
    assert lake.committed_batch() == 5
    micro_batches(settings, lake, landing, 3, start=5)  # ingest goes on from batch 6
    assert ingest(lake, landing).batches == []  # nothing landed is taken twice
    assert lake.committed_batch() == 8
    counts = run_query(settings.lake_uri, "select count(*) as n, count(distinct event_id) as ids from events")
    assert counts.row(0) == (8 * 6, 8 * 6)


# Dagster history ------------------------------------------------------------------------------------

FINISHED = (dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED)
IN_FLIGHT = (
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
)
REPOSITORY = RemoteRepositoryOrigin(RegisteredCodeLocationOrigin("lakemail"), "__repository__")


@dg.asset
def probe() -> dg.MaterializeResult:
    """A real run's worth of events and compute logs."""
    print("a line of compute log")
    return dg.MaterializeResult()


def old_run(instance: dg.DagsterInstance, status: dg.DagsterRunStatus, days_ago: float) -> str:
    """A run as the instance would hold it had it been created `days_ago`."""
    origin = RemoteJobOrigin(REPOSITORY, "microbatch_job")  # queued runs need one
    run = dg.DagsterRun(
        job_name="microbatch_job", run_id=str(uuid.uuid4()), status=status, remote_job_origin=origin
    )
    instance.run_storage.add_historical_run(run, datetime.now(UTC) - timedelta(days=days_ago))
    return run.run_id


def instigator(instance: dg.DagsterInstance, name: str, kind: InstigatorType) -> InstigatorState:
    """The state the daemon stores for a running sensor or schedule (its ticks hang off it)."""
    data = ScheduleInstigatorData("30 * * * *") if kind == InstigatorType.SCHEDULE else SensorInstigatorData()
    origin = RemoteInstigatorOrigin(REPOSITORY, name)
    state = InstigatorState(origin, kind, InstigatorStatus.DECLARED_IN_CODE, data)
    instance.add_instigator_state(state)
    return state


def add_tick(instance: dg.DagsterInstance, state: InstigatorState, days_ago: float) -> None:
    moment = time.time() - days_ago * 24 * 3600
    instance.create_tick(
        TickData(
            instigator_origin_id=state.instigator_origin_id,
            instigator_name=state.name,
            instigator_type=state.instigator_type,
            status=TickStatus.SKIPPED,
            timestamp=moment,
            selector_id=state.selector_id,
        )
    )


def ticks(instance: dg.DagsterInstance, state: InstigatorState) -> int:
    return len(instance.get_tick_summaries(state.instigator_origin_id, state.selector_id))


def test_history_pruning_removes_old_finished_runs_and_keeps_recent_and_in_flight(
    settings: Settings, instance: dg.DagsterInstance
) -> None:
    old_finished = [old_run(instance, status, days_ago=10) for status in FINISHED]
    old_in_flight = [old_run(instance, status, days_ago=10) for status in IN_FLIGHT]
    recent = [old_run(instance, status, days_ago=6) for status in FINISHED]
    recent.append(dg.materialize([probe], instance=instance).run_id)
    sensor = instigator(instance, "landing_sensor", InstigatorType.SENSOR)
    schedule = instigator(instance, "maintenance_schedule", InstigatorType.SCHEDULE)
    for state in (sensor, schedule):
        for days_ago in (30, 9, 8, 6, 0):
            add_tick(instance, state, days_ago)

    result, metadata = materialize(settings, instance)  # history_retention_days=7

    remaining = {record.dagster_run.run_id for record in instance.get_run_records()}
    assert remaining == {*old_in_flight, *recent, result.run_id}
    assert metadata["runs_deleted"] == len(old_finished)
    assert (ticks(instance, sensor), ticks(instance, schedule)) == (2, 2)
    assert metadata["ticks_deleted"] == 6
    assert metadata["tables"] == "no Delta tables in the lake yet"


def test_tick_pruning_counts_every_page(instance: dg.DagsterInstance) -> None:
    sensor = instigator(instance, "landing_sensor", InstigatorType.SENSOR)
    for days_ago in (8, 9, 10, 11, 12, 1):
        add_tick(instance, sensor, days_ago)

    deleted = prune_ticks(instance, history_cutoff(datetime.now(UTC), 7), page=2)

    assert deleted == 5
    assert ticks(instance, sensor) == 1


def test_pruned_runs_leave_nothing_in_dagster_home(
    settings: Settings, instance: dg.DagsterInstance, tmp_path: Path
) -> None:
    finished = [dg.materialize([probe], instance=instance).run_id for _ in range(3)]
    in_flight = old_run(instance, dg.DagsterRunStatus.STARTED, days_ago=30)
    home = tmp_path / "dagster_home"
    # SQLite keeps a database file per run in DAGSTER_HOME; PostgreSQL (test-postgres) keeps nothing there.
    in_home = all(any(run_id in p.name for p in home.rglob("*")) for run_id in finished)
    assert in_home == isinstance(instance.event_log_storage, SqliteEventLogStorage)

    result, metadata = materialize(settings, instance, history_retention_days=0)

    assert metadata["runs_deleted"] == 3
    assert {r.dagster_run.run_id for r in instance.get_run_records()} == {in_flight, result.run_id}
    leftovers = [p for p in home.rglob("*") if any(run_id in p.name for run_id in finished)]
    assert leftovers == []  # the per-run event database and compute log folder went with the run
    if not in_home:  # PostgreSQL: the runs' events went with them (SQLite's went with their files)
        assert all(instance.all_logs(run_id) == [] for run_id in finished)


def test_pruned_runs_take_their_asset_check_executions_with_them(
    settings: Settings, landing: LandingResource, instance: dg.DagsterInstance
) -> None:
    """Dagster's `delete_run` leaves each run's rows of `asset_check_executions` (each with its serialized
    evaluation) behind: about 11 KB a micro-batch, kept forever unless maintenance deletes them too."""
    job = build_defs(settings).resolve_job_def("ingest_job")
    runs = []
    for n in range(3):
        land(settings, f"a{n}.ndjson", [track(f"m-{n}", anon="anon-1")])
        runs.append(job.execute_in_process(instance=instance).run_id)
    assert all(sorted(found) == sorted(runs) for found in check_runs(instance).values())

    _, metadata = materialize(settings, instance, history_retention_days=0)

    assert metadata["runs_deleted"] == 3
    assert all(found == [] for found in check_runs(instance).values())  # nothing of the pruned runs


def test_a_table_maintenance_cannot_mend_still_leaves_dagster_history_pruned(
    settings: Settings, lake: LakeResource, landing: LandingResource, instance: dg.DagsterInstance
) -> None:
    """Pruning Dagster's history came after the lake's tables, and the tables one after another: one table
    maintenance failed on (a data file lost from under it) failed every hourly run before any run was
    deleted (DAGSTER_HOME grew) and before the tables after it were compacted and vacuumed."""
    micro_batches(settings, lake, landing, 3)
    table = DeltaTable(f"{settings.lake_uri}/events")  # the first table maintenance takes
    os.remove(table.file_uris()[0])  # gone from disk, still in the table's log: compaction cannot read it
    old = old_run(instance, dg.DagsterRunStatus.SUCCESS, days_ago=10)
    before = {name: len(DeltaTable(f"{settings.lake_uri}/{name}").file_uris()) for name in TABLES}

    result = dg.materialize(
        [maintenance],
        instance=instance,
        resources={"lake": LakeResource(uri=settings.lake_uri)},
        raise_on_error=False,
    )

    assert not result.success  # the broken table is said (the run fails, `lakemail status` names it)
    [failure] = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    assert "1 table(s): events" in str(failure.step_failure_data.error)
    assert instance.get_run_by_id(old) is None  # yet the history is pruned
    after = {name: len(DeltaTable(f"{settings.lake_uri}/{name}").file_uris()) for name in TABLES}
    assert after["events"] == before["events"]
    assert all(after[name] < before[name] for name in ("ingest_log", "profile_updates", "quarantine"))


def check_runs(instance: dg.DagsterInstance) -> dict[dg.AssetCheckKey, list[str]]:
    """Every check of the ingest lane, with the runs its stored executions belong to."""
    keys = [
        dg.AssetCheckKey(dg.AssetKey(asset), name)
        for asset, name in (
            ("events", "events_event_id_unique"),
            ("events", "events_required_non_null"),
            ("quarantine", "quarantine_rate_under_limit"),
            ("ingest_log", "ingest_log_files_reconcile"),
            ("ingest_log", "no_failed_files"),
            ("identities", "identities_edge_unique"),
        )
    ]
    history = instance.event_log_storage.get_asset_check_execution_history
    return {key: [record.run_id for record in history(key, limit=100)] for key in keys}


# Wiring and report arithmetic ------------------------------------------------------------------------


def test_maintenance_names_are_pinned(settings: Settings) -> None:
    defs = build_defs(settings)
    graph = defs.resolve_asset_graph()
    assert graph.get(dg.AssetKey("maintenance")).group_name == "operations"
    assert defs.resolve_job_def("maintenance_job").asset_layer.selected_asset_keys == {
        dg.AssetKey("maintenance")
    }
    schedule = defs.resolve_schedule_def("maintenance_schedule")
    assert schedule.cron_schedule == "30 * * * *"
    assert schedule.job_name == "maintenance_job"
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    dg.Definitions.validate_loadable(defs)


def test_table_report_counts_only_vacuumed_files_as_reclaimed() -> None:
    before = {"a.parquet": 10, "b.parquet": 20, "c.parquet": 5}
    after = {"c.parquet": 5, "new.parquet": 28}
    report = table_maintenance("events", before, after, active_files=(3, 2), versions=(7, 10))
    assert (report.files_before, report.files_after) == (3, 2)
    assert (report.bytes_before, report.bytes_after, report.bytes_reclaimed) == (35, 33, 30)
    assert "| events | 3 | 2 | 3 | 2 | 35 | 33 | 30 | 7 | 10 |" in tables_markdown([report])


@pytest.mark.parametrize(
    ("days", "expected"), [(7, timedelta(days=7)), (0.5, timedelta(hours=12)), (0, timedelta())]
)
def test_history_cutoff(days: float, expected: timedelta) -> None:
    now = datetime(2026, 11, 22, tzinfo=UTC)
    assert history_cutoff(now, days) == now - expected


def test_negative_history_retention_is_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        history_cutoff(datetime.now(UTC), -1)
