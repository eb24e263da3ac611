"""A stale profile at send time: the ingest lane is stalled behind files landed longer ago than the shop's
staleness bound (72 h), so the store's profiles miss their lines and the email falls back to generic
content; with the landing zone taken up, the same email is personal."""

from __future__ import annotations

import json
import os
import time

import dagster as dg
import pytest

from orchestration.definitions import build_defs
from orchestration.jobs import DECIDE_JOB, INGEST_JOB, decide_config, ingest_config
from orchestration.settings import Settings
from resources.email import EmailProviderResource
from resources.providers import SANDBOX_API_KEY
from tests.conftest import land
from tests.dagster.sends_harness import SHOPPERS, sends, signups
from tests.dagster.test_sends import mail_settings, mailbox  # noqa: F401 (fixtures)
from tests.story import at, message

STALE = {"block": "profile", "reason": "stale_profile"}


def lane(settings: Settings, instance: dg.DagsterInstance, job: str, minutes: float) -> None:
    """One run of one lane at T0 + `minutes`, mailing through the sandbox."""
    email = EmailProviderResource(esp="sandbox", url=settings.esp_url, api_key=SANDBOX_API_KEY)
    now = at(minutes).isoformat()
    config = ingest_config(None, 128, now) if job == INGEST_JOB else decide_config(now)
    result = (
        build_defs(settings, email=email)
        .resolve_job_def(job)
        .execute_in_process(instance=instance, run_config=config)
    )
    assert result.success


@pytest.mark.parametrize(("behind_hours", "stale"), [(73, True), (71, False), (None, False)])
def test_an_email_is_generic_when_the_ingest_is_stalled_past_the_staleness_bound(
    mail_settings: Settings,  # noqa: F811
    instance: dg.DagsterInstance,
    behind_hours: float | None,
    stale: bool,
) -> None:
    user = SHOPPERS[0]
    signups(mail_settings, [user])
    lane(mail_settings, instance, INGEST_JOB, 1)
    if behind_hours is not None:  # landed `behind_hours` ago (its mtime), never taken by an ingest run
        seen = message("Product Viewed", at(2), user=user, product_id="p1")
        path = land(mail_settings, "late.ndjson", [json.dumps(seen).encode()])
        landed = time.time() - behind_hours * 3600
        os.utime(path, (landed, landed))
    lane(mail_settings, instance, DECIDE_JOB, 5)
    [welcome] = sends(mail_settings).rows(named=True)
    assert welcome["status"] == "sent"
    assert (STALE in json.loads(welcome["fallbacks"])) is stale
