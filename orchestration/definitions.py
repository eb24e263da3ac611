"""The one `Definitions` of lakemail, and the only place (with the CLI) that reads the environment."""

from __future__ import annotations

import os

import dagster as dg

from assets.audits import audit_selection, build_audit_definitions
from assets.checks import INGEST_TABLES, build_asset_checks
from assets.decisions import DECISIONS_GROUP, build_triggers_asset, kind_delays, profiles
from assets.erasure import build_erasure_definitions
from assets.events import INGEST_GROUP, ingest_stage
from assets.maintenance import build_maintenance_definitions
from orchestration.resources import LakeResource, LandingResource
from orchestration.sensors import MICROBATCH_JOB, build_landing_sensor
from orchestration.settings import Settings

CHAIN_TABLES = (*INGEST_TABLES, "profiles", "triggers")
microbatch_job = dg.define_asset_job(
    MICROBATCH_JOB,
    # The micro-batch chain and its in-run checks; the hourly monitor checks belong to audit_job.
    selection=dg.AssetSelection.groups(INGEST_GROUP, DECISIONS_GROUP) - audit_selection(CHAIN_TABLES),
    description="One micro-batch: everything landed since the last one, through the whole chain.",
    # In-process: one interpreter per run, not one per step (about 1.3 s saved per step, PERF-NOTES.md).
    executor_def=dg.in_process_executor,
)


def build_defs(settings: Settings, lake: LakeResource | None = None) -> dg.Definitions:
    """Definitions wired to the lake and landing zone of `settings` (`lake` replaces the lake resource)."""
    core = dg.Definitions(
        assets=[ingest_stage, profiles, build_triggers_asset(kind_delays(settings.delays))],
        asset_checks=build_asset_checks(set(CHAIN_TABLES)),
        jobs=[microbatch_job],
        sensors=[build_landing_sensor(settings.poll_seconds, settings.max_batch_mb)],
        resources={
            "lake": lake or LakeResource(uri=settings.lake_uri),
            "landing": LandingResource(uri=settings.landing_uri),
        },
    )
    return dg.Definitions.merge(
        core,
        build_audit_definitions(CHAIN_TABLES),
        build_maintenance_definitions(),
        build_erasure_definitions("LAKEMAIL_SECRET"),
    )


@dg.definitions
def defs() -> dg.Definitions:
    """Loaded by `dagster` through workspace.yaml / [tool.dagster]."""
    return build_defs(Settings.from_env(os.environ))
