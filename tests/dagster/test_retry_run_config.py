"""`lakemail retry --failed` keeps its run config small (found by review): it named every failing landing
file in the run's config, twice (`files` and `retry`), and Dagster stores each run's config, per run and
per run retry: 1,500 failing files were some 120k characters. Past what `lane_manifest` names, the config
names none and the run takes again exactly the files failing as of the batch the command looked at."""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg
import polars as pl

from orchestration.definitions import build_defs
from orchestration.jobs import MANIFEST_MAX_CHARS, MICROBATCH_JOB
from orchestration.process import retry_once
from orchestration.settings import Settings
from resources.lake import LakeResource
from resources.landing import LandingResource
from stores.ingest import ingest, landed_files
from tests.conftest import table
from tests.dagster.test_backlog_run_config import BACKLOG, config_chars, land_backlog
from tests.lake.test_ingest_files import FlakyLanding


def fail_reads(settings: Settings, lake: LakeResource, prefix: str) -> list[str]:
    """Ingest the landed files named `prefix-*` on a disk whose reads of them fail: each one `retrying`."""
    landing = LandingResource(uri=settings.landing_uri)
    paths = sorted(f.path for f in landed_files(landing) if f.path.startswith(f"events/{prefix}-"))
    disk = FlakyLanding(uri=settings.landing_uri, flaky=paths)
    report = ingest(lake, disk, paths, now=datetime.now(UTC))
    assert report.retrying_files == paths
    return paths


def logged(settings: Settings, prefix: str) -> pl.DataFrame:
    return table(settings, "ingest_log").filter(pl.col("source_file").str.starts_with(f"events/{prefix}-"))


def test_retry_failed_of_many_files_has_a_small_config_and_takes_exactly_them_again(
    settings: Settings, lake: LakeResource, instance: dg.DagsterInstance
) -> None:
    land_backlog(settings, "a", BACKLOG)
    failing = fail_reads(settings, lake, "a")
    land_backlog(settings, "late", 3)  # landed, never taken: no retry's business

    summary, outcomes = retry_once(settings, None, instance)

    assert summary["status"] == "SUCCESS"
    assert outcomes == [(path, "committed", "") for path in failing]
    [run] = instance.get_runs()
    assert config_chars(run.run_config) < 1024 < MANIFEST_MAX_CHARS  # as Dagster stored it
    assert table(settings, "events").height == BACKLOG
    assert logged(settings, "late").is_empty()

    # Another file fails after the command looked; a run retry of the retry takes the same files again.
    land_backlog(settings, "z", 1)
    fail_reads(settings, lake, "z")
    job = build_defs(settings).resolve_job_def(MICROBATCH_JOB)
    assert job.execute_in_process(instance=instance, run_config=run.run_config).success
    assert logged(settings, "z")["status"].to_list() == ["retrying"]
    assert logged(settings, "late").is_empty()
    assert table(settings, "events").height == BACKLOG  # each event once
    assert logged(settings, "a")["source_file"].value_counts()["count"].to_list() == [3] * BACKLOG


def test_retry_failed_of_a_few_files_still_names_them(
    settings: Settings, lake: LakeResource, instance: dg.DagsterInstance
) -> None:
    land_backlog(settings, "a", 3)
    failing = fail_reads(settings, lake, "a")

    summary, outcomes = retry_once(settings, None, instance)

    assert summary["status"] == "SUCCESS" and [o[1] for o in outcomes] == ["committed"] * 3
    [run] = instance.get_runs()
    ops = run.run_config["ops"]
    assert isinstance(ops, dict) and ops["ingest_stage"]["config"] == {
        "files": [],
        "max_batch_mb": settings.max_batch_mb,
        "now": None,
        "retry": failing,
    }
