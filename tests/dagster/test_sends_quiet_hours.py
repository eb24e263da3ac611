"""A welcome held by a refused key, end to end: when the key is fixed at night the email waits for 08:00
in the shopper's time zone, unless the settings turn quiet hours off; a day late, it never goes."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import dagster as dg
import orjson

from orchestration.settings import Settings
from resources.lake import LakeResource
from resources.landing import LandingResource
from stores.operations.checks import LAKE_CHECKS
from stores.operations.probe import Probe, Scope
from tests.conftest import land
from tests.dagster.sends_harness import SHOPPERS, Mailbox, run, sends, signups
from tests.story import at, message
from transforms.operations.checks import Thresholds
from transforms.triggers.policies import Policy

NIGHT = 9 * 60 + 30  # T0 + 9h30: 21:30 in London (GMT in November), where the shoppers live
MORNING = 20 * 60  # T0 + 20 h: 08:00 the next day in London


def held(settings: Settings, instance: dg.DagsterInstance) -> None:
    """Two welcomes decided at 12:05, refused by the provider: `retrying` behind the circuit."""
    signups(settings, SHOPPERS[:2])
    run(settings, instance, 5, api_key="wrong-key")
    assert sends(settings)["status"].to_list() == ["retrying"] * 2


def test_a_held_email_waits_for_08_00_when_the_key_is_fixed_at_night(
    mail_settings: Settings,
    mailbox: Mailbox,
    instance: dg.DagsterInstance,
) -> None:
    held(mail_settings, instance)
    run(mail_settings, instance, NIGHT)
    outbox = sends(mail_settings)
    assert outbox["status"].to_list() == ["retrying"] * 2
    assert outbox["last_error"].to_list() == ["quiet_hours"] * 2
    assert outbox["next_attempt_at"].to_list() == [datetime(2026, 11, 21, 8, 0, tzinfo=UTC)] * 2
    assert len(mailbox.requests()) == 1  # the refused probe; nothing at night
    run(mail_settings, instance, MORNING)
    assert sends(mail_settings)["status"].to_list() == ["sent"] * 2
    assert len(mailbox.messages()) == 2


def test_with_quiet_hours_off_in_the_settings_it_goes_at_night(
    mail_settings: Settings,
    mailbox: Mailbox,
    instance: dg.DagsterInstance,
) -> None:
    off = replace(mail_settings, policy=Policy(quiet_hours=False))
    held(off, instance)
    run(off, instance, NIGHT)
    assert sends(off)["status"].to_list() == ["sent"] * 2
    assert len(mailbox.messages()) == 2


def test_a_held_email_a_day_late_is_aborted_expired(
    mail_settings: Settings,
    mailbox: Mailbox,
    instance: dg.DagsterInstance,
) -> None:
    held(mail_settings, instance)
    run(mail_settings, instance, 25 * 60)  # 13:00 the next day, 25 h after the welcomes were due
    outbox = sends(mail_settings)
    assert outbox["status"].to_list() == ["aborted"] * 2
    assert outbox["last_error"].to_list() == ["expired"] * 2
    assert mailbox.messages() == []


def test_a_welcome_deferred_overnight_is_due_at_08_00_and_sent_within_its_budget(
    mail_settings: Settings,
    mailbox: Mailbox,
    instance: dg.DagsterInstance,
) -> None:
    """Found by review: the `send` decided as quiet hours ended was due at the night's due time, so its
    outbox row's latency (lakemail_landed_to_sent_seconds, the send-latency SLO) counted the 10.5 h the
    policy held it, and the hourly audit's sends_terminal_within_budget failed it as sent late."""
    signup = message(
        "identify", at(NIGHT), user=SHOPPERS[0], email="night@example.com", timezone="Europe/London"
    )
    signup["traits"] |= {"marketing_consent": True, "first_name": "Night"}
    land(mail_settings, "night.ndjson", [orjson.dumps(signup)])
    run(mail_settings, instance, NIGHT + 1)  # 21:31 in London: deferred to 08:00
    assert sends(mail_settings).height == 0
    run(mail_settings, instance, MORNING + 5 / 60)  # 08:00:05
    outbox = sends(mail_settings)
    assert outbox["status"].to_list() == ["sent"]
    lake, landing = LakeResource(uri=mail_settings.lake_uri), LandingResource(uri=mail_settings.landing_uri)
    probe = Probe(lake, landing, Scope(), Thresholds(), at(MORNING + 60))
    (budget,) = [c for c in LAKE_CHECKS if c.name == "sends_terminal_within_budget"]
    outcome = budget.evaluate(probe)
    assert outcome.passed and outcome.figures["sent_late"] == 0, outcome.figures
    assert outbox["due_at"].to_list() == [datetime(2026, 11, 21, 8, 0, tzinfo=UTC)]
