"""Asset checks on every lake table: thin Dagster wrappers around the lake checks of stores/operations.

Which check runs on which table, and what it reads, is in stores/operations/checks.py. Here the checks
become Dagster steps: the blocking ones right after their table, the reporting ones after the run's last
table, and the hourly monitors in one step of `audit_job`.
"""

from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import dagster as dg

from assets.clock import run_now
from assets.metadata import RUN_BATCHES, RUN_EVALUATION
from resources.lake import LakeResource
from resources.lake_held import held_snapshot
from resources.landing import LandingResource
from resources.state import StateResource
from stores.operations.checks import INGEST_TABLES, TABLES, LakeCheck, checks_for, evaluate, tables_read
from stores.operations.probe import Probe, Scope
from transforms.operations.checks import Thresholds
from transforms.schema import RUN_APP

RECENT = timedelta(hours=1)  # look-back before the run's now for tables without a batch number (sends)
CHECK_STEPS: tuple[tuple[str, frozenset[str]], ...] = (
    ("ingest_checks", INGEST_TABLES),
    ("profiles_checks", frozenset({"profiles"})),
    ("triggers_checks", frozenset({"triggers"})),
    ("sends_checks", frozenset({"sends"})),
)
MONITOR_STEP = "lake_monitor_checks"
INGEST_LOG, TRIGGERS = dg.AssetKey("ingest_log"), dg.AssetKey("triggers")
AFTER_STEP = "batch_checks"  # the in-run checks that only report, after the run's last table


def check_key(check: LakeCheck) -> dg.AssetCheckKey:
    return dg.AssetCheckKey(dg.AssetKey(check.asset), check.name)


@dataclass(frozen=True)
class RunCommits:
    """What this run committed, as its materializations say: its first and last batch (`ingest_log`) and
    its engine run (`triggers`); None for what it did not commit."""

    first: int | None = None
    last: int | None = None
    evaluation: int | None = None


def run_commits(context: dg.AssetCheckExecutionContext) -> RunCommits:
    """The batches this run committed (under load one run commits several) and its engine run."""
    records = context.instance.get_records_for_run(
        context.run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION
    ).records
    found = RunCommits()
    for record in records:
        materialization = record.asset_materialization
        if materialization is None:
            continue
        key, metadata = materialization.asset_key, materialization.metadata
        batches = metadata.get(RUN_BATCHES)
        listed = batches.value if isinstance(batches, dg.JsonMetadataValue) else None
        if key == INGEST_LOG and isinstance(listed, list) and listed:
            found = replace(found, first=min(listed), last=max(listed))
        evaluation = metadata.get(RUN_EVALUATION)
        if key == TRIGGERS and isinstance(evaluation, dg.IntMetadataValue) and evaluation.value is not None:
            found = replace(found, evaluation=evaluation.value)
    return found


def in_run_scope(
    context: dg.AssetCheckExecutionContext, lake: LakeResource, now: datetime, *, decisions: bool
) -> Scope:
    """What the in-run checks judge: the batches this run committed (without one, the lake's last: a run
    of the decide lane, or that ingested nothing), with `decisions` its engine run (without one, the
    lake's last), and the hour before the run's `now` for tables with neither."""
    run = run_commits(context)
    last = run.last if run.last is not None else lake.committed_batch()
    evaluation = run.evaluation
    if decisions and evaluation is None:
        evaluation = lake.app_version("triggers", RUN_APP)
    return Scope(batch_id=last, first_batch=run.first, since=now - RECENT, evaluation=evaluation)


def _spec(check: LakeCheck, after: str | None) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(
        check.name,
        asset=check.asset,
        description=check.description,
        blocking=check.blocking,
        additional_deps=[after] if after is not None and check.asset != after else None,
    )


def _check_step(
    name: str,
    checks: list[LakeCheck],
    thresholds: Thresholds,
    *,
    in_run: bool,
    after: str | None = None,
) -> dg.AssetChecksDefinition:
    tables = ", ".join(sorted({c.asset for c in checks}))

    @dg.multi_asset_check(
        name=name,
        specs=[_spec(c, after) for c in checks],
        can_subset=True,
        description=f"Checks on {tables}: "
        + ("what the latest batch added." if in_run else "the last hour."),
    )
    def check_step(
        context: dg.AssetCheckExecutionContext,
        lake: LakeResource,
        landing: LandingResource,
        state: StateResource,
    ) -> Iterator[dg.AssetCheckResult]:
        now = run_now(context.run.run_config)  # the run's one clock: `lakemail process --now`
        decisions = any(c.asset == "triggers" for c in checks)
        scope = in_run_scope(context, lake, now, decisions=decisions) if in_run else Scope(since=now - RECENT)
        store = state.existing() if in_run else None  # in-run: what the batch wrote, through the store
        # In-run: the tables its checks read as the step starts, held open between runs (#17).
        with held_snapshot(lake, tables_read(checks)) if in_run else nullcontext(lake) as seen:
            probe = Probe(seen, landing, scope, thresholds, now, state=store)
            outcomes = [
                (c, evaluate(c, probe)) for c in checks if check_key(c) in context.selected_asset_check_keys
            ]
        for check, outcome in outcomes:
            yield dg.AssetCheckResult(
                asset_key=check.asset,
                check_name=check.name,
                passed=outcome.passed,
                severity=dg.AssetCheckSeverity(check.severity),
                metadata=dict(outcome.figures),
            )

    return check_step


def build_asset_checks(
    asset_keys: set[str], thresholds: Thresholds | None = None
) -> list[dg.AssetChecksDefinition]:
    """In-run checks on the lake tables among `asset_keys` (later tables' checks come with their assets).

    Every check result costs a run about 50 ms of Dagster bookkeeping, and runs come every few seconds:
    only checks that guard the data run here (the monitors run hourly, see `build_monitor_checks`).
    A blocking check runs in the step right after its table's step and gates what lies downstream of
    it. The others only report, so they wait until the last table of the run is written: the emails
    of a batch do not wait for them (one step, `AFTER_STEP`, depending on that table).
    """
    chosen = thresholds or Thresholds()
    last = next((t for t in reversed(TABLES) if t in asset_keys), None)
    steps, reporting = [], []
    for name, tables in CHECK_STEPS:
        checks = checks_for(tables & asset_keys, in_run=True)
        gates = [c for c in checks if c.blocking]
        reporting += [c for c in checks if not c.blocking]
        if gates:
            steps.append(_check_step(name, gates, chosen, in_run=True))
    if reporting:
        steps.append(_check_step(AFTER_STEP, reporting, chosen, in_run=True, after=last))
    return steps


def build_monitor_checks(
    asset_keys: set[str], thresholds: Thresholds | None = None
) -> list[dg.AssetChecksDefinition]:
    """The hourly checks on the tables among `asset_keys` (freshness, schema-written columns), one step."""
    checks = checks_for(asset_keys, in_run=False)
    return [_check_step(MONITOR_STEP, checks, thresholds or Thresholds(), in_run=False)] if checks else []
