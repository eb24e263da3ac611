"""Bounces and spam complaints suppress (PRODUCT.md section 6: "bounces and unsubscribes -> suppressions";
found by a code review, 2026-12-05: nothing wrote `hard_bounce` or `complaint`, so a bounced address was
mailed again by every later trigger). They arrive as the Segment Email spec's `Email Bounced` and
`Email Marked as Spam` events: a row under the address they name, else under the user."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import polars as pl
import pytest

from stores.decide import reads
from stores.state.sync import ready
from tests.lake.test_state_live import ingest_namespaces_equal
from tests.lake.test_state_sync import Crash, CrashingLake
from tests.lake.test_unsubscribe_anonymous import SECRET, Home, _cart, _signup
from tests.story import at, message
from transforms.erasure.records import address_key, user_key
from transforms.schema import SUPPRESSIONS_SCHEMA


def _rows(home: Home) -> list[tuple[str, str]]:
    table = home.lake.read("suppressions", SUPPRESSIONS_SCHEMA).sort("user_key", "reason")
    return table.select("user_key", "reason").rows()


def test_a_hard_bounce_suppresses_the_address_and_the_next_email_is_not_sent(tmp_path: Path) -> None:
    """The provider's relay lands the bounce with the address only (Segment's Email spec puts it in
    `context.traits`): the shopper's cart email after it is `suppressed`, by the lake and the store."""
    home = Home(tmp_path)
    home.batch("0", at(-10), _signup("u-b", at(-10)))
    bounce = message("Email Bounced", at(0), email_id="s-1", email_subject="Welcome")
    bounce["context"] = {"traits": {"email": " U-B@Example.com "}}
    bounce["anonymousId"] = "relay"
    home.batch("1", at(2), bounce, _cart("u-b", at(1)))
    assert _rows(home) == [(address_key("u-b@example.com", SECRET), "hard_bounce")]
    profiles = pl.DataFrame({"user_id": ["u-b", "u-o"], "email": ["u-b@example.com", "o@example.com"]})
    with home.state.reader() as reader:  # the store, as the engine and the sender ask it
        assert reads.suppressed_users(reader, profiles, SECRET) == {"u-b"}
    home.engine(at(1 + 61))
    assert ("abandoned_cart", "suppressed") in home.decisions("u-b")
    assert ingest_namespaces_equal(home.lake, home.state) == {}


def test_a_complaint_without_an_address_suppresses_the_user_and_a_soft_bounce_no_one(tmp_path: Path) -> None:
    home = Home(tmp_path)
    complaint = message("Email Marked as Spam", at(0), user="u-c", email_id="s-2")
    soft = message("Email Bounced", at(0), user="u-s", email="s@example.com", bounce_type="Soft")
    transient = message("Email Bounced", at(0), user="u-t", bounce_type="transient")
    nobody = message("Email Bounced", at(0), anon="a-x")  # no address, no user: nobody to suppress
    home.batch("1", at(1), complaint, soft, transient, nobody)
    assert _rows(home) == [(user_key("u-c", SECRET), "complaint")]
    assert home.store_suppresses("u-c", "u-s", "u-t") == {"u-c"}
    assert ingest_namespaces_equal(home.lake, home.state) == {}


@pytest.mark.parametrize("crash", [True, False])
def test_a_store_caught_up_past_a_bounce_suppresses_the_user(tmp_path: Path, crash: bool) -> None:
    """The bounce's batch also links an identity (its catch-up took only unsubscribes then): its store
    commit lost after the `ingest_log` commit, the catch-up from the lake has the bounce too."""
    home = Home(tmp_path)
    home.batch("1", at(1), _signup("u-d", at(0)))
    lines = (_signup("u-d", at(10), anon="a-d"), message("Email Bounced", at(10), user="u-d"))
    if crash:
        with pytest.raises(Crash):
            home.batch("2", at(11), *lines, lake=CrashingLake(uri=home.lake.uri, after="ingest_log"))
        assert ready(home.lake, home.state).action == "caught up 1"
    else:
        home.batch("2", at(11), *lines)
    assert home.store_suppresses("u-d") == {"u-d"}
    assert ingest_namespaces_equal(home.lake, home.state) == {}


@pytest.mark.parametrize("recipient", [{"user": "019mr8mf4r"}, {"anon": "relay"}])
def test_an_unsubscribe_naming_the_recipients_address_suppresses_the_address(
    tmp_path: Path, recipient: dict[str, str]
) -> None:
    """The Segment Email spec's `Unsubscribed` (an email tool's, or a relay's) names the recipient in
    `context.traits.email` under the tool's own id for them, not the shop's user id (found by review: it
    suppressed only that id, and the shopper's next cart email was sent)."""
    home = Home(tmp_path)
    signed_up = at(-3 * 24 * 60)  # the welcome email out of the way of the frequency cap
    home.batch("0", signed_up, _signup("u-e", signed_up))
    home.engine(signed_up + timedelta(minutes=1))
    unsubscribe = message(
        "Unsubscribed", at(0), email_id="18vzF7u3z", email_subject="Your cart", list_id="1425", **recipient
    )
    unsubscribe["context"] = {"ip": "67.207.109.102", "traits": {"email": "U-E@example.com "}}
    home.batch("1", at(2), unsubscribe, _cart("u-e", at(1)))
    assert (address_key("u-e@example.com", SECRET), "unsubscribed") in _rows(home)
    profiles = pl.DataFrame({"user_id": ["u-e", "u-o"], "email": ["u-e@example.com", "o@example.com"]})
    with home.state.reader() as reader:  # the store, as the engine and the sender ask it
        assert reads.suppressed_users(reader, profiles, SECRET) == {"u-e"}
    home.engine(at(1 + 61))
    assert home.decisions("u-e") == [("welcome", "send"), ("abandoned_cart", "suppressed")]
    assert ingest_namespaces_equal(home.lake, home.state) == {}
