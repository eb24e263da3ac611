"""Real Dagster: the Definitions' public names, the sensor, and the micro-batch job on a real lake."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from orchestration.definitions import build_defs
from orchestration.jobs import MICROBATCH_JOB
from orchestration.settings import Settings
from resources.lake import LakeResource
from resources.landing import LandingResource
from resources.state import StateResource
from tests.conftest import instance_at, lake_snapshot, land, lose_dagster_storage, table
from tests.events_data import file_lines, track


def run_config(files: list[str] | None) -> dict[str, object]:
    return {"ops": {"ingest_stage": {"config": {"files": files}}}}


def execute(
    settings: Settings, instance: dg.DagsterInstance, files: list[str] | None
) -> dg.ExecuteInProcessResult:
    job = build_defs(settings).resolve_job_def(MICROBATCH_JOB)
    return job.execute_in_process(instance=instance, run_config=run_config(files))


def evaluate_sensor(settings: Settings, instance: dg.DagsterInstance, cursor: str | None = None) -> object:
    defs = build_defs(settings)
    sensor = defs.resolve_sensor_def("landing_sensor")
    resources = {
        "lake": LakeResource(uri=settings.lake_uri),
        "landing": LandingResource(uri=settings.landing_uri),
        "state": StateResource(uri=settings.state_store_uri),
    }
    context = dg.build_sensor_context(instance=instance, resources=resources, cursor=cursor)
    return sensor(context)


def test_public_names_are_pinned(settings: Settings) -> None:
    defs = build_defs(settings)
    graph = defs.resolve_asset_graph()
    assert {k.to_user_string() for k in graph.get_all_asset_keys()} == {
        "events",
        "quarantine",
        "catalog",
        "customers",
        "catalog_changes",
        "profiles",
        "triggers",
        "sends",
        "ingest_log",
        "identities",
        "audit_results",
        "maintenance",
        "attributions",
        "experiments",
    }
    jobs = {j.name for j in defs.resolve_all_job_defs() if not j.name.startswith("__")}
    assert jobs == {
        *("ingest_job", "decide_job"),  # the two lanes (#15)
        *("microbatch_job", "audit_job", "maintenance_job", "erasure_job", "measure_job", "profiles_job"),
    }
    assert {s.name for s in defs.sensors or []} == {"landing_sensor", "decide_sensor", "erasure_sensor"}
    schedules = {s.name: s for s in defs.schedules or []}
    assert set(schedules) == {
        "audit_schedule",
        "audit_full_schedule",
        "maintenance_schedule",
        "measure_schedule",
        "profiles_schedule",
    }
    assert all(s.default_status == dg.DefaultScheduleStatus.RUNNING for s in schedules.values())
    in_run = {
        k.name for k in graph.asset_check_keys if k.asset_key.to_user_string() in {"events", "ingest_log"}
    }
    assert {"no_failed_files", "events_event_id_unique", "ingest_log_files_reconcile"} <= in_run
    for name in ("landing_sensor", "decide_sensor"):
        assert defs.resolve_sensor_def(name).default_status == dg.DefaultSensorStatus.RUNNING


def test_the_micro_batch_runs_only_the_ingest_chain_and_its_in_run_checks(
    settings: Settings, instance: dg.DagsterInstance
) -> None:
    land(settings, "a.ndjson", [track("m-1"), track("m-2")])
    result = execute(settings, instance, None)
    materialized = {
        e.asset_key.to_user_string() for e in result.get_asset_materialization_events() if e.asset_key
    }
    assert materialized == {
        *("events", "quarantine", "ingest_log", "identities", "customers", "catalog", "catalog_changes"),
        *("triggers", "sends"),  # `profiles` is profiles_job's (off the hot path)
    }
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks["events_event_id_unique"] and checks["no_failed_files"]
    assert not any(name.endswith("_fresh") for name in checks)  # freshness is the hourly audit's


def test_sensor_launches_one_run_for_every_new_file(settings: Settings, instance: dg.DagsterInstance) -> None:
    assert isinstance(evaluate_sensor(settings, instance), dg.SkipReason)
    for i in range(3):
        land(settings, f"f{i}.ndjson", file_lines(f"f{i}", 5))
    request = evaluate_sensor(settings, instance)
    assert isinstance(request, dg.RunRequest)
    files = request.run_config["ops"]["ingest_stage"]["config"]["files"]
    assert files == ["events/f0.ndjson", "events/f1.ndjson", "events/f2.ndjson"]
    assert request.run_key == evaluate_sensor(settings, instance).run_key  # type: ignore[attr-defined]

    assert execute(settings, instance, files).success
    skip = evaluate_sensor(settings, instance)
    assert isinstance(skip, dg.SkipReason) and "no new" in (skip.skip_message or "")


def test_a_file_landing_while_a_run_is_in_flight_goes_into_the_next_run(
    settings: Settings, instance: dg.DagsterInstance
) -> None:
    land(settings, "a.ndjson", file_lines("a", 5))
    first = evaluate_sensor(settings, instance)
    assert isinstance(first, dg.RunRequest)
    job = build_defs(settings).resolve_job_def(MICROBATCH_JOB)
    in_flight = instance.create_run_for_job(
        job, run_config=first.run_config, status=dg.DagsterRunStatus.STARTED
    )

    land(settings, "b.ndjson", file_lines("b", 5))
    waiting = evaluate_sensor(settings, instance)
    assert isinstance(waiting, dg.SkipReason) and "in flight" in (waiting.skip_message or "")

    assert execute(settings, instance, first.run_config["ops"]["ingest_stage"]["config"]["files"]).success
    instance.report_run_failed(in_flight)  # the placeholder run ends; the real work above committed
    second = evaluate_sensor(settings, instance)
    assert isinstance(second, dg.RunRequest)
    assert second.run_config["ops"]["ingest_stage"]["config"]["files"] == ["events/b.ndjson"]


def test_lost_dagster_home_starts_over_without_doubling(settings: Settings, tmp_path: Path) -> None:
    for i in range(3):
        land(settings, f"f{i}.ndjson", file_lines(f"f{i}", 20, bad_every=7))
    home = tmp_path / "home1"
    home.mkdir()
    (tmp_path / "home2").mkdir()
    with instance_at(home) as first:
        request = evaluate_sensor(settings, first)
        assert isinstance(request, dg.RunRequest)
        assert execute(settings, first, request.run_config["ops"]["ingest_stage"]["config"]["files"]).success
    before = lake_snapshot(settings)
    lose_dagster_storage(home)
    with instance_at(tmp_path / "home2") as fresh:
        assert isinstance(evaluate_sensor(settings, fresh), dg.SkipReason)
        assert execute(settings, fresh, None).success  # even a forced run adds nothing
    assert lake_snapshot(settings) == before
    assert before["events"] == 3 * 18


def test_a_failing_file_does_not_block_later_files_and_shows_as_failed(
    settings: Settings, instance: dg.DagsterInstance
) -> None:
    land(settings, "a-broken.ndjson.gz", b"this is not gzip")
    land(settings, "b-good.ndjson", [track("m-1"), track("m-2")])
    result = execute(settings, instance, None)
    assert result.success
    log = table(settings, "ingest_log").sort("source_file")
    assert log.select("source_file", "status").rows() == [
        ("events/a-broken.ndjson.gz", "failed"),
        ("events/b-good.ndjson", "committed"),
    ]
    assert "BadGzipFile" in log["detail"][0]
    assert sorted(table(settings, "events")["event_id"]) == ["m-1", "m-2"]
    [check] = [e for e in result.get_asset_check_evaluations() if e.check_name == "no_failed_files"]
    assert not check.passed and check.metadata["failed"].value == ["events/a-broken.ndjson.gz"]


def test_gzip_files_are_ingested(settings: Settings, instance: dg.DagsterInstance) -> None:
    import gzip

    land(settings, "z.ndjson.gz", gzip.compress(track("gz-1") + b"\n" + track("gz-2") + b"\n"))
    assert execute(settings, instance, None).success
    assert sorted(table(settings, "events")["event_id"]) == ["gz-1", "gz-2"]


def test_a_file_landing_again_with_other_bytes_is_reported_not_reread(
    settings: Settings, instance: dg.DagsterInstance
) -> None:
    land(settings, "a.ndjson", [track("m-1")])
    assert execute(settings, instance, None).success
    land(settings, "a.ndjson", [track("m-1"), track("m-2")], replace=True)  # a producer breaking the rule
    assert execute(settings, instance, None).success
    log = table(settings, "ingest_log").sort("batch_id")
    assert log["status"].to_list() == ["committed", "changed"]
    assert table(settings, "events")["event_id"].to_list() == ["m-1"]
    assert execute(settings, instance, None).success  # reported once, not again
    assert table(settings, "ingest_log").height == 2


def test_run_metadata_reports_counts_and_reasons(settings: Settings, instance: dg.DagsterInstance) -> None:
    land(settings, "a.ndjson", [track("m-1"), track("m-1"), b"{bad", track("m-2")])
    result = execute(settings, instance, None)
    by_key = {
        e.asset_key.to_user_string(): e.materialization.metadata
        for e in result.get_asset_materialization_events()
        if e.asset_key
    }
    assert (by_key["events"]["accepted"].value, by_key["events"]["duplicates"].value) == (2, 1)
    assert by_key["quarantine"]["by_reason"].value == {"invalid_json": 1}
    assert "product_id" in str(by_key["events"]["preview"].value)
    assert "u-1" not in str(by_key["events"]["preview"].value)  # no user ids in the UI preview
    assert isinstance(by_key["events"]["batch_lag_seconds"].value, float)


def test_fixture_paths_stay_under_tmp(settings: Settings, tmp_path: Path) -> None:
    assert Path(settings.lake_uri).is_relative_to(tmp_path)
