"""A stale profile at send time: the ingest lane is stalled behind files landed longer ago than the shop's
staleness bound (72 h by default), so the store's profiles miss their lines and the email falls back to
generic content; with the landing zone taken up, the same email is personal."""

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
from resources.shop import ShopResource
from tests.conftest import land
from tests.dagster.sends_harness import SHOPPERS, sends, signups
from tests.story import at, message

STALE = {"block": "profile", "reason": "stale_profile"}


def lane(
    settings: Settings,
    instance: dg.DagsterInstance,
    job: str,
    minutes: float,
    staleness_s: float | None = None,
) -> None:
    """One run of one lane at T0 + `minutes`, mailing through the sandbox (the shop's staleness bound
    `staleness_s` seconds when given)."""
    email = EmailProviderResource(esp="sandbox", url=settings.esp_url, api_key=SANDBOX_API_KEY)
    now = at(minutes).isoformat()
    config = ingest_config(None, 128, now) if job == INGEST_JOB else decide_config(now)
    defs = build_defs(settings, email=email)
    assert defs.resources is not None
    shop = defs.resources["shop"]
    if staleness_s is not None:
        shop = ShopResource(
            public_url=shop.public_url, click_url=shop.click_url, staleness_hours=staleness_s / 3600
        )
    result = defs.resolve_job_def(job).execute_in_process(
        instance=instance, run_config=config, resources={"shop": shop}
    )
    assert result.success


@pytest.mark.parametrize(
    ("late_file", "bound_s", "stale"), [(True, 1.0, True), (True, 3600.0, False), (False, 1.0, False)]
)
def test_an_email_is_generic_when_the_ingest_is_stalled_past_the_staleness_bound(
    mail_settings: Settings,
    instance: dg.DagsterInstance,
    late_file: bool,
    bound_s: float,
    stale: bool,
) -> None:
    # A file lands when it appears in the zone (its ctime; its mtime is its producer's date): with a bound
    # of a second it waits past the bound without a clock to turn; with an hour's, not; and a shop with
    # nothing waiting is not stale however long it has been quiet.
    user = SHOPPERS[0]
    signups(mail_settings, [user])
    lane(mail_settings, instance, INGEST_JOB, 1)
    if late_file:  # landed, never taken by an ingest run
        seen = message("Product Viewed", at(2), user=user, product_id="p1")
        path = land(mail_settings, "late.ndjson", [json.dumps(seen).encode()])
        dated = time.time() - 73 * 3600  # its producer's date, not when it landed
        os.utime(path, (dated, dated))
    time.sleep(1.5)
    lane(mail_settings, instance, DECIDE_JOB, 5, staleness_s=bound_s)
    [welcome] = sends(mail_settings).rows(named=True)
    assert welcome["status"] == "sent"
    assert (STALE in json.loads(welcome["fallbacks"])) is stale
