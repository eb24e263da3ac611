"""A user id that reads as a principal (found by review): profile partials, profile state, trigger
candidates and the state store key a shopper by a principal, the user id as itself or `anon:<id>` for an
anonymous shopper, and a user id is any string (Segment's spec), so the user `anon:a-7` was the anonymous
shopper `a-7`: one profile (the shopper's cart and views in the user's profile, the user's address on the
shopper's), the shopper's unsubscribe suppressed the user, and erasing one erased the other. Such a user
is now kept as `user:anon:a-7` (`transforms.principals`): two shoppers, in the lake and in the store, and
the profile API and `lakemail sql` find the user by its own id."""

from __future__ import annotations

from pathlib import Path

import httpx
import polars as pl
import pytest

from orchestration.settings import Settings
from orchestration.sql import run_query
from stores.erasure.requests import erase_user
from stores.state.rebuild import check
from stores.state.view import open_profiles
from tests.lake.test_profile_api import api_app
from tests.lake.test_unsubscribe_anonymous import SECRET, Home, _signup
from tests.profile_shop import headers
from tests.story import at, message
from transforms.profiles.tables import PROFILE_UPDATES_SCHEMA
from transforms.schema import EVENTS_SCHEMA, TRIGGERS_SCHEMA

ANON_ID, USER, CLAIMANT = "a-7", "anon:a-7", "u-claims-a-7"  # USER: the anonymous id's principal as a user id


def _world(home: Home) -> None:
    """The anonymous shopper ANON_ID views and carts p1 and unsubscribes; USER signs up and views p2, and
    the CRM has USER's row and another user's; a batch later the shopper logs in as CLAIMANT (an identify
    with no traits)."""
    home.landing.land("customers/crm.csv", f"user_id,loyalty_tier\n{USER},gold\nu-crm,silver\n".encode())
    home.batch(
        "b1",
        at(2),
        message("Product Viewed", at(0), anon=ANON_ID, product_id="p1"),
        message("Product Added", at(0.5), anon=ANON_ID, cart_id="c-anon", product_id="p1", price=5.0),
        message("Unsubscribed", at(0.7), anon=ANON_ID),
        _signup(USER, at(1)),
        message("Product Viewed", at(1.5), user=USER, product_id="p2"),
    )
    home.engine(at(30))
    home.batch("b2", at(100), message("identify", at(99), user=CLAIMANT, anon=ANON_ID))
    home.engine(at(101))


def _profile(client: httpx.Client, user_id: str) -> dict:
    answer = client.get(f"/v1/profiles/{user_id}", headers=headers())
    assert answer.status_code == 200, (user_id, answer.text)
    return answer.json()


def test_the_user_anon_x_and_the_anonymous_shopper_x_are_two_shoppers(
    tmp_path: Path, settings: Settings
) -> None:
    home = Home(tmp_path)
    _world(home)

    partials = home.lake.read("profile_updates", PROFILE_UPDATES_SCHEMA)
    assert sorted(set(partials["principal"])) == ["anon:a-7", CLAIMANT, "user:anon:a-7"]
    assert sorted(k for k, _ in home.state.store().scan("profiles")) == [CLAIMANT, "user:anon:a-7"]
    with api_app(settings, home.state) as client:
        user, claimant = _profile(client, USER), _profile(client, CLAIMANT)
    assert (user["user_id"], user["email"], user["loyalty_tier"], user["cart_id"], user["recent_views"]) == (
        USER,
        "anon:a-7@example.com",
        "gold",
        None,
        ["p2"],
    )
    assert (claimant["email"], claimant["cart_id"], claimant["recent_views"]) == (None, "c-anon", ["p1"])
    sql = "SELECT user_id, email, loyalty_tier, cart_id FROM profiles ORDER BY user_id"
    rows = run_query(home.lake.uri, sql, state_uri=str(tmp_path / "state"), now=at(102)).rows()
    expected = [(USER, "anon:a-7@example.com", "gold", None), (CLAIMANT, None, None, "c-anon")]
    assert rows == [*expected, ("u-crm", None, "silver", None)]
    # One profile row per user however the store's keys fall in ranges (`user:anon:a-7`, CRM `anon:a-7`).
    _, chunks = open_profiles(home.state.store(), at(102), size=1)
    ranged = pl.concat(chunks).sort("user_id").select("user_id", "email", "loyalty_tier", "cart_id").rows()
    assert ranged == rows

    log = home.lake.read("triggers", TRIGGERS_SCHEMA).sort("decided_at", "kind")
    decided = log.select("kind", "principal", "user_id", "anchor", "decision").rows()
    # The user's welcome is theirs and goes out (the shopper's unsubscribe is not the user's); the
    # shopper's cart is no email of the user's: it waits as the shopper's, then is the claimant's.
    assert decided == [
        ("abandoned_cart", "anon:a-7", None, "c-anon", "held"),
        ("welcome", "user:anon:a-7", USER, None, "send"),
        ("abandoned_cart", CLAIMANT, CLAIMANT, "c-anon", "no_address"),
    ]
    assert check(home.lake, home.state).equal


def _footprint(home: Home, principal: str, events: pl.Expr, store: dict[str, list[str]]) -> dict:
    """What the lake and the store hold of one shopper: `events`, the partials and decisions under
    `principal`, the `store` entries (namespace -> keys)."""
    lake, held = home.lake, home.state.store()
    under = pl.col("principal") == principal
    return {
        "events": sorted(lake.read("events", EVENTS_SCHEMA).filter(events)["event_id"]),
        "partials": lake.read("profile_updates", PROFILE_UPDATES_SCHEMA)
        .filter(under)
        .sort("batch_id")
        .rows(),
        "triggers": sorted(lake.read("triggers", TRIGGERS_SCHEMA).filter(under)["trigger_id"]),
        "store": {ns: held.get_many(ns, keys) for ns, keys in store.items()},
    }


def _user(home: Home) -> dict:
    store = {"profiles": ["user:anon:a-7"], "recent_sends": [USER], "identity_links": [f"user:{USER}"]}
    return _footprint(home, "user:anon:a-7", pl.col("user_id") == USER, store)


def _shopper(home: Home) -> dict:
    """The anonymous shopper's rows (under `anon:a-7`), and the claimant's that hold them now."""
    events = (pl.col("anonymous_id") == ANON_ID) | (pl.col("user_id") == CLAIMANT)
    store = {"profiles": [CLAIMANT], "identity_links": ["anon:a-7", f"user:{CLAIMANT}"]}
    return {
        "anonymous": _footprint(home, "anon:a-7", events, store),
        **_footprint(home, CLAIMANT, events, {}),
    }


@pytest.mark.parametrize("erased", [USER, CLAIMANT])
def test_erasing_the_user_anon_x_or_the_claimant_of_x_keeps_the_other(
    tmp_path: Path, settings: Settings, erased: str
) -> None:
    home = Home(tmp_path)
    _world(home)
    kept = _shopper if erased == USER else _user
    before = kept(home)
    assert before["events"] and (before.get("anonymous") or before)["partials"]

    certificate = erase_user(home.lake, home.landing, erased, secret=SECRET, state=home.state)

    assert certificate.passed
    assert kept(home) == before  # the other shopper's events, partials, decisions and store entries
    gone = _user(home) if erased == USER else _footprint(home, CLAIMANT, pl.col("user_id") == CLAIMANT, {})
    assert (gone["events"], gone["partials"], gone["triggers"]) == ([], [], [])
    assert check(home.lake, home.state).equal  # the store is what a rebuild from the erased lake makes
    other = CLAIMANT if erased == USER else USER
    with api_app(settings, home.state) as client:
        assert client.get(f"/v1/profiles/{erased}", headers=headers()).status_code == 404
        assert _profile(client, other)["user_id"] == other
