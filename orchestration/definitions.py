"""The one `Definitions` of lakemail, and the only place (with the CLI) that reads the environment."""

from __future__ import annotations

import os

import dagster as dg

from assets.events import ingest_stage
from orchestration.resources import LakeResource, LandingResource
from orchestration.sensors import MICROBATCH_JOB, build_landing_sensor
from orchestration.settings import Settings

microbatch_job = dg.define_asset_job(
    MICROBATCH_JOB,
    selection=dg.AssetSelection.all(),
    description="One micro-batch: everything landed since the last one, through the whole chain.",
    # In-process: one interpreter per run, not one per step (about 1.3 s saved per step, PERF-NOTES.md).
    executor_def=dg.in_process_executor,
)


def build_defs(settings: Settings) -> dg.Definitions:
    """Definitions wired to the lake and landing zone of `settings`."""
    return dg.Definitions(
        assets=[ingest_stage],
        jobs=[microbatch_job],
        sensors=[build_landing_sensor(settings.poll_seconds, settings.max_batch_mb)],
        resources={
            "lake": LakeResource(uri=settings.lake_uri),
            "landing": LandingResource(uri=settings.landing_uri),
        },
    )


@dg.definitions
def defs() -> dg.Definitions:
    """Loaded by `dagster` through workspace.yaml / [tool.dagster]."""
    return build_defs(Settings.from_env(os.environ))
