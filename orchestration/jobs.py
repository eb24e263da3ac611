"""Every job of lakemail: the two lanes (and both in one micro-batch), the audit, maintenance, erasure
and what the emails earn."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import dagster as dg

from assets.audits import audit_selection
from assets.erasure import erase_requests
from assets.ingest import INGEST_GROUP
from assets.maintenance import maintenance
from assets.measure import MEASURE_GROUP
from assets.profiles import PROFILES_GROUP
from assets.triggers import DECISIONS_GROUP
from stores.operations.checks import INGEST_TABLES

MICROBATCH_JOB = "microbatch_job"
INGEST_JOB, DECIDE_JOB = "ingest_job", "decide_job"
ERASURE_JOB = "erasure_job"
PROFILES_JOB = "profiles_job"
AUDIT_JOB, MAINTENANCE_JOB, MEASURE_JOB = "audit_job", "maintenance_job", "measure_job"
# The jobs beside the lanes that schedules launch (`lakemail status` judges each one's last run).
SCHEDULED_JOBS = (AUDIT_JOB, MAINTENANCE_JOB, PROFILES_JOB, MEASURE_JOB)
CHAIN_TABLES = (*INGEST_TABLES, "profiles", "triggers", "sends")
# The two lanes (#15): ingest (landed files -> events, quarantine, identities, ingest_log, the store's
# ingest namespaces) and decide + deliver (triggers, sends), each its own run under its own lake lock, so
# that a landed file never waits for a delivery.
INGEST_LANE = dg.AssetSelection.groups(INGEST_GROUP)
DECIDE_LANE = dg.AssetSelection.groups(DECISIONS_GROUP)
# The jobs whose runs in flight occupy each lane: `microbatch_job` (`lakemail process`) runs both.
LANE_JOBS = {"ingest": (INGEST_JOB, MICROBATCH_JOB), "decide": (DECIDE_JOB, MICROBATCH_JOB)}
# In-process: one interpreter per run, not one per step (about 1.3 s saved per step). The in-run checks
# ride with their assets; the hourly monitor checks belong to audit_job.

ingest_job = dg.define_asset_job(
    INGEST_JOB,
    selection=INGEST_LANE - audit_selection(CHAIN_TABLES),
    description="The ingest lane: everything landed since the last run -> events, ..., the state store.",
    executor_def=dg.in_process_executor,
)

decide_job = dg.define_asset_job(
    DECIDE_JOB,
    selection=DECIDE_LANE - audit_selection(CHAIN_TABLES),
    description="The decide lane: triggers over the committed batches and due ones, then delivery (sends).",
    executor_def=dg.in_process_executor,
)

microbatch_job = dg.define_asset_job(
    MICROBATCH_JOB,
    selection=(INGEST_LANE | DECIDE_LANE) - audit_selection(CHAIN_TABLES),
    description="Both lanes in one run, ingest then decide (`lakemail process`, `lakemail retry`).",
    executor_def=dg.in_process_executor,
)

audit_job = dg.define_asset_job(
    AUDIT_JOB,
    selection=audit_selection(CHAIN_TABLES),
    description="Audit the lake: checks, latency SLO, quarantine and failure trends -> audit_results.",
    executor_def=dg.in_process_executor,  # no second interpreter per step
)

maintenance_job = dg.define_asset_job(
    MAINTENANCE_JOB,
    selection=dg.AssetSelection.assets(maintenance),
    description="Compact and vacuum the lake's Delta tables; prune old Dagster runs and ticks.",
    executor_def=dg.in_process_executor,  # one step: no second interpreter
)

profiles_job = dg.define_asset_job(
    PROFILES_JOB,
    selection=dg.AssetSelection.groups(PROFILES_GROUP),
    description="Off the hot path: fold the lake's profile partials now and then; rewrite `profiles` "
    "from the state store (schedule: LAKEMAIL_PROFILES_REFRESH).",
    executor_def=dg.in_process_executor,
)

measure_job = dg.define_asset_job(
    MEASURE_JOB,
    selection=dg.AssetSelection.groups(MEASURE_GROUP),
    description="What the emails earn: attributions, then experiments (uplift against the holdout).",
    executor_def=dg.in_process_executor,
)


@dg.job(
    name=ERASURE_JOB,
    description="GDPR erasure: remove a person from every table, old version and landed file; certify it.",
    executor_def=dg.in_process_executor,
)
def erasure_job() -> None:
    erase_requests()


# A lane's run (and `lakemail retry --failed`'s) names its files in its run config only while their paths are
# few: Dagster stores every run's config in its run storage, and a 20k-file backlog named in full is a
# megabyte per run (and per retry).
MANIFEST_MAX_CHARS = 16 * 1024


def lane_manifest(files: Sequence[str]) -> list[str] | None:
    """The `files` an ingest lane's run names (`ingest_config`): all of them while their paths total at
    most MANIFEST_MAX_CHARS (the run stats each one, listing nothing); past that none, and the run lists
    the landing zone itself and takes everything waiting then: the files the lane saw and any landed
    since, each exactly once (`ingest_log`), in one run whatever the backlog."""
    if sum(len(path) + 4 for path in files) > MANIFEST_MAX_CHARS:  # a path and its quotes, comma, space
        return None
    return list(files)


def ingest_config(
    files: list[str] | None, max_batch_mb: int, now: str | None = None, retry: list[str] | None = None
) -> dict[str, Any]:
    """Run config of an ingest run: its files (None = everything landed), the failed files to take
    again (`lakemail retry`) and the run's one clock."""
    ingest = {"files": files, "max_batch_mb": max_batch_mb, "now": now, "retry": retry or []}
    return {"ops": {"ingest_stage": {"config": ingest}}}


def retry_config(named: list[str] | None, failed_through: int, max_batch_mb: int) -> dict[str, Any]:
    """Run config of a `lakemail retry` run (`microbatch_job`): failed landing files taken again now, and no
    other landed file (`files: []`). The `named` ones (`lane_manifest` of them, for `--failed`); past its
    limit (None) the config names none, and the run finds the same files itself: those failing as of batch
    `failed_through` (ingest_log up to it), which a run retry of it finds again whatever landed since."""
    config = microbatch_config([], max_batch_mb, retry=named)
    if named is None:
        config["ops"]["ingest_stage"]["config"]["retry_failed_through"] = failed_through
    return config


def decide_config(now: str | None = None) -> dict[str, Any]:
    """Run config of a decide run: its one clock (None = the wall clock when each step starts)."""
    clock = {"config": {"now": now}}
    return {"ops": {"triggers": clock, "sends": clock}}


def microbatch_config(
    files: list[str] | None, max_batch_mb: int, now: str | None = None, retry: list[str] | None = None
) -> dict[str, Any]:
    """Run config of `microbatch_job`: both lanes' (`ingest_config`, then `decide_config`)."""
    ops = {**ingest_config(files, max_batch_mb, now, retry)["ops"], **decide_config(now)["ops"]}
    return {"ops": ops}
