"""measure_job (#19) in real Dagster: attributions, then experiments, with the table and the picture in
the asset's metadata (what the UI shows); and `lakemail report` on the same lake."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from orchestration.definitions import build_defs
from orchestration.settings import Settings
from resources.lake import LakeResource
from simulator.truth import Truth, simulate_truth
from stores.ingest_tables import set_up_tables
from tests.conftest import storage_env
from tests.lake.overlap import Overlapping
from transforms.measure.tables import ATTRIBUTIONS_SCHEMA, EXPERIMENTS_SCHEMA

ROOT = Path(__file__).resolve().parents[2]


def test_measure_job_shows_the_experiments_and_the_report_agrees(
    settings: Settings, instance: dg.DagsterInstance, lake: LakeResource, tmp_path: Path
) -> None:
    simulate_truth(lake, Truth(shoppers_per_kind=1_500), seed=4)
    job = build_defs(settings).resolve_job_def("measure_job")
    now = {"ops": {"experiments": {"config": {"now": "2026-04-10T00:00:00+00:00"}}}}
    result = job.execute_in_process(instance=instance, run_config=now)
    assert result.success
    shown = {
        e.asset_key.to_user_string(): e.materialization.metadata
        for e in result.get_asset_materialization_events()
        if e.asset_key
    }
    assert set(shown) == {"attributions", "experiments"}
    credited = shown["attributions"]["credited"].value
    assert isinstance(credited, int) and credited > 0
    table = shown["experiments"]["experiments"]
    assert isinstance(table, dg.MarkdownMetadataValue) and "| abandoned_cart | holdout |" in table.value
    assert "| exposed | sent | clicked | click rate [95% CI] |" in table.value
    sent = shown["experiments"]["sent"].value
    assert isinstance(sent, int) and sent > 0
    assert shown["experiments"]["window"].value == shown["attributions"]["window"].value == "5d"
    plot = Path(str(shown["experiments"]["plot"].value))
    assert plot.read_bytes().startswith(b"\x89PNG")
    picture = shown["experiments"]["picture"]  # the picture itself, which the UI renders under the table
    prefix = "![What the emails earn](data:image/png;base64,"
    assert isinstance(picture, dg.MarkdownMetadataValue) and picture.value.startswith(prefix)
    assert base64.b64decode(picture.value.removeprefix(prefix).removesuffix(")")) == plot.read_bytes()

    env = {
        "PYTHONPATH": str(ROOT),
        "LAKEMAIL_HOME": str(settings.home),
        "LAKEMAIL_LAKE_URI": settings.lake_uri,
        **storage_env(),
    }
    command = [sys.executable, "-m", "orchestration.cli", "report"]
    text = subprocess.run([*command, "--format", "png"], env=env, capture_output=True, text=True, timeout=120)
    assert text.returncode == 0, text.stderr
    assert "abandoned_cart" in text.stdout and "uplift" in text.stdout
    assert (settings.home / "reports" / "earned.png").read_bytes().startswith(b"\x89PNG")
    rows = json.loads(
        subprocess.run([*command, "--format", "json"], env=env, capture_output=True, timeout=120).stdout
    )
    assert {(r["kind"], r["arm"]) for r in rows["arms"]} >= {("welcome", "holdout"), ("welcome", "a")}
    early = subprocess.run(
        [*command, "--since", "2026-05-01"], env=env, capture_output=True, text=True, timeout=120
    )
    assert early.returncode == 0 and "No shopper" in early.stdout
    bad = subprocess.run([*command, "--since", "March"], env=env, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "--since" in bad.stderr


def test_measure_job_holds_up_neither_lane(
    settings: Settings,
    instance: dg.DagsterInstance,
    lake: LakeResource,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """measure_job reads the whole lake (tens of seconds on a lake of a few million decisions) and writes
    only `attributions` and `experiments`: it took every lane's lock for all of it, so each hour no
    micro-batch of either lane committed meanwhile (found by review). It runs while both lanes hold theirs."""
    simulate_truth(lake, Truth(shoppers_per_kind=200), seed=4)
    set_up_tables(lake)  # as the lake's first micro-batch did
    job = build_defs(settings).resolve_job_def("measure_job")

    def measure() -> bool:
        return job.execute_in_process(instance=instance).success

    with lake.ingest_lock(), lake.decide_lock():  # a micro-batch of each lane in flight
        run = Overlapping(monkeypatch, measure).start()  # returns once it ends, or waits on a lock
        assert not run.waited, "measure_job waited for the lanes' locks"
    assert run.join() is True
    assert lake.read("attributions", ATTRIBUTIONS_SCHEMA).height > 0
    assert lake.read("experiments", EXPERIMENTS_SCHEMA).height > 0
