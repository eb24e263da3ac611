"""An `unknown` send is sent again where the provider dedupes on its idempotency key (found by review 23b:
PRODUCT.md section 6 says an ambiguous timeout is not blindly repeated "for providers without idempotency
keys"; the webhook sends `Idempotency-Key: <send_id>`, yet its `unknown` sends were never due again).
A provider without keys (Postmark, SendGrid) still never repeats one."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest

from resources.providers import EmailProvider, PostmarkProvider, WebhookProvider
from stores.sends import next_attempt, run_sends
from tests.lake.test_unsubscribe_anonymous import SECRET, Home, _signup
from tests.story import at
from tests.unit.test_plan import SHOP, due, sender_for, world
from transforms.schema import SENDS_SCHEMA
from transforms.sends.plan import Planned, Render, Stop, decided_row, plan_row
from transforms.sends.policy import Verdict, classify_response
from transforms.sends.rows import MAX_RESEND_ATTEMPTS, Waits

Answer = Callable[[httpx.Request], httpx.Response]
HOOK = WebhookProvider("https://hooks.example/send", "k")


def timed_out(request: httpx.Request) -> httpx.Response:
    raise httpx.ReadTimeout("timed out", request=request)


class Receiver:
    """A provider stub: what it was sent (the Idempotency-Key of each request), answering by `script`."""

    def __init__(self, *script: Answer) -> None:
        self.script = list(script)  # the last answer repeats
        self.keys: list[str | None] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.keys.append(request.headers.get("Idempotency-Key"))
        answer = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        return answer(request)


def signed_up(tmp_path: Path) -> Home:
    """One shopper whose welcome the engine decided to send at T0 + 1 min."""
    home = Home(tmp_path)
    home.batch("0", at(0), _signup("u-1", at(0)))
    home.engine(at(1))
    assert home.decisions("u-1") == [("welcome", "send")]
    return home


def send_run(home: Home, provider: EmailProvider, receiver: Receiver, now: datetime) -> dict:
    with httpx.Client(transport=httpx.MockTransport(receiver)) as client, home.lake.decide_lock():
        sender = replace(sender_for(client, sleep=lambda s: None), provider=provider, secret=SECRET)
        run_sends(home.lake, home.state, home.landing, sender, now=now)
    [row] = home.lake.read("sends", SENDS_SCHEMA).to_dicts()
    return row


def test_an_unknown_webhook_send_is_sent_again_with_its_key_after_the_retry_backoff(tmp_path: Path) -> None:
    home = signed_up(tmp_path)
    receiver = Receiver(timed_out, lambda r: httpx.Response(200, json={"id": "hook-1"}))
    row = send_run(home, HOOK, receiver, at(1))
    assert (row["status"], row["last_error"], row["attempts"]) == ("unknown", "ReadTimeout", 1)
    assert row["next_attempt_at"] == at(1) + timedelta(seconds=15)  # FIRST_RETRY, as for `retrying`
    assert next_attempt(home.lake) == row["next_attempt_at"]  # the sensor starts the run for it
    assert send_run(home, HOOK, receiver, at(1.2))["status"] == "unknown"  # not due yet: no call
    row = send_run(home, HOOK, receiver, at(1.25))
    assert (row["status"], row["provider_message_id"], row["attempts"]) == ("sent", "hook-1", 2)
    assert receiver.keys == [row["send_id"]] * 2  # the same key: the receiver takes it as the first


def test_a_webhook_that_never_answers_is_sent_again_a_bounded_number_of_times(tmp_path: Path) -> None:
    """The waits double as for `retrying` (15 s, 30 s, ... 15 min); then the row stays `unknown`."""
    home = signed_up(tmp_path)
    receiver = Receiver(timed_out)
    now, waits = at(1), []
    row = send_run(home, HOOK, receiver, now)
    while row["next_attempt_at"] is not None:
        waits.append(row["next_attempt_at"] - now)
        now = row["next_attempt_at"]
        row = send_run(home, HOOK, receiver, now)
    assert (row["status"], row["attempts"]) == ("unknown", MAX_RESEND_ATTEMPTS)
    assert len(receiver.keys) == MAX_RESEND_ATTEMPTS and set(receiver.keys) == {row["send_id"]}
    assert waits[:3] == [timedelta(seconds=s) for s in (15, 30, 60)] and max(waits) == timedelta(minutes=15)
    assert next_attempt(home.lake) is None


@pytest.mark.parametrize(
    ("answer", "status", "due_again"),
    [
        (lambda r: httpx.Response(409, json={"error": "in progress"}), "unknown", True),
        (lambda r: httpx.Response(503), "unknown", True),
        # a receiver that will not take the key again with a body rendered anew (the draft's 422)
        (lambda r: httpx.Response(422, json={"error": "key reused"}), "unknown", False),
    ],
)
def test_a_resend_that_is_not_taken_leaves_the_send_unknown(
    tmp_path: Path, answer: Answer, status: str, due_again: bool
) -> None:
    """The first may have gone: only a yes settles it; a refusal ends the resends."""
    home = signed_up(tmp_path)
    receiver = Receiver(timed_out, answer)
    first = send_run(home, HOOK, receiver, at(1))
    row = send_run(home, HOOK, receiver, first["next_attempt_at"])
    assert row["status"] == status and (row["next_attempt_at"] is not None) == due_again


def test_a_provider_without_keys_never_repeats_an_unknown_send(tmp_path: Path) -> None:
    home = signed_up(tmp_path)
    receiver = Receiver(timed_out)
    row = send_run(home, PostmarkProvider("tok", "https://pm.test"), receiver, at(1))
    assert (row["status"], row["next_attempt_at"]) == ("unknown", None)
    send_run(home, PostmarkProvider("tok", "https://pm.test"), receiver, at(60 * 24))
    assert len(receiver.keys) == 1 and next_attempt(home.lake) is None


def test_an_unknown_send_that_may_no_longer_go_stays_unknown_and_is_not_sent_again() -> None:
    """A suppression (an exit, expiry) since the timeout: no resend, and not `aborted` (it may have gone)."""
    row = due(status="unknown", attempts=1, last_error="ReadTimeout")

    def plan(**facts: object) -> object:
        return plan_row(
            row,
            world(**facts),
            now=at(0),
            shop=SHOP,
            staleness=timedelta(days=2),
            can_lookup=False,
            resends=True,
        )

    assert isinstance(plan(), Render)
    stop = plan(aborts={"t-1": "suppressed"})
    assert stop == Stop("suppressed")
    after = decided_row(Planned(row, stop), now=at(0), waits=Waits(lookup_after=None, resend_unknown=True))
    assert (after["status"], after["last_error"], after["next_attempt_at"]) == (
        "unknown",
        "not sent again: suppressed",
        None,
    )


def test_a_409_is_unknown_only_to_a_request_with_an_idempotency_key() -> None:
    assert classify_response(409, b"{}", idempotent=True) is Verdict.UNKNOWN
    assert classify_response(409, b"{}") is Verdict.PERMANENT
