"""Asset checks on every lake table: what each reads from the lake, and thin Dagster wrappers.

The predicates are pure (transforms/operations/checks.py). In a micro-batch the checks look at what the latest
batch added (for event_id uniqueness, the event_date partitions it touched), so they stay cheap; the
hourly monitors (freshness) and the audits (assets/audits.py) run them over a window or the whole lake.
"""

import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property

import dagster as dg
import polars as pl
from deltalake import DeltaTable

from resources.lake import LakeResource
from resources.landing import LandingResource
from transforms.ingest.events import dedupe_dates
from transforms.operations.checks import (
    ONE_OF_COLUMNS,
    REQUIRED_COLUMNS,
    CheckOutcome,
    Thresholds,
    files_reconcile,
    quarantine_rate,
    required_non_null,
    sends_sent_once,
    sends_terminal_within_budget,
    table_fresh,
    unique_key,
)
from transforms.schema import PENDING_DECISIONS

INGEST_TABLES = frozenset({"events", "quarantine", "ingest_log", "identities"})
RECENT = timedelta(hours=1)  # in-run look-back for tables without a batch number (triggers, sends)
# Which columns scope a table's rows: its batch number (in-run) and its time column (audit windows).
# identities, profiles and sends are small (one row per edge, user, email): checks read them whole.
SCOPE_COLUMNS: dict[str, tuple[str | None, str | None]] = {
    "events": ("batch_id", "ingested_at"),
    "quarantine": ("batch_id", "ingested_at"),
    "ingest_log": ("batch_id", "committed_at"),
    "triggers": (None, "decided_at"),
}
# An empty batch commits nothing to these tables; the commit of the table in the value covers them.
COVERED_BY = {
    "events": "ingest_log",
    "quarantine": "ingest_log",
    "identities": "ingest_log",
    "sends": "triggers",
    "profiles": "profile_updates",  # profiles is rewritten at each fold; every batch appends partials
    "triggers": "trigger_state",  # an engine run with no new rows still rewrites trigger_state
}
# Commits that bring data in (compaction, vacuum, deletes and rollbacks say nothing about freshness).
DATA_OPERATIONS = frozenset({"WRITE", "MERGE", "CREATE TABLE", "STREAMING UPDATE"})
HISTORY_DEPTH = 20
CHECK_STEPS: tuple[tuple[str, frozenset[str]], ...] = (
    ("ingest_checks", INGEST_TABLES),
    ("profiles_checks", frozenset({"profiles"})),
    ("triggers_checks", frozenset({"triggers"})),
    ("sends_checks", frozenset({"sends"})),
)
MONITOR_STEP = "lake_monitor_checks"
AFTER_STEP = "batch_checks"  # the in-run checks that only report, after the run's last table
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Scope:
    """Rows a check reads: of one batch (in-run), or since a time (audits); neither means the whole lake."""

    batch_id: int | None = None
    since: datetime | None = None


@dataclass
class Probe:
    """What a check evaluation reads from: the lake, the landing zone, a scope, limits and the time."""

    lake: LakeResource
    landing: LandingResource
    scope: Scope
    thresholds: Thresholds
    now: datetime = field(default_factory=lambda: datetime.now(UTC))
    _tables: dict[str, DeltaTable | None] = field(default_factory=dict, repr=False)

    def table(self, name: str) -> DeltaTable | None:
        """The table's snapshot, loaded once per probe (so all its checks see one version)."""
        if name not in self._tables:
            self._tables[name] = self.lake.table(name)
        return self._tables[name]

    def whole(self, name: str) -> pl.LazyFrame | None:
        table = self.table(name)
        return None if table is None else pl.scan_delta(table)

    def scoped(self, name: str) -> pl.LazyFrame | None:
        """Rows of `name` in scope, or None when the table does not exist yet."""
        frame = self.whole(name)
        batch_column, time_column = SCOPE_COLUMNS.get(name, (None, None))
        if frame is None:
            return None
        if batch_column and self.scope.batch_id is not None:
            return frame.filter(pl.col(batch_column) == self.scope.batch_id)
        if time_column and self.scope.since is not None:
            return frame.filter(pl.col(time_column) >= self.scope.since)
        return frame

    @cached_property
    def landed_at(self) -> list[datetime]:
        return [f.landed_at for f in self.landing.list_files("events")]

    def last_data_commit(self, name: str) -> datetime | None:
        table = self.table(name)
        if table is None:
            return None
        for history in (table.history(HISTORY_DEPTH), table.history()):  # all of it only when needed
            writes = [c for c in history if c.get("operation") in DATA_OPERATIONS]
            if writes:
                return datetime.fromtimestamp(writes[0]["timestamp"] / 1000, UTC)
        return None


@dataclass(frozen=True)
class LakeCheck:
    """One check on one table: how to evaluate it, and how it reports in Dagster."""

    name: str
    asset: str
    evaluate: Callable[[Probe], CheckOutcome]
    description: str
    severity: dg.AssetCheckSeverity = dg.AssetCheckSeverity.ERROR
    blocking: bool = False
    in_run: bool = True  # in every micro-batch; otherwise hourly with the audits


def _key_unique(table: str, key: list[str]) -> Callable[[Probe], CheckOutcome]:
    def evaluate(probe: Probe) -> CheckOutcome:
        rows = probe.scoped(table)
        return unique_key(
            rows.select(key) if rows is not None else pl.LazyFrame(schema=dict.fromkeys(key, pl.String)), key
        )

    return evaluate


def _terminal_unique(probe: Probe) -> CheckOutcome:
    rows = probe.scoped("triggers")
    if rows is None:
        return unique_key(pl.LazyFrame(schema={"trigger_id": pl.String}), ["trigger_id"])
    terminal = rows.filter(~pl.col("decision").is_in(PENDING_DECISIONS)).select("trigger_id")
    return unique_key(terminal, ["trigger_id"])


def _events_unique(probe: Probe) -> CheckOutcome:
    events, scoped = probe.whole("events"), probe.scoped("events")
    if events is None or scoped is None:
        return unique_key(pl.LazyFrame(schema={"event_id": pl.String}), ["event_id"])
    if probe.scope.batch_id is None and probe.scope.since is None:
        return unique_key(events.select("event_id"), ["event_id"])
    # Duplicates of the scope's rows can only sit in the partitions ingest's dedupe looks at.
    touched = scoped.select("event_date").unique().collect()["event_date"].to_list()
    dates = dedupe_dates(touched)
    outcome = unique_key(events.filter(pl.col("event_date").is_in(dates)).select("event_id"), ["event_id"])
    return CheckOutcome(outcome.passed, {**outcome.figures, "partitions": len(touched)})


def _non_null(table: str) -> Callable[[Probe], CheckOutcome]:
    def evaluate(probe: Probe) -> CheckOutcome:
        rows = probe.scoped(table)
        if rows is None:
            return CheckOutcome(True, {"rows": 0})
        return required_non_null(rows, REQUIRED_COLUMNS[table], ONE_OF_COLUMNS.get(table, ()))

    return evaluate


def _quarantine_rate(probe: Probe) -> CheckOutcome:
    log = probe.scoped("ingest_log")
    if log is None:
        return CheckOutcome(True, {"files": 0})
    return quarantine_rate(log, probe.thresholds.quarantine_rate_max)


def _rows_per_file(probe: Probe, table: str, batches: list[int] | None) -> pl.LazyFrame:
    frame = probe.whole(table)
    if frame is None:
        return pl.LazyFrame(schema={"source_file": pl.String, "rows": pl.UInt32})
    if batches is not None:
        frame = frame.filter(pl.col("batch_id").is_in(batches))
    return frame.group_by("source_file").agg(pl.len().alias("rows"))


def _files_reconcile(probe: Probe) -> CheckOutcome:
    log = probe.scoped("ingest_log")
    if log is None:
        return CheckOutcome(True, {"files": 0})
    # customers/ and catalog/ rows go to tables keyed by user or product (latest wins), not per file.
    log = log.filter(pl.col("source_file").str.starts_with("events/"))
    whole_lake = probe.scope.batch_id is None and probe.scope.since is None
    batches = None if whole_lake else log.select("batch_id").unique().collect()["batch_id"].to_list()
    return files_reconcile(
        log,
        _rows_per_file(probe, "events", batches),
        _rows_per_file(probe, "quarantine", batches),
    )


def _sent_once(probe: Probe) -> CheckOutcome:
    sends = probe.whole("sends")
    if sends is None:
        return CheckOutcome(True, {"rows": 0})
    if probe.scope.since is not None:
        recent = sends.filter(pl.col("sent_at") >= probe.scope.since).select("trigger_id")
        sends = sends.join(recent.unique(), on="trigger_id", how="semi")
    return sends_sent_once(sends)


def _terminal_within_budget(probe: Probe) -> CheckOutcome:
    decisions = probe.whole("triggers")
    if decisions is None:
        return CheckOutcome(True, {"send_decisions": 0})
    budget = probe.thresholds.send_budget
    if probe.scope.since is not None:  # decisions whose budget ran out in the scope
        deadline = pl.coalesce("due_at", "decided_at") + pl.lit(budget)
        decisions = decisions.filter(deadline >= probe.scope.since)
    decisions = decisions.filter(pl.col("decision") == "send")
    sends = probe.whole("sends")
    if sends is None:
        sends = pl.LazyFrame(
            schema={"trigger_id": pl.String, "status": pl.String, "sent_at": pl.Datetime("us", "UTC")}
        )
    sends = sends.join(decisions.select("trigger_id"), on="trigger_id", how="semi")
    return sends_terminal_within_budget(decisions, sends, now=probe.now, budget=budget)


def _fresh(table: str) -> Callable[[Probe], CheckOutcome]:
    def evaluate(probe: Probe) -> CheckOutcome:
        commits = [probe.last_data_commit(name) for name in (table, COVERED_BY.get(table)) if name]
        last = max((c for c in commits if c is not None), default=None)
        return table_fresh(last, probe.landed_at, now=probe.now, max_lag=probe.thresholds.freshness_lag)

    return evaluate


WARN = dg.AssetCheckSeverity.WARN
TABLES = ("events", "quarantine", "ingest_log", "identities", "profiles", "triggers", "sends")
IN_RUN_NON_NULL = frozenset({"events", "triggers"})  # the others are written from fixed schemas
LAKE_CHECKS: tuple[LakeCheck, ...] = (
    LakeCheck(
        "events_event_id_unique",
        "events",
        _events_unique,
        "No event_id on two rows (in-run: the partitions the latest batch touched).",
        blocking=True,
    ),
    LakeCheck(
        "quarantine_rate_under_limit",
        "quarantine",
        _quarantine_rate,
        "Quarantined lines are a small share of the lines of committed files.",
        severity=WARN,
    ),
    LakeCheck(
        "ingest_log_files_reconcile",
        "ingest_log",
        _files_reconcile,
        "Per committed file: lines = accepted + duplicates + quarantined, matching the rows in the lake.",
    ),
    LakeCheck(
        "identities_edge_unique",
        "identities",
        _key_unique("identities", ["anonymous_id", "user_id"]),
        "One row per anonymous_id -> user_id edge.",
    ),
    LakeCheck(
        "profiles_user_id_unique", "profiles", _key_unique("profiles", ["user_id"]), "One row per user."
    ),
    LakeCheck(
        "triggers_terminal_decision_unique",
        "triggers",
        _terminal_unique,
        "One terminal decision per trigger_id (a doubled decision could send twice, so it blocks sends).",
        blocking=True,
    ),
    LakeCheck(
        "sends_trigger_id_sent_once", "sends", _sent_once, "No trigger_id sent twice, no send_id doubled."
    ),
    LakeCheck(
        "sends_terminal_within_budget",
        "sends",
        _terminal_within_budget,
        "Every `send` decision has a terminal outbox row (sent, failed_permanent, aborted) in its budget.",
        severity=WARN,
        in_run=False,  # about time passing (and reads the decisions whole): the hourly audit's job
    ),
    *(
        LakeCheck(
            f"{t}_required_non_null",
            t,
            _non_null(t),
            f"Required columns of {t} are set on every row.",
            in_run=t in IN_RUN_NON_NULL,
        )
        for t in TABLES
    ),
    # Freshness runs hourly with the audits, not in the micro-batch: a stalled pipeline runs no
    # micro-batch, so an in-run freshness check could never report it.
    *(
        LakeCheck(
            f"{t}_fresh",
            t,
            _fresh(t),
            f"No landed file has waited longer than the lag since {t}'s last data commit.",
            severity=WARN,
            in_run=False,
        )
        for t in TABLES
    ),
)


def checks_for(asset_keys: Iterable[str], *, in_run: bool | None = None) -> list[LakeCheck]:
    """The lake checks on the tables among `asset_keys` (only in-run or only monitor ones when asked)."""
    present = set(asset_keys)
    return [c for c in LAKE_CHECKS if c.asset in present and in_run in (None, c.in_run)]


def check_key(check: LakeCheck) -> dg.AssetCheckKey:
    return dg.AssetCheckKey(dg.AssetKey(check.asset), check.name)


def evaluate(check: LakeCheck, probe: Probe) -> CheckOutcome:
    """The check's outcome; a check that raises fails (with the error's type) instead of hiding the rest."""
    try:
        return check.evaluate(probe)
    except Exception as error:
        log.exception("check %s raised", check.name)
        return CheckOutcome(False, {"error": type(error).__name__})


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
        specs=[
            dg.AssetCheckSpec(
                c.name,
                asset=c.asset,
                description=c.description,
                blocking=c.blocking,
                additional_deps=[after] if after is not None and c.asset != after else None,
            )
            for c in checks
        ],
        can_subset=True,
        description=f"Checks on {tables}: "
        + ("what the latest batch added." if in_run else "the last hour."),
    )
    def check_step(
        context: dg.AssetCheckExecutionContext, lake: LakeResource, landing: LandingResource
    ) -> Iterator[dg.AssetCheckResult]:
        now = datetime.now(UTC)
        batch_id = lake.committed_batch() if in_run else None
        probe = Probe(lake, landing, Scope(batch_id=batch_id, since=now - RECENT), thresholds, now)
        for check in checks:
            if check_key(check) in context.selected_asset_check_keys:
                outcome = evaluate(check, probe)
                yield dg.AssetCheckResult(
                    asset_key=check.asset,
                    check_name=check.name,
                    passed=outcome.passed,
                    severity=check.severity,
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
