"""The one `Definitions` of lakemail: every asset, check, job, sensor and schedule, every resource bound."""

from __future__ import annotations

from typing import Any

import dagster as dg

from assets.audits import build_audit_results
from assets.checks import build_asset_checks, build_monitor_checks
from assets.ingest import ingest_stage
from assets.maintenance import maintenance
from assets.measure import build_measure_assets
from assets.profiles import profiles
from assets.sends import build_sends_asset
from assets.triggers import build_triggers_asset, kind_delays
from orchestration.jobs import (
    CHAIN_TABLES,
    audit_job,
    decide_job,
    erasure_job,
    ingest_job,
    maintenance_job,
    measure_job,
    microbatch_job,
    profiles_job,
)
from orchestration.schedules import SCHEDULES, profiles_schedule
from orchestration.sensors import build_lane_sensors, erasure_sensor
from orchestration.settings import Settings, public_url_for
from resources.email import EmailProviderResource
from resources.lake import LakeResource
from resources.landing import LandingResource
from resources.providers import SANDBOX_API_KEY, SANDBOX_URL
from resources.secrets import SecretsResource
from resources.shop import ShopResource
from resources.state import StateResource
from transforms.operations.checks import Thresholds


def email_resource(settings: Settings) -> EmailProviderResource:
    """The provider of `LAKEMAIL_ESP`; its key only ever through `dg.EnvVar("LAKEMAIL_ESP_API_KEY")`."""
    if settings.esp_api_key_set:
        api_key: Any = dg.EnvVar("LAKEMAIL_ESP_API_KEY")
    else:  # the local sandbox has a fixed default key; a real provider then answers 401 (circuit)
        api_key = SANDBOX_API_KEY if settings.esp == "sandbox" else ""
    return EmailProviderResource(
        esp=settings.esp, url=settings.esp_url, api_key=api_key, sender=settings.sender
    )


def build_defs(
    settings: Settings,
    lake: LakeResource | None = None,
    email: EmailProviderResource | None = None,
    thresholds: Thresholds | None = None,
) -> dg.Definitions:
    """Definitions wired to the lake and landing zone of `settings` (`lake`, `email` replace those;
    `thresholds` the audit limits)."""
    tables = set(CHAIN_TABLES)
    return dg.Definitions(
        assets=[
            ingest_stage,
            profiles,
            build_triggers_asset(kind_delays(settings.delays), settings.policy),
            build_sends_asset(settings.policy),
            build_audit_results(tables),
            maintenance,
            *build_measure_assets(settings.attribution_window),
        ],
        asset_checks=[
            *build_asset_checks(tables, thresholds),
            *build_monitor_checks(tables, thresholds),
        ],
        jobs=[
            ingest_job,
            decide_job,
            microbatch_job,
            audit_job,
            maintenance_job,
            erasure_job,
            measure_job,
            profiles_job,
        ],
        sensors=[*build_lane_sensors(settings.poll_seconds, settings.max_batch_mb), erasure_sensor],
        schedules=[*SCHEDULES, profiles_schedule(settings.profiles_refresh)],
        resources={
            "lake": lake or LakeResource(uri=settings.lake_uri),
            "landing": LandingResource(uri=settings.landing_uri, max_file_mb=settings.max_file_mb),
            "email": email or email_resource(settings),
            # a real provider's links need LAKEMAIL_PUBLIC_URL (SettingsError); the sandbox serves its own
            "shop": ShopResource(
                public_url=public_url_for(settings.esp, settings.public_url)
                or settings.esp_url
                or SANDBOX_URL,
                click_url=settings.click_url,
            ),
            "secrets": SecretsResource(hmac_key=dg.EnvVar("LAKEMAIL_SECRET")),
            "state": StateResource(uri=settings.state_store_uri),  # erasure removes the person from it
        },
    )


@dg.definitions
def defs() -> dg.Definitions:
    """Loaded by `dagster` through workspace.yaml / [tool.dagster]."""
    return build_defs(Settings.load())
