"""Asset checks: each predicate on crafted frames, each check on a real lake gone bad, and the blocking
check inside the real micro-batch job."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import dagster as dg
import orjson
import polars as pl
import pytest
from deltalake import DeltaTable, write_deltalake

from assets.checks import build_asset_checks
from assets.ingest import ingest_stage
from orchestration.definitions import build_defs
from orchestration.settings import Settings
from resources.lake import LakeResource
from resources.landing import LandingResource
from resources.secrets import SecretsResource
from resources.state import StateResource
from stores.ingest import ingest
from stores.operations.checks import INGEST_TABLES, LAKE_CHECKS, TABLES, checks_for
from stores.operations.probe import Probe, Scope
from tests.conftest import land
from tests.events_data import file_lines, track
from transforms.operations.audits import failure_trend, hourly_trend, latency_slo, quarantine_trend
from transforms.operations.checks import CheckOutcome, Thresholds, required_non_null, unique_key
from transforms.operations.ingest_checks import files_reconcile, quarantine_rate, table_fresh
from transforms.operations.send_checks import sends_sent_once, sends_terminal_within_budget
from transforms.schema import UTC_TS
from transforms.state import StateChanges

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)
SECOND = timedelta(seconds=1)
LATER_TABLES = {"profiles", "triggers", "sends"}


# --- pure predicates on crafted frames ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("rows", "key", "passed", "duplicates"),
    [
        ([("a", 1), ("b", 1)], ["id"], True, 0),
        ([("a", 1), ("a", 2), ("b", 1)], ["id"], False, 1),
        ([("a", 1), ("a", 2)], ["id", "n"], True, 0),
        ([], ["id"], True, 0),
    ],
)
def test_unique_key(rows: list[tuple[str, int]], key: list[str], passed: bool, duplicates: int) -> None:
    frame = pl.DataFrame(rows, schema={"id": pl.String, "n": pl.Int64}, orient="row")
    outcome = unique_key(frame, key)
    assert (outcome.passed, outcome.figures["duplicate_keys"]) == (passed, duplicates)
    assert outcome.figures["extra_rows"] == len(rows) - len(set(tuple(r[: len(key)]) for r in rows))


@pytest.mark.parametrize(
    ("rows", "passed", "figure"),
    [
        ([("e1", "u", None), ("e2", None, "a")], True, None),
        ([("e1", "u", None), (None, "u", None)], False, "null_event_id"),
        ([("e1", None, None)], False, "null_user_id_and_anonymous_id"),
    ],
)
def test_required_non_null(rows: list[tuple[str | None, ...]], passed: bool, figure: str | None) -> None:
    frame = pl.DataFrame(
        rows, schema={"event_id": pl.String, "user_id": pl.String, "anonymous_id": pl.String}, orient="row"
    )
    outcome = required_non_null(frame, ["event_id"], [("user_id", "anonymous_id")])
    assert outcome.passed is passed
    if figure:
        assert outcome.figures[figure] == 1


def test_required_non_null_fails_on_an_absent_column() -> None:
    outcome = required_non_null(pl.DataFrame({"a": [1]}), ["a", "b"])
    assert not outcome.passed and outcome.figures == {"absent_columns": 1, "absent": "b"}


def log_frame(rows: Sequence[tuple[str, str, int, int, int, int]]) -> pl.DataFrame:
    """ingest_log rows: source_file, status, lines, accepted, duplicates, quarantined."""
    schema = {
        "source_file": pl.String,
        "status": pl.String,
        "lines": pl.Int64,
        "accepted": pl.Int64,
        "duplicates": pl.Int64,
        "quarantined": pl.Int64,
    }
    return pl.DataFrame(rows, schema=schema, orient="row")


def per_file(rows: Sequence[tuple[str, int]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema={"source_file": pl.String, "rows": pl.UInt32}, orient="row")


@pytest.mark.parametrize(
    ("log", "max_rate", "passed", "rate"),
    [
        ([("a", "committed", 1000, 990, 5, 5)], 0.01, True, 0.005),
        ([("a", "committed", 100, 80, 0, 20)], 0.01, False, 0.2),
        ([("a", "committed", 100, 99, 0, 1), ("b", "failed", 0, 0, 0, 0)], 0.01, True, 0.01),
        ([], 0.01, True, 0.0),
    ],
)
def test_quarantine_rate(
    log: list[tuple[str, str, int, int, int, int]], max_rate: float, passed: bool, rate: float
) -> None:
    outcome = quarantine_rate(log_frame(log), max_rate)
    assert (outcome.passed, outcome.figures["rate"]) == (passed, rate)


GOOD_LOG = [("a", "committed", 10, 7, 1, 2), ("b", "committed", 5, 5, 0, 0), ("c", "failed", 0, 0, 0, 0)]


@pytest.mark.parametrize(
    ("log", "events", "quarantine", "failing"),
    [
        (GOOD_LOG, [("a", 7), ("b", 5)], [("a", 2)], None),
        ([("a", "committed", 10, 7, 1, 1)], [("a", 7)], [("a", 1)], "count_mismatches"),
        (GOOD_LOG, [("a", 8), ("b", 5)], [("a", 2)], "files_with_extra_events"),
        (GOOD_LOG, [("a", 6), ("b", 5)], [("a", 2)], "files_with_fewer_events"),
        (GOOD_LOG, [("a", 7), ("b", 5), ("x", 3)], [("a", 2)], "files_with_extra_events"),  # no log row
        (GOOD_LOG, [("a", 7), ("b", 5)], [("a", 2), ("b", 1)], "files_with_extra_quarantine"),
        (GOOD_LOG, [("a", 7), ("b", 5)], [], "files_with_fewer_quarantine"),
    ],
)
def test_files_reconcile(
    log: list[tuple[str, str, int, int, int, int]],
    events: list[tuple[str, int]],
    quarantine: list[tuple[str, int]],
    failing: str | None,
) -> None:
    outcome = files_reconcile(log_frame(log), per_file(events), per_file(quarantine))
    assert outcome.passed is (failing is None)
    assert outcome.figures["files"] == sum(status == "committed" for _, status, *_ in log)
    if failing:
        assert outcome.figures[failing] == 1


@pytest.mark.parametrize(
    ("last_commit", "landed", "passed", "waiting"),
    [
        (NOW - 60 * MIN, [], True, 0),  # nothing landed: fresh
        (NOW - 60 * MIN, [NOW - 61 * MIN], True, 0),  # everything landed is in
        (NOW - 60 * MIN, [NOW - 61 * MIN, NOW - MIN / 6], True, 1),  # idle hour, a file just landed
        (NOW - 10 * MIN, [NOW - 9 * MIN, NOW - MIN], False, 2),  # stuck while files keep landing
        (None, [NOW - 6 * MIN], False, 1),  # never committed
        (None, [NOW - MIN], True, 1),
    ],
)
def test_table_fresh(
    last_commit: datetime | None, landed: list[datetime], passed: bool, waiting: int
) -> None:
    outcome = table_fresh(last_commit, landed, now=NOW, max_lag=5 * MIN)
    assert (outcome.passed, outcome.figures["waiting_files"]) == (passed, waiting)


@pytest.mark.parametrize(
    ("seconds", "passed"), [([1, 2, 3, 4, 5] * 20, True), ([1] * 90 + [30] * 10, False), ([], True)]
)
def test_latency_slo(seconds: list[int], passed: bool) -> None:
    frame = pl.DataFrame(
        {"landed_at": [NOW] * len(seconds), "ingested_at": [NOW + timedelta(seconds=s) for s in seconds]},
        schema={"landed_at": UTC_TS, "ingested_at": UTC_TS},
    )
    outcome = latency_slo(frame, start="landed_at", end="ingested_at", target_p95_s=10.0)
    assert outcome.passed is passed and outcome.figures["count"] == len(seconds)
    if seconds:
        p50, p95, top = (float(outcome.figures[k]) for k in ("p50_s", "p95_s", "max_s"))
        assert p50 <= p95 <= top


TRIGGER_COLUMNS: dict[str, pl.DataType] = {
    "trigger_id": pl.String(),
    "kind": pl.String(),
    "user_id": pl.String(),
    "principal": pl.String(),
    "anchor": pl.String(),
    "decision": pl.String(),
    "reason": pl.String(),
    "decided_at": UTC_TS,
    "due_at": UTC_TS,
    "lake_version": pl.Int64(),
}
SEND_COLUMNS: dict[str, pl.DataType] = {
    "send_id": pl.String(),
    "trigger_id": pl.String(),
    "user_id": pl.String(),
    "template": pl.String(),
    "provider": pl.String(),
    "status": pl.String(),
    "attempts": pl.Int64(),
    "landed_at": UTC_TS,
    "sent_at": UTC_TS,
}


def triggers(*rows: tuple[str, str, datetime, datetime | None]) -> pl.DataFrame:
    """Decisions: trigger_id, decision, decided_at, due_at."""
    return pl.DataFrame(
        [(t, "abandoned_cart", "u-1", "u-1", "c-1", d, "rule", at, due, 1) for t, d, at, due in rows],
        schema=TRIGGER_COLUMNS,
        orient="row",
    )


def sends(*rows: tuple[str, str, datetime | None]) -> pl.DataFrame:
    """Outbox rows: trigger_id, status, sent_at (send_id derived from trigger_id; landed 5 s before)."""
    return pl.DataFrame(
        [(f"s-{t}", t, "u-1", "cart", "sandbox", s, 1, (at or NOW) - 5 * SECOND, at) for t, s, at in rows],
        schema=SEND_COLUMNS,
        orient="row",
    )


@pytest.mark.parametrize(
    ("outbox", "passed", "figure"),
    [
        (sends(("t1", "sent", NOW - 50 * MIN), ("t2", "failed_permanent", None)), True, None),
        (
            sends(("t1", "sent", NOW - 50 * MIN), ("t1", "sent", NOW - 40 * MIN)),
            False,
            "trigger_ids_sent_twice",
        ),
        (sends(("t1", "retrying", None), ("t1", "sent", NOW - 40 * MIN)), False, "duplicate_send_ids"),
    ],
)
def test_sends_sent_once(outbox: pl.DataFrame, passed: bool, figure: str | None) -> None:
    outcome = sends_sent_once(outbox)
    assert outcome.passed is passed
    if figure:
        assert outcome.figures[figure] == 1


@pytest.mark.parametrize(
    ("decisions", "outbox", "failing"),
    [
        (triggers(("t1", "send", NOW - 60 * MIN, None)), sends(("t1", "sent", NOW - 59 * MIN)), None),
        (triggers(("t1", "send", NOW - 60 * MIN, None)), sends(("t1", "aborted", None)), None),
        (triggers(("t1", "send", NOW - 60 * MIN, None)), sends(), "missing"),
        (triggers(("t1", "send", NOW - 60 * MIN, None)), sends(("t1", "retrying", None)), "not_terminal"),
        (triggers(("t1", "send", NOW - 60 * MIN, None)), sends(("t1", "sent", NOW - 20 * MIN)), "sent_late"),
        (triggers(("t1", "send", NOW - 5 * MIN, None)), sends(("t1", "pending", None)), None),  # in budget
        (triggers(("t1", "held", NOW - 60 * MIN, None)), sends(), None),  # no send decided
        # deferred by quiet hours: the budget counts from due_at, not from the decision
        (triggers(("t1", "send", NOW - 600 * MIN, NOW - 5 * MIN)), sends(("t1", "pending", None)), None),
    ],
)
def test_sends_terminal_within_budget(
    decisions: pl.DataFrame, outbox: pl.DataFrame, failing: str | None
) -> None:
    outcome = sends_terminal_within_budget(decisions, outbox, now=NOW, budget=15 * MIN)
    assert outcome.passed is (failing is None), outcome.figures
    if failing:
        assert outcome.figures[failing] == 1


def test_trends_count_per_hour() -> None:
    log = pl.DataFrame(
        {
            "committed_at": [NOW - 130 * MIN, NOW - 125 * MIN, NOW - 10 * MIN, NOW - 5 * MIN],
            "lines": [1000, 1000, 100, 0],
            "quarantined": [2, 3, 20, 0],
            "status": ["committed", "committed", "committed", "failed"],
        },
        schema_overrides={"committed_at": UTC_TS},
    )
    trend = hourly_trend(log)
    assert trend.select("files", "lines", "quarantined", "failed_files").rows() == [
        (2, 2000, 5, 0),
        (2, 100, 20, 1),
    ]
    reasons = pl.DataFrame({"reason": ["invalid_json"], "rows": [25]})
    quarantine = quarantine_trend(trend, reasons, 0.01)
    assert not quarantine.passed
    assert quarantine.figures["hours_over_limit"] == 1 and quarantine.figures["reason_invalid_json"] == 25
    assert quarantine.figures["quarantined_2026-11-22T11h"] == 20
    failures = failure_trend(trend)
    assert not failures.passed and failures.figures["failed_files_2026-11-22T11h"] == 1
    assert failure_trend(hourly_trend(log.head(3))).passed


def test_figures_are_counts_and_rates_not_ids() -> None:
    outcome = unique_key(pl.DataFrame({"event_id": ["secret-id", "secret-id"]}), ["event_id"])
    assert "secret-id" not in str(outcome.figures)
    with pytest.raises(AttributeError):
        outcome.passed = True  # type: ignore[misc]


# --- checks on a real lake ----------------------------------------------------------------------------


def good_lake(settings: Settings, lake: LakeResource, landing: LandingResource) -> None:
    """Two batches through the real ingest: clean files, a duplicate across files, one bad line in 500."""
    land(settings, "a.ndjson", file_lines("a", 250))
    ingest(lake, landing)
    land(settings, "b.ndjson", [*file_lines("b", 249), b"{broken", track("a-0")])
    ingest(lake, landing)


def write_table(lake: LakeResource, name: str, frame: pl.DataFrame) -> None:
    write_deltalake(lake.table_uri(name), frame.to_arrow(), mode="append")


def good_later_tables(lake: LakeResource) -> None:
    """What profiles, triggers and sends will hold when their issues land: consistent and complete."""
    profiles = {"user_id": ["u-1", "u-2"], "email": ["a@example.com", None], "as_of": [NOW, NOW]}
    write_table(lake, "profiles", pl.DataFrame(profiles, schema_overrides={"as_of": UTC_TS}))
    recent = datetime.now(UTC) - 30 * MIN
    write_table(lake, "triggers", triggers(("t1", "send", recent, None), ("t2", "held", recent, None)))
    write_table(lake, "sends", sends(("t1", "sent", recent + MIN)))


def outcomes(
    lake: LakeResource,
    landing: LandingResource,
    scope: Scope,
    thresholds: Thresholds | None = None,
    now: datetime | None = None,
) -> dict[str, CheckOutcome]:
    probe = Probe(lake, landing, scope, thresholds or Thresholds(), now or datetime.now(UTC))
    return {check.name: check.evaluate(probe) for check in LAKE_CHECKS}


def in_run(lake: LakeResource) -> Scope:
    return Scope(batch_id=lake.committed_batch(), since=datetime.now(UTC) - timedelta(hours=1))


SCOPES = {
    "in_run": in_run,
    "window": lambda _: Scope(since=datetime.now(UTC) - 60 * MIN),
    "whole": lambda _: Scope(),
}


@pytest.mark.parametrize("scope", list(SCOPES))
def test_every_check_passes_on_a_good_lake(
    settings: Settings, lake: LakeResource, landing: LandingResource, scope: str
) -> None:
    good_lake(settings, lake, landing)
    good_later_tables(lake)
    found = outcomes(lake, landing, SCOPES[scope](lake))
    assert {name for name, outcome in found.items() if not outcome.passed} == set()
    assert found["events_event_id_unique"].figures["rows"] == 499
    assert found["ingest_log_files_reconcile"].figures["files"] == (1 if scope == "in_run" else 2)


def test_an_empty_lake_passes(lake: LakeResource, landing: LandingResource) -> None:
    found = outcomes(lake, landing, in_run(lake))
    assert all(outcome.passed for outcome in found.values())


def test_a_duplicated_event_fails_uniqueness(
    settings: Settings, lake: LakeResource, landing: LandingResource
) -> None:
    good_lake(settings, lake, landing)
    duplicate_an_event(lake)
    for scope in (in_run(lake), Scope()):
        outcome = outcomes(lake, landing, scope)["events_event_id_unique"]
        assert not outcome.passed and outcome.figures["duplicate_keys"] == 1


def duplicate_an_event(lake: LakeResource) -> None:
    """A row of the latest batch written again, as a doubled append would."""
    events = pl.read_delta(lake.table_uri("events"))
    row = events.filter(pl.col("batch_id") == events["batch_id"].max()).head(1)
    write_deltalake(lake.table_uri("events"), row.to_arrow(), mode="append", partition_by=["event_date"])


def test_reconciliation_fails_on_a_lost_or_doubled_row(
    settings: Settings, lake: LakeResource, landing: LandingResource
) -> None:
    good_lake(settings, lake, landing)
    table = DeltaTable(lake.table_uri("events"))
    table.delete("batch_id = 2 AND source_line = 1")  # one row of the latest batch lost
    for scope in (in_run(lake), Scope()):
        lost = outcomes(lake, landing, scope)["ingest_log_files_reconcile"]
        assert not lost.passed and lost.figures["files_with_fewer_events"] == 1

    duplicate_an_event(lake)
    duplicate_an_event(lake)  # now the file has one row more than it accepted
    doubled = outcomes(lake, landing, Scope())["ingest_log_files_reconcile"]
    assert not doubled.passed and doubled.figures["files_with_extra_events"] == 1


@pytest.mark.parametrize("scope", list(SCOPES))
def test_reconciliation_counts_only_events_files(
    settings: Settings, lake: LakeResource, landing: LandingResource, scope: str
) -> None:
    """Catalog and customers files, bad rows and all, in the batch of an events file (#13, point 16)."""
    good_lake(settings, lake, landing)
    product = b'{"product_id": "p-1", "name": "Sandal", "category": "shoes", "price": 59.9, "stock": 3}'
    landing.land("catalog/products.ndjson", product + b"\n{broken\n")
    landing.land("customers/crm.ndjson", b'{"user_id": "u-1", "email": "a@example.com"}\nnot json\n')
    land(settings, "c.ndjson", file_lines("c", 10))
    ingest(lake, landing)
    reference = pl.read_delta(lake.table_uri("quarantine")).filter(
        ~pl.col("source_file").str.starts_with("events/")
    )
    assert reference.height == 2  # one bad row of each reference file, in the lake's quarantine
    outcome = outcomes(lake, landing, SCOPES[scope](lake))["ingest_log_files_reconcile"]
    assert outcome.passed, outcome.figures
    assert outcome.figures["files"] == (1 if scope == "in_run" else 3)


def test_reconciliation_fails_when_a_file_s_counts_do_not_add_up(
    settings: Settings, lake: LakeResource, landing: LandingResource
) -> None:
    good_lake(settings, lake, landing)
    log = pl.read_delta(lake.table_uri("ingest_log"))
    bad = log.filter(pl.col("batch_id") == 2).with_columns(
        pl.lit("events/c.ndjson").alias("source_file"), pl.col("lines") + 1
    )
    write_table(lake, "ingest_log", bad)
    outcome = outcomes(lake, landing, in_run(lake))["ingest_log_files_reconcile"]
    assert not outcome.passed and outcome.figures["count_mismatches"] == 1


def test_a_dirty_batch_fails_the_quarantine_rate(
    settings: Settings, lake: LakeResource, landing: LandingResource
) -> None:
    good_lake(settings, lake, landing)
    land(settings, "c.ndjson", file_lines("c", 100, bad_every=10))
    ingest(lake, landing)
    outcome = outcomes(lake, landing, in_run(lake))["quarantine_rate_under_limit"]
    assert not outcome.passed and outcome.figures["rate"] == 0.1
    assert outcomes(lake, landing, in_run(lake), Thresholds(quarantine_rate_max=0.2))[
        "quarantine_rate_under_limit"
    ].passed


def test_a_table_is_stale_when_a_landed_file_waits_too_long(
    settings: Settings, lake: LakeResource, landing: LandingResource
) -> None:
    good_lake(settings, lake, landing)
    land(settings, "c.ndjson", file_lines("c", 10))  # lands after the last commit, not ingested
    just_now = outcomes(lake, landing, in_run(lake))
    assert all(just_now[f"{t}_fresh"].passed for t in INGEST_TABLES)
    later = outcomes(lake, landing, in_run(lake), now=datetime.now(UTC) + 6 * MIN)
    for t in INGEST_TABLES:
        assert not later[f"{t}_fresh"].passed and later[f"{t}_fresh"].figures["waiting_files"] == 1
    ingest(lake, landing)
    assert outcomes(lake, landing, in_run(lake), now=datetime.now(UTC) + 6 * MIN)["events_fresh"].passed


def test_maintenance_commits_do_not_count_as_fresh(
    settings: Settings, lake: LakeResource, landing: LandingResource
) -> None:
    good_lake(settings, lake, landing)
    land(settings, "c.ndjson", file_lines("c", 10))
    for name in ("events", "ingest_log"):
        DeltaTable(lake.table_uri(name)).optimize.compact()
        assert DeltaTable(lake.table_uri(name)).history(1)[0]["operation"] == "OPTIMIZE"
    later = outcomes(lake, landing, in_run(lake), now=datetime.now(UTC) + 6 * MIN)
    assert not later["events_fresh"].passed


def test_two_terminal_decisions_for_a_trigger_id_fail(lake: LakeResource, landing: LandingResource) -> None:
    recent = datetime.now(UTC) - 10 * MIN
    write_table(lake, "triggers", triggers(("t1", "held", recent, None), ("t1", "send", recent, None)))
    # held, then sent: one terminal decision
    assert outcomes(lake, landing, in_run(lake))["triggers_terminal_decision_unique"].passed
    write_table(lake, "triggers", triggers(("t1", "exited", recent, None), ("t1", "send", recent, None)))
    outcome = outcomes(lake, landing, in_run(lake))["triggers_terminal_decision_unique"]
    assert not outcome.passed and outcome.figures["duplicate_keys"] == 1


def test_a_decision_taken_again_hours_after_the_first_fails_in_a_window_and_in_run(
    lake: LakeResource, landing: LandingResource
) -> None:
    """The window's (the hourly audit's) and the engine run's decisions are judged against every earlier
    decision of their trigger ids, not only the hour's (found by review); without a store, in-run looks
    the run's ids up in the log."""
    evaluation = pl.col("lake_version").alias("evaluation")
    write_table(lake, "triggers", triggers(("t1", "send", NOW - 180 * MIN, None)).with_columns(evaluation))
    again = triggers(("t1", "exited", NOW - 10 * MIN, None), ("t2", "send", NOW - 10 * MIN, None))
    write_table(lake, "triggers", again.with_columns(pl.lit(2, pl.Int64).alias("evaluation")))
    scopes = {
        "window": Scope(since=NOW - 60 * MIN),
        "in_run": Scope(batch_id=0, since=NOW - 60 * MIN, evaluation=2),
        "whole": Scope(),
    }
    for name, scope in scopes.items():
        outcome = outcomes(lake, landing, scope, now=NOW)["triggers_terminal_decision_unique"]
        assert not outcome.passed, name
    first = Scope(batch_id=0, since=NOW - 60 * MIN, evaluation=1)  # the first decision's own run: fine
    assert outcomes(lake, landing, first, now=NOW)["triggers_terminal_decision_unique"].passed


def test_a_send_decision_without_a_terminal_outbox_row_fails(
    lake: LakeResource, landing: LandingResource
) -> None:
    decided = datetime.now(UTC) - 30 * MIN
    write_table(lake, "triggers", triggers(("t1", "send", decided, None), ("t2", "send", decided, None)))
    write_table(lake, "sends", sends(("t1", "sent", decided + MIN), ("t2", "pending", None)))
    outcome = outcomes(lake, landing, in_run(lake))["sends_terminal_within_budget"]
    assert not outcome.passed and outcome.figures["not_terminal"] == 1
    write_table(lake, "sends", sends(("t2", "sent", decided + MIN)).with_columns(send_id=pl.lit("s-t2b")))
    assert outcomes(lake, landing, in_run(lake))["sends_terminal_within_budget"].passed


def test_a_trigger_sent_twice_and_a_user_profiled_twice_fail(
    lake: LakeResource, landing: LandingResource
) -> None:
    sent = datetime.now(UTC) - 10 * MIN
    write_table(
        lake,
        "sends",
        sends(("t1", "sent", sent)).vstack(sends(("t1", "sent", sent)).with_columns(send_id=pl.lit("x"))),
    )
    write_table(
        lake,
        "profiles",
        pl.DataFrame({"user_id": ["u-1", "u-1"], "as_of": [NOW, NOW]}, schema_overrides={"as_of": UTC_TS}),
    )
    found = outcomes(lake, landing, in_run(lake))
    assert not found["sends_trigger_id_sent_once"].passed
    assert found["sends_trigger_id_sent_once"].figures["trigger_ids_sent_twice"] == 1
    assert not found["profiles_user_id_unique"].passed


# --- Dagster wiring ------------------------------------------------------------------------------------


def test_later_tables_get_checks_only_with_their_assets(settings: Settings) -> None:
    def keys(checks: list[dg.AssetChecksDefinition]) -> set[str]:
        return {key.asset_key.to_user_string() for c in checks for key in c.check_keys}

    assert keys(build_asset_checks(set(INGEST_TABLES))) == set(INGEST_TABLES)
    assert keys(build_asset_checks(set(TABLES))) == set(TABLES)
    # Today's Definitions (which wire in the checks of the tables that exist) stay valid.
    dg.Definitions.validate_loadable(build_defs(settings))


def test_in_run_checks_are_pinned() -> None:
    assert [c.name for c in checks_for(TABLES, in_run=True)] == [
        "events_event_id_unique",
        "quarantine_rate_under_limit",
        "ingest_log_files_reconcile",
        "identities_edge_unique",
        "profiles_user_id_unique",
        "triggers_terminal_decision_unique",
        "sends_trigger_id_sent_once",
        "events_required_non_null",
        "triggers_required_non_null",
    ]
    blocking = {spec.name for c in build_asset_checks(set(TABLES)) for spec in c.check_specs if spec.blocking}
    assert blocking == {"events_event_id_unique", "triggers_terminal_decision_unique"}


@dg.asset(deps=["events"])
def downstream_of_events() -> None:
    """Stands in for `profiles`: must not run after a blocking check on events failed."""


def microbatch(settings: Settings, lake: LakeResource, landing: LandingResource) -> dg.JobDefinition:
    defs = dg.Definitions(
        assets=[ingest_stage, downstream_of_events],
        asset_checks=build_asset_checks(set(INGEST_TABLES)),
        jobs=[dg.define_asset_job("batch_job", executor_def=dg.in_process_executor)],
        resources={
            "lake": lake,
            "landing": landing,
            "state": StateResource(uri=settings.state_store_uri),
            "secrets": SecretsResource(hmac_key="test-secret"),
        },
    )
    return defs.resolve_job_def("batch_job")


def accept_again_in_the_next_batch(lake: LakeResource, state: StateResource) -> None:
    """A row of the latest batch written again under the next batch's number, and indexed under it as
    that batch's commit would: an event accepted twice, in two batches (what a dedupe that failed leaves,
    and the in-run check, reading the batch and the store's index, must see)."""
    events = pl.read_delta(lake.table_uri("events"))
    latest = lake.committed_batch()
    row = events.filter(pl.col("batch_id") == latest).head(1).with_columns(batch_id=pl.lit(latest + 1))
    write_deltalake(lake.table_uri("events"), row.to_arrow(), mode="append", partition_by=["event_date"])
    again = StateChanges()
    again.put("event_ids", row["event_id"].item(), orjson.dumps({"batch_id": latest + 1}))
    state.store().commit(latest, again)  # put last-wins, this erased the evidence: the check passed


def test_the_blocking_check_stops_the_micro_batch_on_a_duplicated_event(
    settings: Settings, lake: LakeResource, landing: LandingResource, instance: dg.DagsterInstance
) -> None:
    job = microbatch(settings, lake, landing)
    land(settings, "a.ndjson", file_lines("a", 50))
    good = job.execute_in_process(instance=instance)
    assert good.success
    checks = {e.check_name: e.passed for e in good.get_asset_check_evaluations()}
    assert checks == {name: True for name in checks} and "events_event_id_unique" in checks
    assert len(checks) == len(checks_for(INGEST_TABLES, in_run=True)) + 1  # + ingest's no_failed_files

    accept_again_in_the_next_batch(lake, StateResource(uri=settings.state_store_uri))
    land(settings, "b.ndjson", file_lines("b", 50))
    bad = job.execute_in_process(instance=instance, raise_on_error=False)
    assert not bad.success
    evaluations = {e.check_name: e for e in bad.get_asset_check_evaluations()}
    failed = evaluations["events_event_id_unique"]
    assert not failed.passed and failed.metadata["accepted_before"].value == 1
    # the other checks still report (reconciliation sees the row too: a.ndjson's, in batch 2)
    assert not evaluations["ingest_log_files_reconcile"].passed
    materialized = {
        e.asset_key.to_user_string() for e in bad.get_asset_materialization_events() if e.asset_key
    }
    assert "events" in materialized and "downstream_of_events" not in materialized
