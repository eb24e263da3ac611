"""Who executes a micro-batch run, and whether it still does: in flight must mean alive.

A run that `lakemail runner` or `lakemail process` executes in its own process (`execute_leased`) carries
its executor in its tags (host, pid, the process's start time), and the executor renews a lease in the
instance's key-value store while it runs. `gone_reason` tells a live run from a dead one: on the
executor's own host the pid decides (no such process, or a newer process under the same pid); from
another host the lease does (not renewed for `LEASE_TTL_S`). A run the daemon launches for the landing
sensor carries the host of its run worker (`WORKER_HOST`: the code server's, which starts the worker);
on that host the pid Dagster records for the worker decides. A run with neither (launched from the UI,
or by an older lakemail) is judged so when the instance lives in SQLite (one host); in PostgreSQL its
worker may be on any host, and Dagster's own monitoring keeps it. A lease is deleted when its holder's
last leased run ends; one whose holder died expires and goes when the next lease is taken.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import sqlalchemy as db
from dagster._core.events import DagsterEventType, JobFailureData, RunFailureReason
from dagster._core.storage.runs.schema import KeyValueStoreTable
from dagster._core.storage.runs.sql_run_storage import SqlRunStorage
from dagster._core.storage.runs.sqlite.sqlite_run_storage import SqliteRunStorage

LAUNCHED_BY = "lakemail/launched_by"
WORKER_HOST = "lakemail/worker_host"
HOST, PID, STARTED = "lakemail/executor_host", "lakemail/executor_pid", "lakemail/executor_started"
LEASE_PREFIX = "lakemail/lease/"
LEASE_RENEW_S = 5.0
LEASE_TTL_S = 30.0  # six renewals missed: the executor (or its machine) is gone
START_TOLERANCE_S = 2.0  # process start times read from /proc are exact to the boot time's second
log = logging.getLogger("lakemail")
_RELEASING = threading.Lock()
_LEASES = threading.Lock()
_HELD: dict[str, int] = {}  # lease keys this process holds, by how many of its blocks hold each


@dataclass(frozen=True)
class Executor:
    """One process on one host: the executor of in-process runs."""

    host: str
    pid: int
    started: float | None  # epoch seconds; None where /proc is not there

    @classmethod
    def current(cls) -> Executor:
        return cls(socket.gethostname(), os.getpid(), process_started(os.getpid()))

    @classmethod
    def of(cls, tags: Mapping[str, str]) -> Executor | None:
        if HOST not in tags or not tags.get(PID, "").isdigit():
            return None
        started = tags.get(STARTED)
        return cls(tags[HOST], int(tags[PID]), float(started) if started else None)

    def tags(self) -> dict[str, str]:
        started = f"{self.started:.2f}" if self.started is not None else ""
        return {HOST: self.host, PID: str(self.pid), STARTED: started}

    @property
    def lease_key(self) -> str:
        return f"{LEASE_PREFIX}{self.host}/{self.pid}/{self.started or 0:.0f}"

    def __str__(self) -> str:
        return f"pid {self.pid} on {self.host}"


def process_started(pid: int) -> float | None:
    """When process `pid` of this host started (epoch s), from /proc; None when unknown or not running."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        boot = next(line for line in Path("/proc/stat").read_text().splitlines() if line.startswith("btime"))
    except (OSError, StopIteration):
        return None
    fields = stat.rsplit(")", 1)[1].split()  # after "pid (comm)": state is field 3, starttime field 22
    if fields[0] in ("Z", "X"):  # a zombie has exited; only its exit status waits to be collected
        return None
    return int(boot.split()[1]) + int(fields[19]) / os.sysconf("SC_CLK_TCK")


def pid_alive(pid: int) -> bool:
    """Whether a process `pid` runs on this host (a zombie does not run)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process: alive
    return not Path("/proc/self/stat").exists() or process_started(pid) is not None


def _local_gone(executor: Executor, since: float | None) -> str | None:
    """Why `executor`, on this host, is not running a run that started at `since`; None if it is."""
    if not pid_alive(executor.pid):
        return f"its executor ({executor}) is gone"
    started = process_started(executor.pid)
    known = executor.started if executor.started is not None else since
    if started is not None and known is not None and started > known + START_TOLERANCE_S:
        return f"its executor ({executor}) is gone: that pid now belongs to a process started later"
    return None


def lease_renewed_at(instance: dg.DagsterInstance, executor: Executor) -> float | None:
    value = instance.run_storage.get_cursor_values({executor.lease_key}).get(executor.lease_key)
    return float(value) if value else None


def gone_reason(instance: dg.DagsterInstance, record: dg.RunRecord, now: float | None = None) -> str | None:
    """Why the in-flight run of `record` has no live executor any more; None while it has one."""
    run, now = record.dagster_run, now if now is not None else time.time()
    executor = Executor.of(run.tags)
    if executor is None:
        return _untagged_gone(instance, record)
    if executor.host == socket.gethostname():
        return _local_gone(executor, record.start_time)
    renewed = lease_renewed_at(instance, executor) or record.create_timestamp.timestamp()
    if now - renewed > LEASE_TTL_S:
        return f"its executor ({executor}) has not renewed its lease for {now - renewed:.0f} s"
    return None


def worker_tags() -> dict[str, str]:
    """Tags of a run the daemon launches from this code server: its run worker starts on this host."""
    return {WORKER_HOST: socket.gethostname()}


def _untagged_gone(instance: dg.DagsterInstance, record: dg.RunRecord) -> str | None:
    """A run without executor tags: the run worker's pid Dagster logged, if the worker is on this host."""
    host = record.dagster_run.tags.get(WORKER_HOST)
    if host is None and not isinstance(instance.run_storage, SqliteRunStorage):
        return None  # the run worker may be on another host: Dagster's run monitoring keeps it
    if host is not None and host != socket.gethostname():
        return None  # another host's run worker: its pids are not ours to judge
    pids = [
        entry.dagster_event.engine_event_data.metadata.get("pid")
        for entry in instance.all_logs(record.dagster_run.run_id, of_type=DagsterEventType.ENGINE_EVENT)
        if entry.dagster_event is not None
    ]
    pid = next((str(p.value) for p in pids if p is not None and str(p.value).isdigit()), None)
    if pid is None:
        return None  # not started yet: Dagster's start timeout covers a run that never starts
    return _local_gone(Executor(socket.gethostname(), int(pid), None), record.start_time)


def release_if_dead(instance: dg.DagsterInstance, record: dg.RunRecord) -> str | None:
    """Mark the run of `record` failed, with the reason, when its executor is gone; returns the reason."""
    reason = gone_reason(instance, record)
    if reason is None:
        return None
    with _RELEASING:  # the runner's two lanes may both find a dead run of both (`microbatch_job`): once
        run = instance.get_run_by_id(record.dagster_run.run_id)
        if run is None or run.is_finished:
            return None
        message = f"lakemail: {reason}; run marked failed so that its batch is taken again at once"
        failure = JobFailureData(error=None, failure_reason=RunFailureReason.UNEXPECTED_TERMINATION)
        instance.report_run_failed(run, message, failure)
    return str(reason)


def launch_tags(launched_by: str) -> dict[str, str]:
    """Tags of a run a lakemail command executes: the UI's "Launched by" column shows `launched_by`."""
    # The next micro-batch takes a failed run's files again (ingest_log); Dagster's retry cannot
    # re-execute a run without a code location origin and would only log that it could not.
    return {LAUNCHED_BY: launched_by, "user": launched_by, "dagster/max_retries": "0"}


def lease_keys(instance: dg.DagsterInstance) -> dict[str, str]:
    """Every lease in the instance's key-value store, key -> when last renewed (epoch s, as text)."""
    storage = instance.run_storage
    if not isinstance(storage, SqlRunStorage):
        return {}
    kvs = KeyValueStoreTable
    rows = storage.fetchall(db.select(kvs.c.key, kvs.c.value).where(kvs.c.key.startswith(LEASE_PREFIX)))
    return {row["key"]: row["value"] for row in rows}


def drop_leases(instance: dg.DagsterInstance, keys: Collection[str] | Mapping[str, str]) -> None:
    """Delete `keys` from the instance's key-value store (Dagster's API sets and reads keys, deletes none:
    its table, through the run storage's own connection, SQLite or PostgreSQL). Keys given with the value
    read go only while they still hold it (found by review: a holder renewing between another process's
    read and its delete lost its lease, and its run was judged gone by the run's creation time)."""
    storage, kvs = instance.run_storage, KeyValueStoreTable
    if not keys or not isinstance(storage, SqlRunStorage):
        return
    with storage.connect() as connection:
        if not isinstance(keys, Mapping):
            connection.execute(kvs.delete().where(kvs.c.key.in_(sorted(keys))))
            return
        for key, value in sorted(keys.items()):
            connection.execute(kvs.delete().where(kvs.c.key == key, kvs.c.value == value))


def drop_expired_leases(instance: dg.DagsterInstance, now: float | None = None) -> int:
    """Delete the leases not renewed for LEASE_TTL_S (their executors died holding them: a lease whose
    holder ends is deleted then); a run they name is judged gone all the same. Returns how many."""
    now = now if now is not None else time.time()
    expired = {k: v for k, v in lease_keys(instance).items() if not _renewed_within(v, now, LEASE_TTL_S)}
    drop_leases(instance, expired)  # as read: one renewed meanwhile stays
    return len(expired)


def _renewed_within(value: str, now: float, seconds: float) -> bool:
    try:
        return now - float(value) <= seconds
    except ValueError:
        return False


@contextmanager
def lease(
    instance: dg.DagsterInstance, executor: Executor, on_renew: Callable[[], None] | None = None
) -> Iterator[None]:
    """Keep `executor`'s lease fresh (every LEASE_RENEW_S, and `on_renew`) while the block runs; the last
    block of this process holding it deletes it, and expired leases of dead executors go when it starts,
    so the instance keeps one key per live executor, not one per process that ever ran a micro-batch."""
    key = executor.lease_key
    with _LEASES:
        _HELD[key] = _HELD.get(key, 0) + 1
    try:
        drop_expired_leases(instance)
    except Exception as error:  # housekeeping: never a reason not to run
        log.warning("expired leases not deleted (%s)", type(error).__name__)
    try:
        with _renewed(instance, executor, on_renew):
            yield
    finally:
        with _LEASES:  # a block of this process starting meanwhile keeps the key
            _HELD[key] -= 1
            if not _HELD[key]:
                del _HELD[key]
                try:
                    drop_leases(instance, [key])
                except Exception as error:  # it expires: the next lease taken deletes it
                    log.warning("lease not deleted (%s)", type(error).__name__)


@contextmanager
def _renewed(
    instance: dg.DagsterInstance, executor: Executor, on_renew: Callable[[], None] | None
) -> Iterator[None]:
    done = threading.Event()

    def renew() -> None:
        while True:
            try:
                instance.run_storage.set_cursor_values({executor.lease_key: f"{time.time():.3f}"})
                if on_renew is not None:
                    on_renew()
            except Exception as error:  # a missed renewal must not end the run
                log.warning("lease renewal failed (%s); retrying", type(error).__name__)
            if done.wait(LEASE_RENEW_S):
                return

    thread = threading.Thread(target=renew, name="lakemail-lease", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join(LEASE_RENEW_S)


def execute_leased(
    job: dg.JobDefinition,
    instance: dg.DagsterInstance,
    run_config: dict[str, Any],
    launched_by: str,
    *,
    tags: Mapping[str, str] | None = None,
    run_id: str | None = None,
    on_renew: Callable[[], None] | None = None,
) -> dg.ExecuteInProcessResult:
    """`job.execute_in_process` under this process's name and lease, so that nobody waits on it if it dies."""
    executor = Executor.current()
    with lease(instance, executor, on_renew):
        return job.execute_in_process(
            instance=instance,
            run_config=run_config,
            run_id=run_id or str(uuid.uuid4()),
            tags={**launch_tags(launched_by), **executor.tags(), **(tags or {})},
            raise_on_error=False,
        )
