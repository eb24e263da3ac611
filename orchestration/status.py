"""`lakemail status`: backlog, last run, freshness, latency, sends and failures, for people and probes."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg
import polars as pl

from orchestration.jobs import ERASURE_JOB
from orchestration.lanes import DECIDE, INGEST, LANES, runs_in_flight
from orchestration.leases import gone_reason
from orchestration.settings import Settings
from orchestration.status_erasure import erasure_waiting, failed_certificates
from orchestration.status_jobs import job_failures
from orchestration.status_lanes import decide_waiting, every_taker, lane_runs, lane_takers, last_commit
from resources.lake import LakeResource
from resources.landing import LandingResource
from resources.state import StateResource
from stores.ingest import backlog
from stores.operations.checks import COVERED_BY
from transforms.operations.status import (
    FAILED_STATUSES,
    FailedCertificate,
    LaneState,
    OpenFailure,
    RunInFlight,
    TableFreshness,
    judge,
    latency_percentiles,
    table_freshness,
)
from transforms.schema import INGEST_LOG_SCHEMA

JUDGED_TABLES = ("ingest_log", "events")  # written by every micro-batch
# Tables fed from the landing zone; operational ones (audit_results, erasures, ...) keep their own pace.
CHAIN_TABLES = ("events", "quarantine", "ingest_log", "identities", "profiles", "triggers", "sends")


def _covered_commit(lake: LakeResource, name: str) -> datetime | None:
    """The table's last commit, or its batch's when later: a batch with no rows for it commits none, and
    the commit of the table COVERED_BY names covers it (found by `make run`: `quarantine` read STALE in a
    shop with no bad line for minutes), as the asset checks `*_fresh` judge it."""
    commits = [last_commit(lake, n) for n in (name, COVERED_BY.get(name)) if n]
    return max((c for c in commits if c is not None), default=None)


def _backlog(lake: LakeResource, landing: LandingResource, now: datetime) -> dict[str, Any]:
    landed, pending = backlog(lake, landing)
    oldest = pending["landed_at"].min() if pending.height else None  # when it appeared here: this clock
    age = (now - oldest).total_seconds() if isinstance(oldest, datetime) else None
    dated = pending["modified_at"].max() if pending.height else None
    ahead = (dated - now).total_seconds() if isinstance(dated, datetime) else 0.0
    return {
        "files": pending.height,
        "bytes": int(pending["bytes"].sum()),
        "oldest_age_seconds": None if age is None else round(max(0.0, age), 3),
        # A file dated (its mtime) in the future: the producer's clock is ahead of this machine's.
        "clock_skew_seconds": round(ahead, 3) if ahead > 0 else None,
        "newest_landed_at": landed["landed_at"].max() if landed.height else None,
    }


def _in_flight(instance: dg.DagsterInstance | None, now: datetime) -> list[RunInFlight]:
    """Runs of either lane queued or running, each with why its executor is gone (orchestration.leases)."""
    if instance is None:
        return []
    return [
        RunInFlight(
            r.dagster_run.run_id,
            r.dagster_run.status.value,
            round(max(0.0, now.timestamp() - (r.start_time or r.create_timestamp.timestamp())), 1),
            gone_reason(instance, r, now.timestamp()),
        )
        for r in runs_in_flight(instance)
    ]


def _latency(lake: LakeResource, now: datetime) -> dict[str, Any]:
    """Landed -> committed per file committed in the last hour, from `ingest_log`.

    Not from `events`: its partitions are by event date, and a late event (yesterday's, landed now)
    would fall outside any date window, while `ingest_log` has one small row per landed file.
    """
    log = lake.read("ingest_log", INGEST_LOG_SCHEMA, ["status", "landed_at", "committed_at"])
    recent = log.filter(
        (pl.col("status") == "committed") & (pl.col("committed_at") >= now - timedelta(hours=1))
    )
    return latency_percentiles(recent, pl.col("landed_at"), pl.col("committed_at"))


def _counts(lake: LakeResource, name: str, column: str) -> dict[str, int] | None:
    if lake.version(name) is None:
        return None  # "no sends table yet", not "no sends"
    frame = lake.scan(name, {column: pl.String()}).group_by(column).agg(pl.len()).collect()
    return {str(k): int(v) for k, v in frame.iter_rows()}


def _failed_files_last_hour(lake: LakeResource, now: datetime) -> int:
    log = lake.read("ingest_log", INGEST_LOG_SCHEMA, ["status", "committed_at"])
    return log.filter(
        (pl.col("status") == "failed") & (pl.col("committed_at") >= now - timedelta(hours=1))
    ).height


def status_report(
    settings: Settings,
    instance: dg.DagsterInstance | None,
    *,
    max_lag: timedelta = timedelta(minutes=2),
    now: datetime | None = None,
) -> dict[str, Any]:
    """Everything `lakemail status` shows, as plain JSON-able data, with the health verdict."""
    now = now or datetime.now(UTC)
    lake, landing = LakeResource(uri=settings.lake_uri), LandingResource(uri=settings.landing_uri)
    backlog = _backlog(lake, landing, now)
    newest = backlog.pop("newest_landed_at")
    newest = min(newest, now) if newest is not None else None  # a file dated ahead: clock skew, not lag
    chain = [n for n in lake.table_names() if n in CHAIN_TABLES]
    freshness = [table_freshness(n, _covered_commit(lake, n), newest, max_lag) for n in chain]
    judged = [f for f in freshness if f.name in JUDGED_TABLES] or [
        table_freshness("ingest_log", None, newest, max_lag)
    ]
    runs, in_flight = lane_runs(instance, now), _in_flight(instance, now)
    takers = lane_takers(lake, instance, now)
    waiting = decide_waiting(lake, StateResource(uri=settings.state_store_uri), instance, now)
    lanes = _lane_health(runs, takers, waiting)
    failures = job_failures(instance, now)
    erasure, certificates = erasure_waiting(landing, instance, now), failed_certificates(lake, now)
    failed_files = _failed_files_last_hour(lake, now)
    health = judge(
        backlog_oldest_seconds=backlog["oldest_age_seconds"],
        freshness=judged,
        failed_files_last_hour=failed_files,
        max_lag=max_lag,
        backlog_files=backlog["files"],
        in_flight=in_flight,
        takers=takers[INGEST],
        lanes=[_lane_state(lane, health) for lane, health in lanes.items()],
        failures=[
            *(OpenFailure(f["job"], f["run_id"], f["status"], f["job"] == ERASURE_JOB) for f in failures),
            *certificates,
        ],
        erasure=erasure,
    )
    return {
        "checked_at": now.isoformat(),
        "healthy": health.healthy,
        "problems": health.problems,
        "backlog": backlog,
        "takers": every_taker(takers),
        "runs_in_flight": [asdict(r) for r in in_flight],
        "last_run": runs["last"],
        "lanes": runs["lanes"],
        "lane_health": lanes,
        "failed_runs_last_hour": runs["failed_last_hour"],
        "failed_files_last_hour": failed_files,
        "open_failures": _open_failures(lanes, failures) + [_certificate_json(c) for c in certificates],
        "erasure": asdict(erasure),
        "freshness": {f.name: _freshness_json(f) for f in freshness},
        "latency_seconds_last_hour": {"landed_to_committed": _latency(lake, now)},
        "sends_by_status": _counts(lake, "sends", "status"),
        "quarantine_by_reason": _counts(lake, "quarantine", "reason"),
    }


def _lane_health(
    runs: dict[str, Any], takers: dict[str, list[str] | None], decide_work: dict[str, Any]
) -> dict[str, dict[str, Any]]:
    """Per lane: what takes it, its last finished run and whether that failed; the decide lane's waiting
    work (the ingest lane's is the backlog)."""
    lanes: dict[str, dict[str, Any]] = {}
    for lane in LANES:
        finished = runs["finished"][lane]
        failed = finished is not None and finished["status"] in FAILED_STATUSES
        lanes[lane] = {"takers": takers[lane], "last_finished": finished, "failed": failed}
    lanes[DECIDE] |= decide_work
    return lanes


def _open_failures(lanes: dict[str, dict[str, Any]], jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every failed run no later run of its lane, job or request succeeded (a `process` run once)."""
    failed = [health["last_finished"] for health in lanes.values() if health["failed"]] + jobs
    return list({run["run_id"]: run for run in failed}.values())


def _certificate_json(failed: FailedCertificate) -> dict[str, Any]:
    """A failed certificate as an open failure: of no run (its run succeeded), of a request."""
    return {"job": ERASURE_JOB, "run_id": None, "status": "TRACES_LEFT", **asdict(failed)}


def _lane_state(lane: str, health: dict[str, Any]) -> LaneState:
    finished = health["last_finished"] or {}
    return LaneState(
        lane,
        takers=health["takers"],
        last_status=finished.get("status"),
        last_run_id=finished.get("run_id"),
        waiting_seconds=health.get("waiting_seconds"),
        waiting_for=", ".join(health.get("waiting_for", ())),
    )


def _freshness_json(f: TableFreshness) -> dict[str, Any]:
    last = f.last_commit_at.isoformat() if f.last_commit_at else None
    return {"last_commit_at": last, "lag_seconds": f.lag_seconds, "stale": f.stale}


def render_status(report: dict[str, Any]) -> str:
    """The report for a person at a terminal."""
    latency = report["latency_seconds_last_hour"]
    lines = [f"lakemail status: {'HEALTHY' if report['healthy'] else 'UNHEALTHY'}  ({report['checked_at']})"]
    lines += [f"  ! {problem}" for problem in report["problems"]]
    lines += _render_work(report)
    runs, files = report["failed_runs_last_hour"], report["failed_files_last_hour"]
    opened = len(report["open_failures"])
    lines.append(f"failures:  {runs} failed runs, {files} failed files (1 h); {opened} open")
    erasure = report["erasure"]
    if erasure["pending_requests"] or erasure["runs_in_flight"]:
        age = erasure["oldest_age_seconds"]
        waiting = f"{erasure['pending_requests']} requests waiting" + (
            f", oldest {age:.1f} s" if age is not None else ""
        )
        lines.append(f"erasure:   {waiting}; {erasure['runs_in_flight']} runs in flight")
    lines.append("freshness (newest landed file -> table's last commit):")
    for name, f in report["freshness"].items():
        lag = "n/a" if f["lag_seconds"] is None else f"{f['lag_seconds']:.1f} s"
        lines.append(f"  {name:<14} {lag:>10}  {'STALE' if f['stale'] else 'ok'}")
    p = latency["landed_to_committed"]
    if p["count"]:
        figures = f"p50 {p['p50']} s, p95 {p['p95']} s, p99 {p['p99']} s"
        lines.append(f"latency landed -> committed (1 h, {p['count']} files): {figures}")
    else:
        lines.append("latency landed -> committed (1 h): no data")
    lines.append(f"sends:     {_counted(report['sends_by_status'], 'no sends table yet')}")
    quarantine = report["quarantine_by_reason"]
    if quarantine:
        lines.append(f"quarantine: {_counted(quarantine, '')}")
    return "\n".join(lines) + "\n"


def _render_work(report: dict[str, Any]) -> list[str]:
    """Backlog, who takes it, the runs in flight and the last run."""
    backlog, last, takers = report["backlog"], report["last_run"], report["takers"]
    age = backlog["oldest_age_seconds"]
    lines = [
        f"backlog:   {backlog['files']} files, {backlog['bytes']:,} bytes waiting"
        + (f", oldest {age:.1f} s" if age is not None else "")
    ]
    if backlog.get("clock_skew_seconds"):
        skew = backlog["clock_skew_seconds"]
        lines.append(
            f"           (a file is dated {skew:.1f} s ahead of this clock: its producer's clock skew)"
        )
    if takers is not None:
        lines.append(f"taken by:  {', '.join(takers) or 'nothing (no runner heartbeat, no daemon)'}")
    for run in report["runs_in_flight"]:
        state = f"executor gone: {run['gone']}" if run["gone"] else "executor alive"
        lines.append(f"in flight: {run['run_id']} {run['status']} for {run['age_seconds']:.0f} s ({state})")
    if last:
        lines.append(f"last run:  {last['status']} {last['age_seconds']:.1f} s ago ({last['run_id']})")
    else:
        lines.append("last run:  none yet")
    for lane, run in (report.get("lanes") or {}).items():
        said = "none yet"
        if run:
            said = f"{run['status']} {run['age_seconds']:.1f} s ago ({run['job']} {run['run_id']})"
        lines.append(f"  {lane + ' lane:':<13}{said}")
    decide = (report.get("lane_health") or {}).get(DECIDE) or {}
    if decide.get("waiting_seconds") is not None:
        why = ", ".join(decide["waiting_for"])
        lines.append(f"  {'decide work:':<13}waiting {decide['waiting_seconds']:.1f} s ({why})")
    return lines


def _counted(counts: dict[str, int] | None, none: str) -> str:
    """`{"sent": 3, "failed": 1}` as "3 sent, 1 failed" (most first); `none` for None."""
    if counts is None:
        return none
    return ", ".join(f"{n:,} {key}" for key, n in sorted(counts.items(), key=lambda kv: -kv[1])) or "none"


def status_command(settings: Settings, *, json_output: bool, max_lag_s: float) -> int:
    """`lakemail status`: the report as text (or JSON); exit 1 when unhealthy."""
    import json
    import sys

    from orchestration.instance import existing_instance

    instance = existing_instance(settings)
    report = status_report(settings, instance, max_lag=timedelta(seconds=max_lag_s))
    sys.stdout.write(json.dumps(report, indent=2) + "\n" if json_output else render_status(report))
    return 0 if report["healthy"] else 1
