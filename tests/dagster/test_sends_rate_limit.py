"""A provider that answers 429 with a reset window: the send stage makes no other mail-send call until the
window has passed, in the run that heard it and in the runs after, then sends every email once.

Real micro-batch runs on a Delta lake, mailing through a real sandbox on a 127.0.0.1 ephemeral port that
scripts the 429 (Retry-After and X-RateLimit-Reset); time passes through the runs' `now`, never a sleep.
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import dagster as dg
import polars as pl

from orchestration.settings import Settings
from tests.dagster.sends_harness import SHOPPERS, Mailbox, run, sends, sends_metadata, signups
from tests.story import at

WINDOW_S = 300  # the sandbox's reset: Retry-After says 300 or 301 whole seconds


def test_a_429_with_a_reset_pauses_every_call_until_it_has_passed_then_each_email_goes_once(
    mail_settings: Settings,
    mailbox: Mailbox,
    instance: dg.DagsterInstance,
) -> None:
    signups(mail_settings, SHOPPERS[:4])
    mailbox.fault({"kind": "rate_limit", "reset_seconds": WINDOW_S})
    first = run(mail_settings, instance, 5)  # the probe hears the 429; the other three wait, uncalled
    assert [r["status"] for r in mailbox.requests()] == [429]
    outbox = sends(mail_settings)
    [limited] = outbox.filter(pl.col("attempts") == 1).iter_rows(named=True)
    assert limited["status"] == "retrying"
    assert limited["last_error"] == "rate_limited: HTTP 429: too many requests"  # the window's mark
    held = outbox.filter(pl.col("attempts") == 0)
    assert held.select("status", "last_error").rows() == [("pending", "rate_limited")] * 3
    window_end = limited["next_attempt_at"]
    assert at(5) + timedelta(seconds=WINDOW_S) <= window_end <= at(5) + timedelta(seconds=WINDOW_S + 1)
    assert held["next_attempt_at"].to_list() == [window_end] * 3  # the window's end, not a backoff
    assert sends_metadata(first)["rate_limited_until"] == window_end.isoformat()

    signups(mail_settings, SHOPPERS[4:6], name="later.ndjson")  # new emails while the window is open
    run(mail_settings, instance, 6)
    run(mail_settings, instance, 9)
    assert [r["status"] for r in mailbox.requests()] == [429]  # still the one call, three runs on
    outbox = sends(mail_settings)
    assert outbox.height == 6 and outbox["status"].to_list().count("sent") == 0
    assert outbox["next_attempt_at"].to_list() == [window_end] * 6

    run(mail_settings, instance, 11)  # the window has passed
    run(mail_settings, instance, 12)
    outbox = sends(mail_settings)
    assert outbox["status"].to_list() == ["sent"] * 6
    accepted = Counter(r["send_id"] for r in mailbox.requests() if r["status"] == 202)
    assert accepted == dict.fromkeys(outbox["send_id"], 1)  # each email sent exactly once
    assert len(mailbox.requests()) == 7 and len(mailbox.messages()) == 6
