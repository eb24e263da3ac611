"""Scheduled audits on a real lake: `audit_results` rows and check results, reruns, schedules, wiring."""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

import dagster as dg
import orjson
import polars as pl

from assets.audits import audit_selection, build_audit_results
from assets.checks import build_asset_checks, build_monitor_checks
from assets.ingest import ingest_stage
from orchestration.definitions import build_defs
from orchestration.jobs import CHAIN_TABLES, microbatch_config
from orchestration.settings import Settings
from resources.lake import LakeResource
from resources.landing import LandingResource
from resources.secrets import SecretsResource
from resources.state import StateResource
from stores.ingest import ingest
from stores.operations.audits import append_audit_rows, audit_names
from stores.operations.checks import INGEST_TABLES, TABLES, checks_for
from tests.conftest import land, table
from tests.events_data import file_lines
from tests.lake.test_checks import duplicate_an_event, good_lake, good_later_tables, triggers, write_table
from transforms.operations.audits import AUDIT_RESULTS_SCHEMA, audit_rows
from transforms.operations.checks import CheckOutcome, Thresholds

MIN = timedelta(minutes=1)


def audit_definitions(
    keys: Iterable[str], resources: dict[str, object], thresholds: Thresholds | None = None
) -> dg.Definitions:
    """The audit asset, its monitors and an audit job over `keys` alone (lakemail audits the chain)."""
    tables = set(keys)
    job = dg.define_asset_job(
        "audit_job", selection=audit_selection(tables), executor_def=dg.in_process_executor
    )
    return dg.Definitions(
        assets=[build_audit_results(tables)],
        asset_checks=build_monitor_checks(tables, thresholds),
        jobs=[job],
        resources=resources,
    )


def resources_of(settings: Settings, lake: LakeResource, landing: LandingResource) -> dict[str, object]:
    """What the ingest stage and its in-run checks take (the state store the batch commits to)."""
    return {
        "lake": lake,
        "landing": landing,
        "state": StateResource(uri=settings.state_store_uri),
        "secrets": SecretsResource(hmac_key="test-secret"),
    }


def window(hours: float | None, **limits: float) -> dict[str, object]:
    return {"ops": {"audit_results": {"config": {"window_hours": hours, **limits}}}}


def audit(
    lake: LakeResource,
    landing: LandingResource,
    instance: dg.DagsterInstance,
    hours: float | None = 1.0,
    tables: frozenset[str] = INGEST_TABLES,
    **limits: float,
) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [build_audit_results(tables)],
        resources={"lake": lake, "landing": landing},
        instance=instance,
        run_config=window(hours, **limits),
    )


def results(settings: Settings) -> pl.DataFrame:
    return table(settings, "audit_results")


def test_the_audit_writes_one_row_per_audit_with_its_figures(
    settings: Settings, lake: LakeResource, landing: LandingResource, instance: dg.DagsterInstance
) -> None:
    good_lake(settings, lake, landing)
    run = audit(lake, landing, instance)
    assert run.success
    rows = results(settings)
    assert rows.schema == pl.Schema(AUDIT_RESULTS_SCHEMA)
    assert rows["audit"].to_list() == audit_names(INGEST_TABLES)
    assert rows["run_at"].n_unique() == 1 and rows["passed"].all()
    figures = {name: orjson.loads(text) for name, text in rows.select("audit", "figures").iter_rows()}
    assert figures["events_event_id_unique"] == {
        "rows": 499,
        "keys": 499,
        "duplicate_keys": 0,
        "extra_rows": 0,
        "partitions": 1,
    }
    assert figures["ingest_log_files_reconcile"]["files"] == 2
    assert figures["ingest_latency_slo"]["count"] == 499 and figures["ingest_latency_slo"]["p95_s"] < 10
    assert (
        figures["quarantine_trend"]["quarantined"] == 1
        and figures["quarantine_trend"]["reason_invalid_json"] == 1
    )
    assert figures["failure_trend"]["failed_files"] == 0
    assert "u-1" not in rows["figures"].str.join("").item()  # counts and rates, no ids

    evaluations = {e.check_name: e.passed for e in run.get_asset_check_evaluations()}
    assert evaluations == dict.fromkeys(audit_names(INGEST_TABLES), True)
    [materialization] = run.get_asset_materialization_events()
    metadata = materialization.materialization.metadata
    assert (metadata["audits"].value, metadata["failed"].value, metadata["rows_written"].value) == (15, 0, 15)
    assert "events_event_id_unique" in str(metadata["summary"].value)


def test_a_rerun_appends_its_own_rows_and_a_retried_step_adds_none(
    settings: Settings, lake: LakeResource, landing: LandingResource, instance: dg.DagsterInstance
) -> None:
    good_lake(settings, lake, landing)
    assert audit(lake, landing, instance).success
    assert audit(lake, landing, instance, hours=None).success  # the nightly run over the whole lake
    rows = results(settings)
    names = audit_names(INGEST_TABLES)
    assert rows.height == 2 * len(names) and rows["run_at"].n_unique() == 2

    run_at = rows["run_at"].max()
    assert isinstance(run_at, datetime)
    again = audit_rows(run_at, {name: CheckOutcome(True, {}) for name in names})
    assert append_audit_rows(lake, again) == 0  # the same run's rows are there already
    assert results(settings).height == 2 * len(names)


def test_findings_on_a_bad_lake_fail_their_audits(
    settings: Settings, lake: LakeResource, landing: LandingResource, instance: dg.DagsterInstance
) -> None:
    good_lake(settings, lake, landing)
    land(settings, "c.ndjson", file_lines("c", 100, bad_every=10))
    ingest(lake, landing)
    duplicate_an_event(lake)
    land(settings, "late.ndjson", file_lines("late", 5))  # landed, never ingested
    run = audit(lake, landing, instance, freshness_lag_minutes=0.0, ingest_p95_target_s=0.0)
    assert run.success  # findings are check results, not a failed run
    failed = set(results(settings).filter(~pl.col("passed"))["audit"])
    assert failed == {
        "events_event_id_unique",
        "ingest_log_files_reconcile",
        "quarantine_rate_under_limit",
        "quarantine_trend",
        "ingest_latency_slo",
        *(f"{t}_fresh" for t in INGEST_TABLES),
    }
    evaluations = {e.check_name: e for e in run.get_asset_check_evaluations()}
    assert not evaluations["events_event_id_unique"].passed
    assert evaluations["events_event_id_unique"].severity == dg.AssetCheckSeverity.ERROR
    assert evaluations["quarantine_trend"].severity == dg.AssetCheckSeverity.WARN


def test_send_audits_join_once_sends_exist(
    settings: Settings, lake: LakeResource, landing: LandingResource, instance: dg.DagsterInstance
) -> None:
    good_lake(settings, lake, landing)
    good_later_tables(lake)
    decided = datetime.now(UTC) - 40 * MIN
    write_table(lake, "triggers", triggers(("t9", "send", decided, None)))  # no outbox row
    run = audit(lake, landing, instance, tables=frozenset(TABLES))
    assert run.success
    rows = results(settings)
    assert rows["audit"].to_list() == audit_names(TABLES)
    assert "send_latency_slo" in rows["audit"].to_list()
    assert set(rows.filter(~pl.col("passed"))["audit"]) == {"sends_terminal_within_budget"}
    figures = {name: orjson.loads(text) for name, text in rows.select("audit", "figures").iter_rows()}
    assert figures["sends_terminal_within_budget"]["missing"] == 1
    assert (figures["send_latency_slo"]["count"], figures["send_latency_slo"]["p95_s"]) == (1, 5.0)


def test_audit_definitions_are_pinned(
    settings: Settings, lake: LakeResource, landing: LandingResource, instance: dg.DagsterInstance
) -> None:
    defs = audit_definitions(INGEST_TABLES, resources_of(settings, lake, landing))
    graph = defs.resolve_asset_graph()
    [audit_key] = [key for key in graph.get_all_asset_keys() if graph.get(key).is_materializable]
    assert audit_key.to_user_string() == "audit_results"
    assert graph.get(audit_key).group_name == "operations"
    assert {k.name for k in graph.asset_check_keys if k.asset_key == audit_key} == set(
        audit_names(INGEST_TABLES)
    )
    monitors = {
        (k.asset_key.to_user_string(), k.name) for k in graph.asset_check_keys if k.asset_key != audit_key
    }
    assert monitors == {(c.asset, c.name) for c in checks_for(INGEST_TABLES, in_run=False)}
    assert {(c.asset, c.name) for c in checks_for(INGEST_TABLES, in_run=False)} == {
        ("quarantine", "quarantine_required_non_null"),
        ("ingest_log", "ingest_log_required_non_null"),
        ("identities", "identities_required_non_null"),
        *((t, f"{t}_fresh") for t in INGEST_TABLES),
    }
    wired = build_defs(settings)
    schedules = {s.name: s for s in wired.schedules or [] if isinstance(s, dg.ScheduleDefinition)}
    schedules = {n: s for n, s in schedules.items() if n.startswith("audit")}
    assert {name: s.cron_schedule for name, s in schedules.items()} == {
        "audit_schedule": "5 * * * *",
        "audit_full_schedule": "15 3 * * *",
    }
    for name, hours in (("audit_schedule", 1.0), ("audit_full_schedule", None)):
        schedule = schedules[name]
        assert schedule.job_name == "audit_job"
        assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
        with dg.build_schedule_context(instance=instance) as context:  # it asks what is in flight
            [request] = schedule.evaluate_tick(context).run_requests or []
        assert request.run_config == window(hours)
    # Today's Definitions wire in the in-run checks and these audits, and they load.
    dg.Definitions.validate_loadable(wired)
    assert {s.name for s in wired.schedules or []} >= {"audit_schedule", "audit_full_schedule"}


def test_the_audit_job_runs_the_hourly_monitors_on_the_tables(
    settings: Settings, lake: LakeResource, landing: LandingResource, instance: dg.DagsterInstance
) -> None:
    good_lake(settings, lake, landing)
    land(settings, "late.ndjson", file_lines("late", 5))
    stale = Thresholds(freshness_lag=timedelta(0))
    defs = audit_definitions(INGEST_TABLES, resources_of(settings, lake, landing), stale)
    run = defs.resolve_job_def("audit_job").execute_in_process(instance=instance, run_config=window(None))
    assert run.success
    on_tables = {
        (e.asset_key.to_user_string(), e.check_name): e.passed
        for e in run.get_asset_check_evaluations()
        if e.asset_key.to_user_string() != "audit_results"
    }
    assert on_tables == {
        **{(t, f"{t}_fresh"): False for t in INGEST_TABLES},
        **{(t, f"{t}_required_non_null"): True for t in ("quarantine", "ingest_log", "identities")},
    }
    assert results(settings).height == len(audit_names(INGEST_TABLES))


def test_a_micro_batch_job_selects_everything_but_the_audit(
    settings: Settings, lake: LakeResource, landing: LandingResource, instance: dg.DagsterInstance
) -> None:
    keys = set(INGEST_TABLES)
    batch_job = dg.define_asset_job(
        "batch_job",
        selection=dg.AssetSelection.all() - audit_selection(keys),
        executor_def=dg.in_process_executor,
    )
    audits = audit_definitions(keys, resources_of(settings, lake, landing))
    defs = dg.Definitions.merge(
        audits, dg.Definitions(assets=[ingest_stage], asset_checks=build_asset_checks(keys), jobs=[batch_job])
    )
    land(settings, "a.ndjson", file_lines("a", 20))
    run = defs.resolve_job_def("batch_job").execute_in_process(instance=instance)
    assert run.success
    assert {
        e.asset_key.to_user_string() for e in run.get_asset_materialization_events() if e.asset_key
    } == keys | {"customers", "catalog", "catalog_changes"}
    ran = {e.check_name for e in run.get_asset_check_evaluations()}
    assert ran == {c.name for c in checks_for(keys, in_run=True)} | {"no_failed_files"}


def test_lakemail_s_audit_job_runs_green_on_an_empty_lake(
    settings: Settings, instance: dg.DagsterInstance
) -> None:
    """The first hourly audit of a new home: every declared check is produced, and passes (#13, 16)."""
    job = build_defs(settings).resolve_job_def("audit_job")
    run = job.execute_in_process(instance=instance, run_config=window(1.0), raise_on_error=False)
    assert run.success
    evaluations = {e.check_name: e.passed for e in run.get_asset_check_evaluations()}
    assert set(audit_names(CHAIN_TABLES)) | {c.name for c in checks_for(CHAIN_TABLES, in_run=False)} == set(
        evaluations
    )
    assert all(evaluations.values()), evaluations
    assert results(settings)["audit"].to_list() == audit_names(CHAIN_TABLES)


def test_the_send_latency_slo_counts_from_when_the_email_was_due(
    settings: Settings, lake: LakeResource, landing: LandingResource, instance: dg.DagsterInstance
) -> None:
    """A cart email waits its delay on purpose: the SLO measures what the system added after it (#13)."""
    due = datetime.now(UTC) - 10 * MIN
    delayed = [(f"t{i}", due - 2 * MIN, due, due + timedelta(seconds=3)) for i in range(5)]
    late_event = ("t9", due + MIN, due - MIN, due + MIN + timedelta(seconds=4))  # landed after its due time
    write_table(
        lake,
        "sends",
        pl.DataFrame(
            [(f"s-{t}", t, "sent", *times) for t, *times in [*delayed, late_event]],
            schema={
                "send_id": pl.String,
                "trigger_id": pl.String,
                "status": pl.String,
                "landed_at": pl.Datetime("us", "UTC"),
                "due_at": pl.Datetime("us", "UTC"),
                "sent_at": pl.Datetime("us", "UTC"),
            },
            orient="row",
        ),
    )
    run = audit(lake, landing, instance, tables=frozenset(TABLES))
    assert run.success
    figures = {
        name: orjson.loads(text) for name, text in results(settings).select("audit", "figures").iter_rows()
    }
    slo = figures["send_latency_slo"]
    assert (slo["count"], slo["max_s"]) == (6, 4.0) and slo["p50_s"] == 3.0
    evaluations = {e.check_name: e.passed for e in run.get_asset_check_evaluations()}
    assert evaluations["send_latency_slo"]


def test_profiles_fresh_fails_while_the_profiles_refresh_is_behind(
    settings: Settings, instance: dg.DagsterInstance
) -> None:
    """`profiles` is rewritten by profiles_job alone (PRODUCT.md: at most 5 minutes behind), yet its
    freshness was judged by `profile_updates`, which every micro-batch appends to: with the refresh stopped
    (schedule off, every run failing) `profiles_fresh` passed for ever (found by review)."""
    lag = timedelta(seconds=1)
    defs = build_defs(settings, thresholds=Thresholds(freshness_lag=lag))
    batch, refresh = defs.resolve_job_def("microbatch_job"), defs.resolve_job_def("profiles_job")
    audit_job = defs.resolve_job_def("audit_job")

    def fresh() -> dict[str, bool]:
        config = window(None, freshness_lag_minutes=lag / MIN)
        run = audit_job.execute_in_process(instance=instance, run_config=config)
        return {
            e.asset_key.to_user_string(): e.passed
            for e in run.get_asset_check_evaluations()
            if e.check_name.endswith("_fresh") and e.asset_key.to_user_string() in ("events", "profiles")
        }

    land(settings, "a.ndjson", file_lines("a", 5))
    assert batch.execute_in_process(instance=instance, run_config=microbatch_config(None, 64)).success
    assert refresh.execute_in_process(instance=instance).success
    land(settings, "b.ndjson", file_lines("b", 5))  # ingested, not yet in `profiles`
    assert batch.execute_in_process(instance=instance, run_config=microbatch_config(None, 64)).success
    time.sleep(2 * lag.total_seconds())

    assert fresh() == {"events": True, "profiles": False}
    assert refresh.execute_in_process(instance=instance).success
    assert fresh() == {"events": True, "profiles": True}
