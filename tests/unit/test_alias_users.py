"""Segment's `alias` merges two identities: its `previousId` is the shopper's old id, an anonymous id or a
user id the shop identified them with before (a renamed user, two accounts merged; Segment's spec/alias.md),
its `userId` the one they go by now (found by review: a previous *user* id was only stitched as an
anonymous id, so the renamed shopper was two: the old id's cart, consent, address and sends apart from the
new id's orders). A user an alias names as its previous id is claimed by its first alias (as an anonymous
id by its first edge), and claims follow on: a user renamed twice, and the anonymous ids a renamed user
claimed, resolve to the latest name. Golden stories in the spec's shapes (the pure engine)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import polars as pl
import pytest

from tests.story import Shop, at, spec_message
from transforms.profiles.merge import principal_claims
from transforms.schema import IDENTITIES_SCHEMA

MUG: dict[str, Any] = {"product_id": "p-mug", "sku": "M-1", "name": "Mug", "price": 12.5, "quantity": 2}
ORDER: dict[str, Any] = {
    "order_id": "o-1",
    "total": 25.0,
    "revenue": 25.0,
    "currency": "EUR",
    "products": [MUG],
}
DAY = 24 * 60
START = DAY  # the cart, a day after the welcome (the 16 h cap)


def _signed_up() -> Shop:
    shop = Shop()
    traits: dict[str, Any] = {
        "email": "ann@example.com",
        "marketing_consent": True,
        "timezone": "Europe/London",
    }
    shop.land(spec_message("identify", at(0), user="u-old", first_name="Ann", **traits))
    shop.run(at(1))  # the welcome goes out to u-old
    return shop


def _alias(minutes: float, user: str = "u-new", previous: str = "u-old") -> dict:
    return spec_message("alias", at(minutes), user=user, previous_id=previous)


@pytest.mark.story  # many engine runs: `make test` runs it, the fast tier leaves it
@pytest.mark.parametrize(
    ("alias_at", "cart"),
    [
        (START + 1, {}),  # renamed between the cart and the order (the implicit cart)
        (START + 1, {"cart_id": "cart-1"}),
        (START - 5, {}),  # renamed before: the old id still fills the cart (an app not yet updated)
        (START + 3, {"cart_id": "cart-1"}),  # the alias after the order, landing before the cart is due
    ],
)
def test_a_user_renamed_between_cart_and_order_gets_no_cart_email_and_is_one_shopper(
    alias_at: float, cart: dict[str, Any]
) -> None:
    shop = _signed_up()
    shop.land(spec_message("Product Added", at(START), user="u-old", **cart, **MUG))
    shop.run(at(START + 1))
    ordered = spec_message("Order Completed", at(START + 2), user="u-new", **cart, **ORDER)
    shop.land(_alias(alias_at), ordered)
    for minutes in (START + 4, START + 61, START + 90, START + 2 * DAY):
        shop.run(at(minutes))

    assert {d for d in shop.decisions() if d[2] == "send"} == {("welcome", "u-old", "send")}
    cart_rows = shop.log.filter(pl.col("kind") == "abandoned_cart")
    assert set(cart_rows["decision"]) <= {"held", "exited"}, cart_rows
    state = shop.state()
    assert state["principal"].to_list() == ["u-new"]
    [profile] = shop.world(at(START + 90)).profiles.to_dicts()
    assert (profile["user_id"], profile["email"], profile["first_name"]) == (
        "u-new",
        "ann@example.com",
        "Ann",
    )
    assert (profile["marketing_consent"], profile["order_count"], profile["cart_items"]) == (True, 1, [])


@pytest.mark.story
def test_a_renamed_users_welcome_counts_for_the_frequency_cap_and_is_not_sent_again() -> None:
    """Ann is welcomed as u-old, renamed u-new and carts as u-new: her cart email falls within 16 h of the
    welcome (capped), and u-new is not welcomed again."""
    shop = _signed_up()
    shop.land(_alias(5), spec_message("Product Added", at(10), user="u-new", **MUG))
    for minutes in (11, 71, 100):
        shop.run(at(minutes))
    assert shop.decisions() == {("welcome", "u-old", "send"), ("abandoned_cart", "u-new", "capped")}


def _edges(*rows: tuple[str, str, float, float | None]) -> pl.DataFrame:
    """identities rows (anonymous_id, user_id, first_seen_at, aliased_at) at minutes after T0."""

    def moment(minutes: float | None) -> datetime | None:
        return None if minutes is None else at(minutes).astimezone(UTC)

    frame = [(a, u, moment(seen), moment(aliased)) for a, u, seen, aliased in rows]
    return pl.DataFrame(frame, schema=IDENTITIES_SCHEMA, orient="row")


def _claims(identities: pl.DataFrame) -> dict[str, str]:
    return dict(principal_claims(identities).select("principal", "_to").iter_rows())


@pytest.mark.parametrize(
    ("edges", "expected"),
    [
        # renamed twice, in either order of the edges; the anonymous id u1 claimed follows
        (
            [("a1", "u1", 0, None), ("u1", "u2", 5, 5), ("u2", "u3", 9, 9)],
            {"anon:a1": "u3", "anon:u1": "u3", "u1": "u3", "anon:u2": "u3", "u2": "u3"},
        ),
        # the first alias of a previous id claims it (ties: the smaller user id), as for anonymous ids
        ([("u1", "u3", 7, 7), ("u1", "u2", 3, 3)], {"anon:u1": "u2", "u1": "u2"}),
        ([("u1", "u3", 3, 3), ("u1", "u2", 3, 3)], {"anon:u1": "u2", "u1": "u2"}),
        # renamed and renamed back: the name given last
        ([("u1", "u2", 1, 1), ("u2", "u1", 8, 8)], {"anon:u1": "u1", "anon:u2": "u1", "u2": "u1"}),
        # an identify that named a user id as its anonymous id merges no user; a self alias nothing
        (
            [("u1", "u2", 1, None), ("u3", "u3", 2, 2), ("u4", "u2", 4, 4)],
            {"anon:u1": "u2", "anon:u3": "u3", "anon:u4": "u2", "u4": "u2"},
        ),
        # an edge first seen in an identify and aliased later claims the user from the alias on
        ([("u1", "u2", 1, 6), ("u1", "u3", 3, 3)], {"anon:u1": "u2", "u1": "u3"}),
        # a user id shaped like an anonymous principal is a user (transforms.principals)
        ([("anon:x", "u2", 1, 1)], {"anon:anon:x": "u2", "user:anon:x": "u2"}),
    ],
)
def test_previous_user_ids_resolve_to_the_user_their_aliases_name_last(
    edges: list[tuple[str, str, float, float | None]], expected: dict[str, str]
) -> None:
    assert _claims(_edges(*edges)) == expected
    assert _claims(_edges(*reversed(edges))) == expected
