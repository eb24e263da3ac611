"""The outbox end to end: real micro-batch runs on a Delta lake, sending to a real sandbox over HTTP.

Each test starts its own sandbox on a 127.0.0.1 ephemeral port and scripts its faults through the
sandbox's API; nothing is mocked.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import replace
from itertools import pairwise
from pathlib import Path
from typing import Any

import dagster as dg
import orjson
import polars as pl
import pytest

from orchestration.settings import Settings
from tests.conftest import instance_at, land, make_dagster_home, table
from tests.dagster.sends_harness import (
    ROOT,
    SHOPPERS,
    Mailbox,
    assert_css_inlined,
    run,
    sends,
    sends_metadata,
    signups,
)
from tests.story import at, message, spec_message


def test_welcome_emails_are_rendered_sent_once_and_recorded(
    mail_settings: Settings, mailbox: Mailbox, instance: dg.DagsterInstance
) -> None:
    signups(mail_settings, SHOPPERS[:3])
    land(
        mail_settings,
        "nameless.ndjson",
        [
            orjson.dumps(
                message(
                    "identify",
                    at(0),
                    user=SHOPPERS[3],
                    email=f"{SHOPPERS[3]}@example.com",
                    marketing_consent=True,
                    timezone="Europe/London",
                )
            )
        ],
    )
    first = run(mail_settings, instance, 5)
    for minutes in (5, 6, 60):  # the same instant again, then later runs: nothing more goes out
        run(mail_settings, instance, minutes)

    outbox = sends(mail_settings)
    assert outbox.height == 4
    assert outbox["status"].to_list() == ["sent"] * 4
    assert outbox["attempts"].to_list() == [1] * 4
    assert outbox["kind"].unique().to_list() == ["welcome"]
    assert outbox["landed_at"].null_count() == 0 and outbox["latency_ms"].null_count() == 0
    # sent_at is on the run's timeline (now = T0 + 5 min, whatever the wall clock says); the latency is
    # real time from the landing of the file (wall clock) to the provider's yes, within this test.
    assert all(at(5) <= sent < at(6) for sent in outbox["sent_at"])
    assert all(0 < latency < 600_000 for latency in outbox["latency_ms"])
    received = mailbox.messages()
    assert len(received) == 4
    by_send = {m["custom_args"]["send_id"]: m for m in received}
    assert set(by_send) == set(outbox["send_id"])
    assert dict(zip(outbox["send_id"], outbox["provider_message_id"], strict=True)) == {
        s: m["id"] for s, m in by_send.items()
    }
    nameless = outbox.filter(pl.col("user_id") == SHOPPERS[3]).row(0, named=True)
    assert {"block": "greeting", "reason": "no_first_name"} in json.loads(nameless["fallbacks"])
    mail = by_send[nameless["send_id"]]
    assert mail["to"] == f"{SHOPPERS[3]}@example.com"
    assert mail["headers"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "/unsubscribe/s-" in mail["headers"]["List-Unsubscribe"]
    assert "mailto:" in mail["headers"]["List-Unsubscribe"]
    assert_css_inlined(mail["html"])
    metadata = sends_metadata(first)
    assert (metadata["sent"], metadata["aborted"], metadata["waiting"]) == (4, 0, 0)
    example = str(metadata["example"])
    assert "Subject:" in example and "@example.com" not in example and "Name0" not in example


def test_503_three_times_then_accepted_is_one_message_after_four_attempts(
    mail_settings: Settings, mailbox: Mailbox, instance: dg.DagsterInstance
) -> None:
    signups(mail_settings, SHOPPERS[:1])
    mailbox.fault({"kind": "status", "status": 503, "times": 3})
    result = run(mail_settings, instance, 5)
    [row] = sends(mail_settings).iter_rows(named=True)
    assert (row["status"], row["attempts"]) == ("sent", 4)
    assert [r["status"] for r in mailbox.requests(row["send_id"])] == [503, 503, 503, 202]
    assert len(mailbox.messages()) == 1
    assert sends_metadata(result)["retried"] == 1


def test_429_with_a_reset_waits_for_the_reset_then_sends_once(
    mail_settings: Settings, mailbox: Mailbox, instance: dg.DagsterInstance
) -> None:
    signups(mail_settings, SHOPPERS[:1])
    mailbox.fault({"kind": "rate_limit", "reset_seconds": 2})
    run(mail_settings, instance, 5)
    [row] = sends(mail_settings).iter_rows(named=True)
    limited, accepted = mailbox.requests(row["send_id"])
    assert (limited["status"], accepted["status"]) == (429, 202)
    # X-RateLimit-Reset is a whole epoch second at least 2 s ahead: no call came before it
    assert accepted["at"] >= int(limited["at"] + 2)
    assert (row["status"], row["attempts"]) == ("sent", 2)
    assert len(mailbox.messages()) == 1


def test_a_run_probes_with_one_email_then_sends_the_rest_concurrently(
    mail_settings: Settings, mailbox: Mailbox, instance: dg.DagsterInstance
) -> None:
    signups(mail_settings, SHOPPERS[:5])
    slow = 2.0
    mailbox.fault({"kind": "slow", "seconds": slow, "times": 5})  # every answer takes >= 2 s
    result = run(mail_settings, instance, 5, concurrency=4)
    assert sends(mail_settings)["status"].to_list() == ["sent"] * 5
    assert len(mailbox.messages()) == 5 and sends_metadata(result)["sent"] == 5
    answered = sorted(r["at"] for r in mailbox.requests())
    assert len(answered) == 5
    # The probe went alone: every other call started after its answer, so ended >= 2 s later.
    assert all(at - answered[0] >= slow for at in answered[1:])
    # One at a time, each answer would come >= 2 s after the one before; these calls overlapped.
    assert min(b - a for a, b in pairwise(answered[1:])) < slow


def test_accept_then_hang_is_unknown_never_resent_and_settled_by_asking(
    mail_settings: Settings, mailbox: Mailbox, instance: dg.DagsterInstance
) -> None:
    signups(mail_settings, SHOPPERS[:1])
    mailbox.fault({"kind": "accept_then_hang", "seconds": 3})
    run(mail_settings, instance, 5, read_timeout_s=0.5, lookup_after_s=120)
    [row] = sends(mail_settings).iter_rows(named=True)
    assert (row["status"], row["last_error"]) == ("unknown", "ReadTimeout")
    assert row["next_attempt_at"] == at(7)  # the run's now plus lookup_after, whatever the wall clock
    run(mail_settings, instance, 6)  # a minute later, before lookup_after: nothing happens
    assert sends(mail_settings)["status"].to_list() == ["unknown"]
    assert len(mailbox.requests(row["send_id"])) == 1
    run(mail_settings, instance, 7)  # then the sandbox is asked, and it has the email
    [row] = sends(mail_settings).iter_rows(named=True)
    [stored] = mailbox.messages()
    assert (row["status"], row["provider_message_id"]) == ("sent", stored["id"])
    assert len(mailbox.requests(row["send_id"])) == 1  # one mail-send request, ever


def test_a_refused_key_opens_the_circuit_and_every_email_goes_out_once_after_the_fix(
    mail_settings: Settings, mailbox: Mailbox, instance: dg.DagsterInstance
) -> None:
    signups(mail_settings, SHOPPERS[:3])
    run(mail_settings, instance, 5, api_key="wrong-key", circuit_cool_off_s=120.0)
    outbox = sends(mail_settings)
    assert outbox["status"].to_list() == ["retrying"] * 3
    assert outbox["next_attempt_at"].to_list() == [at(7)] * 3  # the cool-off counts from the run's now
    assert len(mailbox.requests()) == 1  # one refused call, then the circuit held the rest
    errors = sorted(outbox["last_error"].to_list())
    assert errors[0].startswith("HTTP 401") and errors[1:] == ["circuit_open", "circuit_open"]
    run(mail_settings, instance, 6, api_key="wrong-key")  # within the cool-off: no call at all
    assert len(mailbox.requests()) == 1
    run(mail_settings, instance, 7)  # cooled off, and the key is fixed
    run(mail_settings, instance, 8)
    outbox = sends(mail_settings)
    assert outbox["status"].to_list() == ["sent"] * 3
    assert sorted(m["custom_args"]["send_id"] for m in mailbox.messages()) == outbox["send_id"].to_list()
    assert [r["status"] for r in mailbox.requests()] == [401, 202, 202, 202]


@pytest.mark.parametrize(
    ("crash_after", "sent_before_retry"),
    [("sends", 0), ("sends:before-status", 2)],
    ids=["after-outbox-commit", "after-http-before-status-commit"],
)
def test_a_run_killed_around_the_http_call_sends_each_email_exactly_once_on_retry(
    mail_settings: Settings,
    mailbox: Mailbox,
    tmp_path: Path,
    crash_after: str,
    sent_before_retry: int,
) -> None:
    signups(mail_settings, SHOPPERS[:2])
    home = make_dagster_home(tmp_path / "dagster_home")
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    argv = [
        *(sys.executable, "-m", "tests.crashing", mail_settings.lake_uri, mail_settings.landing_uri),
        *(crash_after, mailbox.url, at(5).isoformat()),
    ]
    crashed = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, timeout=120)
    assert crashed.returncode == -9, crashed.stderr.decode()[-2000:]
    assert sends(mail_settings)["status"].to_list() == ["pending"] * 2  # committed before any call
    assert len(mailbox.messages()) == sent_before_retry

    with instance_at(home) as instance:
        [killed] = instance.get_run_records()
        instance.report_run_failed(killed.dagster_run)
        run(mail_settings, instance, 5)
        run(mail_settings, instance, 6)
    outbox = sends(mail_settings)
    assert outbox["status"].to_list() == ["sent"] * 2
    received = mailbox.messages()
    assert sorted(m["custom_args"]["send_id"] for m in received) == outbox["send_id"].to_list()
    assert len(mailbox.requests()) == 2  # one mail-send request per email, across both runs
    assert not any((Path(mail_settings.lake_uri) / "_outbox_attempts").iterdir())


def test_an_order_after_the_decision_withdraws_a_waiting_cart_email(
    mail_settings: Settings, mailbox: Mailbox, instance: dg.DagsterInstance
) -> None:
    user = SHOPPERS[0]
    signups(mail_settings, [user])
    run(mail_settings, instance, 5)  # the welcome goes out
    cart = message(
        "Product Added", at(20 * 60), user=user, cart_id="c1", product_id="p1", name="Mug", price=9.5
    )
    land(mail_settings, "cart.ndjson", [orjson.dumps(cart)])
    # A day later the cap has passed; the cart email is decided `send`, but the key is refused.
    run(mail_settings, instance, 20 * 60 + 61, api_key="wrong-key")
    waiting = sends(mail_settings).filter(pl.col("kind") == "abandoned_cart")
    assert waiting["status"].to_list() == ["retrying"]
    order = message("Order Completed", at(20 * 60 + 62), user=user, order_id="o1", cart_id="c1", total=9.5)
    land(mail_settings, "order.ndjson", [orjson.dumps(order)])
    run(mail_settings, instance, 20 * 60 + 63)  # the cool-off (30 s) has passed
    withdrawn = sends(mail_settings).filter(pl.col("kind") == "abandoned_cart").row(0, named=True)
    assert (withdrawn["status"], withdrawn["last_error"]) == ("aborted", "exited: order_completed")
    assert [m["custom_args"]["kind"] for m in mailbox.messages()] == ["welcome"]


def test_a_spec_shaped_buyer_gets_neither_the_cart_nor_the_checkout_email(
    mail_settings: Settings, mailbox: Mailbox, instance: dg.DagsterInstance
) -> None:
    """As Segment's clients send it: `cart_id` on the cart event only; the checkout and the order carry
    `order_id` / `checkout_id`. Three hours later (`lakemail process --now +3h`): both proposed, and
    both exited."""
    user = SHOPPERS[0]
    signups(mail_settings, [user])
    run(mail_settings, instance, 5)  # the welcome goes out; a day later the cap has passed
    product: dict[str, Any] = {"product_id": "p1", "sku": "G-32", "name": "Mug", "price": 9.5, "quantity": 1}
    ids: dict[str, Any] = {"order_id": "o1", "checkout_id": "k1", "currency": "EUR", "products": [product]}
    shopping = [
        spec_message("Product Added", at(20 * 60), user=user, cart_id="c1", **product),
        spec_message("Checkout Started", at(20 * 60 + 5), user=user, value=9.5, **ids),
        spec_message("Order Completed", at(20 * 60 + 9), user=user, total=9.5, revenue=9.5, **ids),
    ]
    land(mail_settings, "spec.ndjson", [orjson.dumps(m) for m in shopping])
    run(mail_settings, instance, 20 * 60 + 3 * 60)
    kinds = ["abandoned_cart", "abandoned_checkout"]
    decisions = table(mail_settings, "triggers").filter(pl.col("kind").is_in(kinds))
    assert set(decisions.select("kind", "decision", "reason").rows()) == {
        ("abandoned_cart", "exited", "order_completed"),
        ("abandoned_checkout", "exited", "order_completed"),
    }
    assert sends(mail_settings)["kind"].to_list() == ["welcome"]
    assert [m["custom_args"]["kind"] for m in mailbox.messages()] == ["welcome"]


def test_an_unsubscribe_since_the_decision_stops_the_email(
    mail_settings: Settings, mailbox: Mailbox, instance: dg.DagsterInstance
) -> None:
    user = SHOPPERS[0]
    signups(mail_settings, [user])
    run(mail_settings, instance, 5, api_key="wrong-key")
    assert sends(mail_settings)["status"].to_list() == ["retrying"]
    gone = message("Unsubscribed", at(6), user=user)
    land(mail_settings, "unsubscribe.ndjson", [orjson.dumps(gone)])
    run(mail_settings, instance, 7)  # the cool-off (30 s) has passed
    [row] = sends(mail_settings).iter_rows(named=True)
    assert (row["status"], row["last_error"]) == ("aborted", "suppressed")
    assert mailbox.messages() == []


def test_a_browser_that_unsubscribed_before_and_logs_in_since_the_decision_stops_the_email(
    mail_settings: Settings, mailbox: Mailbox, instance: dg.DagsterInstance
) -> None:
    """The unsubscribe carried only the browser's anonymous id and nobody claimed it; the shopper logs in
    from that browser after the decision (found by review: the email went out)."""
    user = SHOPPERS[0]
    signups(mail_settings, [user])
    gone = message("Unsubscribed", at(1), anon="a-browser")
    land(mail_settings, "unsubscribe.ndjson", [orjson.dumps(gone)])
    run(mail_settings, instance, 5, api_key="wrong-key")
    assert sends(mail_settings)["status"].to_list() == ["retrying"]
    login = message("identify", at(6), user=user, anon="a-browser")
    land(mail_settings, "login.ndjson", [orjson.dumps(login)])
    run(mail_settings, instance, 7)  # the cool-off (30 s) has passed
    [row] = sends(mail_settings).iter_rows(named=True)
    assert (row["status"], row["last_error"]) == ("aborted", "suppressed")
    assert mailbox.messages() == []


def test_an_unreachable_provider_holds_the_run_instead_of_retrying_every_email(
    settings: Settings, instance: dg.DagsterInstance
) -> None:
    with socket.socket() as probe:  # bound, never listening: refused, and no other process's until the end
        probe.bind(("127.0.0.1", 0))
        closed = replace(settings, esp_url=f"http://127.0.0.1:{probe.getsockname()[1]}")
        signups(closed, SHOPPERS[:3])
        started = time.monotonic()
        result = run(closed, instance, 5, max_attempts=2)
    outbox = sends(closed)
    assert outbox["status"].to_list() == ["retrying"] * 3
    assert sorted(outbox["attempts"].to_list()) == [0, 0, 2]  # one email tried, the rest held
    assert sorted(outbox["last_error"].to_list()) == ["ConnectError", "circuit_open", "circuit_open"]
    assert time.monotonic() - started < 30
    # the log says what happened: nobody refused our credentials (#13, point 13)
    said = [entry.user_message for entry in instance.all_logs(result.run_id)]
    assert any("circuit open: the provider was unreachable" in line for line in said)
    assert not any("refused our credentials" in line for line in said)
