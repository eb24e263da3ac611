"""A CRM row (`customers/`) under a user id an `alias` renamed is the merged shopper's: since 456b477 the old
id's events, cart, consent and address are the new id's and the old id has no profile (the profile API
answers 404), so her CRM row follows her too (found by a helper: it stayed a profile of its own under
u-old, with the address and the loyalty tier, while u-new had neither and her cart email was decided
`no_address`). The `customers` table and the store keep the row under the id the CRM gave it; every reader
(the live store's profiles, the lake's `profiles_view`, the engine from the store and from the lake, the
profile API; `state check` finds the store equal to a rebuilt one) folds it into the shopper: of her CRM
rows the newest stands. Segment-shaped messages and a CRM CSV through the real ingest, on a real lake and
state store."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import polars as pl
import pytest

from stores.profiles import profiles_view
from stores.sends import run_sends
from stores.state.rebuild import check
from stores.state.view import open_profiles
from tests.lake.decide_harness import SECRET, Shop, lake_decides, minutes, sorted_rows
from tests.lake.test_alias_users_store import API_KEY, MUG, START, _added, _alias
from tests.lake.test_checkout_cart_store import profile_api
from tests.story import spec_message
from tests.unit.test_plan import sender_for
from transforms.schema import SENDS_SCHEMA

DAY = 24 * 60
COLUMNS = ("user_id", "email", "first_name", "loyalty_tier", "marketing_consent", "order_count", "cart_value")
# (user_id, email, first_name, loyalty_tier, marketing_consent, order_count, cart_value)
Rows = list[tuple[Any, ...]]


def _crm(*rows: tuple[str, str, str, str, datetime]) -> str:
    """A CRM file: (user_id, email, first_name, loyalty_tier, updated_at) rows, all consenting."""
    lines = "".join(f"{u},{e},{n},{t},true,{at.isoformat()}\n" for u, e, n, t, at in rows)
    return "user_id,email,first_name,loyalty_tier,marketing_consent,updated_at\n" + lines


def _shop(home: Path) -> Shop:
    """A shop with a store (Bob signed up and welcomed days before)."""
    shop = Shop(home)
    bob = spec_message("identify", minutes(START, -3 * DAY), user="u-b", email="bob@example.com")
    shop.batch("b-bob", [bob], minutes(START, -3 * DAY))
    shop.engine(minutes(START, -3 * DAY))
    return shop


def _rows(profiles: pl.DataFrame) -> Rows:
    return profiles.sort("user_id").select(COLUMNS).rows()


def _everywhere(shop: Shop, at: datetime, expected: Rows) -> None:
    """The live store (equal to a rebuilt one: `state check`) and the lake's profiles serve `expected`, and
    the profile API each of them and not the old id."""
    report = check(shop.lake, shop.state)
    assert report.equal, report.summary()
    assert _rows(pl.concat(list(open_profiles(shop.state.store(), at)[1]))) == expected
    assert _rows(profiles_view(shop.lake, at)) == expected
    auth = {"Authorization": f"Bearer {API_KEY}"}
    with profile_api(shop) as client:
        for row in expected:
            served = client.get(f"/v1/profiles/{row[0]}", headers=auth).json()
            assert tuple(served[c] for c in COLUMNS) == row
        assert client.get("/v1/profiles/u-old", headers=auth).status_code == 404


def _renamed_in_the_crm(home: Path) -> Shop:
    """The CRM knows Ann as u-old (address, name, tier, consent); she carts as u-old, and the shop renames
    her u-new."""
    shop = _shop(home)
    ann = ("u-old", "ann@example.com", "Ann", "gold", minutes(START, -2 * DAY))
    renamed = [_added(0, "u-old"), _alias(2, "u-new", "u-old")]
    shop.batch("b0", renamed, minutes(START, 3), customers=_crm(ann))
    return shop


def test_the_old_ids_crm_row_is_the_renamed_shoppers_profile(tmp_path: Path) -> None:
    shop = _renamed_in_the_crm(tmp_path / "shop")
    bob = ("u-b", "bob@example.com", None, None, None, 0, 0.0)
    _everywhere(
        shop, minutes(START, 3), [bob, ("u-new", "ann@example.com", "Ann", "gold", True, 0, MUG["price"])]
    )


def test_the_renamed_shoppers_cart_email_goes_to_the_address_her_old_ids_crm_row_gives(
    tmp_path: Path,
) -> None:
    """An hour after her cart the engine decides her cart email from the store as from the lake, and the
    send stage's re-check mails it to her."""
    shop = _renamed_in_the_crm(tmp_path / "shop")
    due = minutes(START, 61)
    live = sorted_rows(shop.decide(due).rows)
    assert lake_decides(shop, due).equals(live)
    assert live.filter(pl.col("kind") == "abandoned_cart").select("user_id", "decision").rows() == [
        ("u-new", "send")
    ]
    shop.engine(due)
    assert _sent(shop, due) == [("u-new", "sent", "ann@example.com")]


def _sent(shop: Shop, now: datetime) -> list[tuple[str, str, str]]:
    """Run the send stage at `now` against a provider that takes every email: (user, status, address) of
    the cart emails."""
    to: dict[str, str] = {}

    def provider(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":  # the sandbox's look-up: nothing taken before
            return httpx.Response(200, json=[])
        body = orjson.loads(request.content)
        to[body["custom_args"]["kind"]] = body["personalizations"][0]["to"][0]["email"]
        return httpx.Response(202, headers={"X-Message-Id": "m-1"})

    with httpx.Client(transport=httpx.MockTransport(provider)) as client, shop.lake.decide_lock():
        run_sends(shop.lake, shop.state, shop.landing, replace(sender_for(client), secret=SECRET), now=now)
    carts = shop.lake.read("sends", SENDS_SCHEMA).filter(pl.col("kind") == "abandoned_cart")
    return [
        (u, status, to.get("abandoned_cart", ""))
        for u, status in carts.select("user_id", "status").iter_rows()
    ]


@pytest.mark.parametrize("newest", ["u-old", "u-new"])
def test_of_a_renamed_shoppers_crm_rows_the_newest_stands(tmp_path: Path, newest: str) -> None:
    """The CRM has a row under each of Ann's ids (it moved her, or still updates her old id): the one
    updated last is hers, whichever id it is under."""
    shop = _shop(tmp_path / "shop")
    late, early = minutes(START, -1 * DAY), minutes(START, -2 * DAY)
    rows = [
        ("u-old", "ann@old.example", "Ann", "gold", late if newest == "u-old" else early),
        ("u-new", "ann@new.example", "Annie", "silver", late if newest == "u-new" else early),
    ]
    shop.batch(
        "b0", [_added(0, "u-old"), _alias(2, "u-new", "u-old")], minutes(START, 3), customers=_crm(*rows)
    )
    email, name, tier = rows[0][1:4] if newest == "u-old" else rows[1][1:4]
    bob = ("u-b", "bob@example.com", None, None, None, 0, 0.0)
    _everywhere(shop, minutes(START, 3), [bob, ("u-new", email, name, tier, True, 0, MUG["price"])])
