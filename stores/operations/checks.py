"""The lake checks: which check runs on which table, and what each reads from the lake to judge it.

The predicates are pure (transforms/operations/). In a micro-batch a check looks at what the latest
batch added (for event_id uniqueness, the event_date partitions it touched), so it stays cheap; the
hourly monitors (freshness) and the audits run the checks over a window or the whole lake. Dagster
wraps them in assets/checks.py and assets/audits.py.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

import polars as pl

from resources.state import StateStore
from stores.operations.probe import Probe, Scope
from stores.operations.send_checks import sent_once, terminal_within_budget
from stores.operations.trigger_checks import terminal_unique
from stores.state.namespaces import VALUE_SCHEMAS
from transforms.ingest.events import dedupe_dates, identity_edges
from transforms.operations.checks import (
    ONE_OF_COLUMNS,
    REQUIRED_COLUMNS,
    CheckOutcome,
    required_non_null,
    unique_key,
)
from transforms.operations.ingest_checks import files_reconcile, quarantine_rate, table_fresh
from transforms.state import decode

INGEST_TABLES = frozenset({"events", "quarantine", "ingest_log", "identities"})
# An empty batch commits nothing to these tables; the commit of the table in the value covers them.
# Not `profiles`: only profiles_job rewrites it (after every new batch), while every micro-batch appends
# to `profile_updates`, whose commits would keep `profiles_fresh` green with the refresh stopped.
COVERED_BY = {
    "events": "ingest_log",
    "quarantine": "ingest_log",
    "identities": "ingest_log",
    "sends": "triggers",
}  # not `triggers`: every engine run commits to it, rows or none (its tags); `trigger_state` is a checkpoint
Severity = Literal["ERROR", "WARN"]  # as Dagster's AssetCheckSeverity
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LakeCheck:
    """One check on one table: how to evaluate it, and how it reports (severity, whether it blocks)."""

    name: str
    asset: str
    evaluate: Callable[[Probe], CheckOutcome]
    description: str
    severity: Severity = "ERROR"
    blocking: bool = False
    in_run: bool = True  # in every micro-batch; otherwise hourly with the audits
    also_reads: tuple[str, ...] = ()  # the lake tables it reads besides its own


def tables_read(checks: Iterable[LakeCheck]) -> tuple[str, ...]:
    """The lake tables `checks` read (an in-run step's snapshot holds these only: #17, the decide lane's
    checks brought the ingest lane's five tables up to date twice a run for nothing)."""
    read = {t for c in checks for t in (c.asset, *c.also_reads)}
    return tuple(t for t in TABLES if t in read)


def _key_unique(table: str, key: list[str]) -> Callable[[Probe], CheckOutcome]:
    def evaluate(probe: Probe) -> CheckOutcome:
        rows = probe.scoped(table)
        return unique_key(
            rows.select(key) if rows is not None else pl.LazyFrame(schema=dict.fromkeys(key, pl.String)), key
        )

    return evaluate


EDGE_KEY = ["anonymous_id", "user_id"]
EDGE_SOURCE = ("event_type", "anonymous_id", "previous_id", "user_id", "event_ts")  # identity_edges reads


def _edges_unique(probe: Probe) -> CheckOutcome:
    """One row per edge; in-run, among the edges of the anonymous ids the scope's batches saw (#17: the
    whole table every micro-batch, 0.7 s at 3M edges). A batch writes `identities` only with the edges of
    its events (`merge_identities`: it appends those of their anonymous ids not held yet, or rewrites the
    table grouped by edge), so a double it leaves has one of their anonymous ids; the events are the
    batches' own rows of `events`. Still a scan of the anonymous_id column (the writer asks the state store
    instead, when it has one): no statistic may name a person, so no file is skipped; the audits read the
    table whole."""
    rows, events = probe.whole("identities"), probe.scoped("events")
    if rows is None:
        return unique_key(pl.LazyFrame(schema=dict.fromkeys(EDGE_KEY, pl.String)), EDGE_KEY)
    if probe.scope.in_run:
        seen = events.select(EDGE_SOURCE).collect() if events is not None else None
        ids = identity_edges(seen)["anonymous_id"] if seen is not None else pl.Series(dtype=pl.String)
        rows = rows.filter(pl.col("anonymous_id").is_in(ids.implode()))
    return unique_key(rows.select(EDGE_KEY), EDGE_KEY)


def _events_unique(probe: Probe) -> CheckOutcome:
    events, scoped = probe.whole("events"), probe.scoped("events")
    if events is None or scoped is None:
        return unique_key(pl.LazyFrame(schema={"event_id": pl.String}), ["event_id"])
    batch_id, store = probe.scope.batch_id, probe.state
    if store is not None and batch_id is not None and store.stamps()["ingest"] == batch_id:
        return _batch_ids_unique(store, scoped, probe.scope)
    if probe.scope.whole_lake:
        return unique_key(events.select("event_id"), ["event_id"])
    # Duplicates of the scope's rows can only sit in the partitions ingest's dedupe looks at.
    touched = scoped.select("event_date").unique().collect()["event_date"].to_list()
    dates = dedupe_dates(touched)
    outcome = unique_key(events.filter(pl.col("event_date").is_in(dates)).select("event_id"), ["event_id"])
    return CheckOutcome(outcome.passed, {**outcome.figures, "partitions": len(touched)})


def _batch_ids_unique(store: StateStore, scoped: pl.LazyFrame, scope: Scope) -> CheckOutcome:
    """The scope's event ids: once in its batches, and each one accepted by one of them in the store's
    index (an id accepted by an earlier batch would be a duplicate, whatever its date; the index keeps the
    first batch that accepted an id, `FIRST_PUT_WINS`): reads them only."""
    ids = scoped.select("event_id").collect()["event_id"]
    outcome = unique_key(ids.to_frame(), ["event_id"])
    found = store.get_frame("event_ids", ids)["value"]  # a frame: no Python object per id (#17)
    batches = decode(found, VALUE_SCHEMAS["event_ids"])["batch_id"]
    earlier = int((~batches.is_between(scope.first, scope.batch_id)).sum())
    missing = int(outcome.figures["keys"]) - found.len()
    figures = {**outcome.figures, "accepted_before": earlier, "not_in_state_store": missing}
    return CheckOutcome(outcome.passed and earlier == 0 and missing == 0, figures)


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


EVENT_FILES = pl.col("source_file").str.starts_with("events/")


def _rows_per_file(probe: Probe, table: str, batches: list[int] | None) -> pl.LazyFrame:
    """Rows of `table` per events/ file (of `batches`; None: all)."""
    frame = probe.whole(table)
    if frame is None:
        return pl.LazyFrame(schema={"source_file": pl.String, "rows": pl.UInt32})
    if batches is not None:
        frame = frame.filter(pl.col("batch_id").is_in(batches))
    return frame.filter(EVENT_FILES).group_by("source_file").agg(pl.len().alias("rows"))


def _files_reconcile(probe: Probe) -> CheckOutcome:
    log = probe.scoped("ingest_log")
    if log is None:
        return CheckOutcome(True, {"files": 0})
    # customers/ and catalog/ rows go to tables keyed by user or product (latest wins), not per file,
    # and their bad rows to quarantine: only events/ files reconcile against events and quarantine.
    log = log.filter(EVENT_FILES)
    whole_lake = probe.scope.whole_lake
    batches = None if whole_lake else log.select("batch_id").unique().collect()["batch_id"].to_list()
    return files_reconcile(
        log,
        _rows_per_file(probe, "events", batches),
        _rows_per_file(probe, "quarantine", batches),
    )


def _fresh(table: str) -> Callable[[Probe], CheckOutcome]:
    def evaluate(probe: Probe) -> CheckOutcome:
        commits = [probe.last_data_commit(name) for name in (table, COVERED_BY.get(table)) if name]
        last = max((c for c in commits if c is not None), default=None)
        return table_fresh(last, probe.landed_at, now=probe.now, max_lag=probe.thresholds.freshness_lag)

    return evaluate


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
        severity="WARN",
    ),
    LakeCheck(
        "ingest_log_files_reconcile",
        "ingest_log",
        _files_reconcile,
        "Per committed file: lines = accepted + duplicates + quarantined, matching the rows in the lake.",
        also_reads=("events", "quarantine"),
    ),
    LakeCheck(
        "identities_edge_unique",
        "identities",
        _edges_unique,
        "One row per anonymous_id -> user_id edge (in-run: of the anonymous ids the latest batch saw).",
        also_reads=("events",),
    ),
    LakeCheck(
        "profiles_user_id_unique", "profiles", _key_unique("profiles", ["user_id"]), "One row per user."
    ),
    LakeCheck(
        "triggers_terminal_decision_unique",
        "triggers",
        terminal_unique,
        "One terminal decision per trigger_id (a doubled decision could send twice, so it blocks sends).",
        blocking=True,
    ),
    LakeCheck(
        "sends_trigger_id_sent_once", "sends", sent_once, "No trigger_id sent twice, no send_id doubled."
    ),
    LakeCheck(
        "sends_terminal_within_budget",
        "sends",
        terminal_within_budget,
        "Every `send` decision has a terminal outbox row (sent, failed_permanent, aborted) in its budget.",
        severity="WARN",
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
            severity="WARN",
            in_run=False,
        )
        for t in TABLES
    ),
)


def checks_for(asset_keys: Iterable[str], *, in_run: bool | None = None) -> list[LakeCheck]:
    """The lake checks on the tables among `asset_keys` (only in-run or only monitor ones when asked)."""
    present = set(asset_keys)
    return [c for c in LAKE_CHECKS if c.asset in present and in_run in (None, c.in_run)]


def evaluate(check: LakeCheck, probe: Probe) -> CheckOutcome:
    """The check's outcome; a check that raises fails (with the error's type) instead of hiding the rest."""
    try:
        return check.evaluate(probe)
    except Exception as error:
        log.exception("check %s raised", check.name)
        return CheckOutcome(False, {"error": type(error).__name__})
