"""transforms.profiles.one.derive_one gives exactly the row transforms.profiles.derive.derive gives (#16)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from transforms.profiles.derive import derive
from transforms.profiles.one import SEQUENTIAL_SUM, derive_one
from transforms.profiles.state import IMPLICIT_CART, PARTIAL_SCHEMA, STATED
from transforms.schema import CUSTOMERS_SCHEMA
from transforms.state import decode

BASE = 1_780_000_000_000_000  # 2026-05-28, in microseconds
times = st.one_of(
    st.none(), st.sampled_from([BASE, BASE + 1, BASE + 3_600_000_000]), st.integers(BASE, BASE + 10**12)
)
names = st.one_of(st.none(), st.sampled_from(["a", "b", "C", "dé"]))
cents = st.one_of(st.none(), st.integers(0, 100_000).map(lambda c: c / 100))
counts = st.one_of(st.none(), st.integers(0, 4))
cart_ids = st.one_of(names, st.sampled_from(["c1", "c2"]))
currencies = st.sampled_from([None, "EUR", "USD"])  # an order naming a cart: its latest order


def _unique(rows: list[dict[str, Any]], *keys: str) -> list[dict[str, Any]]:
    seen, kept = set(), []
    for row in rows:
        if (key := tuple(row[k] for k in keys)) not in seen:
            seen.add(key)
            kept.append(row)
    return kept


lines = st.lists(
    st.fixed_dictionaries(
        {"cart_id": st.sampled_from(["c1", "c2", IMPLICIT_CART, None]),
         "product_id": st.sampled_from(["p1", "p2", "p3", None]),
         "name": names, "category": names, "price": cents, "image_url": names, "url": names,
         "added": counts, "removed": counts, "last_ts": times}
    ),
    max_size=8,
).map(lambda rows: _unique(rows, "cart_id", "product_id"))  # fmt: skip
move_units = st.integers(-3, 4)


@st.composite
def lines_and_moves(draw: st.DrawFn) -> tuple[list[dict[str, Any]] | None, list[dict[str, Any]] | None]:
    """A state's `lines` and `moves` (MOVE_STATE): a few moves of most lines, some of no line; a line's units
    that no move accounts for are its own (a line folded before moves existed)."""
    drawn = draw(st.one_of(st.none(), lines))
    moves = [
        {
            "cart_id": line["cart_id"],
            "product_id": line["product_id"],
            "ts": draw(times),
            "units": draw(move_units),
        }
        for line in drawn or ()
        for _ in range(draw(st.integers(0, 3)))
    ]
    stray = {"cart_id": st.sampled_from(["c1", IMPLICIT_CART]), "product_id": st.sampled_from(["p1", None])}
    moves += draw(st.lists(st.fixed_dictionaries({**stray, "ts": times, "units": move_units}), max_size=2))
    return drawn, draw(st.one_of(st.none(), st.just(moves)))


carts = st.lists(
    st.fixed_dictionaries(
        {"cart_id": st.sampled_from(["c1", "c2", "c3", IMPLICIT_CART, None]), "changed_at": times,
         "checkout_at": times, "ordered_at": st.one_of(st.none(), times)}
    ),
    max_size=4,
).map(lambda rows: _unique(rows, "cart_id"))  # fmt: skip
checkouts = st.lists(
    st.fixed_dictionaries(
        {
            "checkout_key": names,
            "checkout_id": names,
            "order_id": names,
            "cart_id": cart_ids,  # a cart named: an order of its checkout_id or order_id is the cart's
            "started_at": times,
        }
    ),
    max_size=3,
)
# The ids of checkouts naming a cart (CART_CHECKOUT_STATE): an order naming no cart but one of them ends it.
linked = st.sampled_from([None, "a", "b"])  # ids the orders name too (`names`)
cart_checkouts = st.lists(
    st.fixed_dictionaries(
        {"cart_id": st.sampled_from(["c1", "c2", "c3", IMPLICIT_CART, None]), "checkout_id": linked,
         "order_id": linked}
    ),
    max_size=4,
)  # fmt: skip
# The products of checkouts (CHECKOUT_LINE_STATE): of the carts, of no cart (the open one's), several per cart
# (only each cart's latest counts), some without a time or a message id.
checkout_lines = st.lists(
    st.fixed_dictionaries(
        {"cart_id": st.sampled_from(["c1", "c2", IMPLICIT_CART, None]),
         "product_id": st.sampled_from(["p1", "p2", "p3"]),
         "started_at": st.one_of(st.none(), st.sampled_from([BASE, BASE + 1, BASE + 3_600_000_000]), times),
         "checkout": st.sampled_from(["m1", "m2", None]), "units": st.one_of(st.none(), st.integers(0, 3))}
    ),
    max_size=6,
)  # fmt: skip
orders = st.lists(
    st.fixed_dictionaries(
        {"order_id": names, "cart_id": cart_ids, "checkout_id": names, "revenue": cents, "ordered_at": times,
         "products": st.one_of(st.none(), st.lists(st.sampled_from(["p1", "p2", "p4", None]), max_size=3)),
         "categories": st.none(), "currency": currencies}
    ),
    max_size=5,
)  # fmt: skip
# Refunds of those orders (by their ids: `names`), whole, partial, cancellations, in their currency or not.
refunds = st.lists(
    st.fixed_dictionaries(
        {"order_id": names, "refund_id": names, "cancelled": st.one_of(st.none(), st.booleans()),
         "amount": cents, "currency": currencies, "refunded_at": times}
    ),
    max_size=5,
)  # fmt: skip
views = st.lists(st.fixed_dictionaries({"ts": times, "product_id": names, "category": names}), max_size=14)
searches = st.lists(st.fixed_dictionaries({"ts": times, "query": names}), max_size=12)
categories = st.lists(st.fixed_dictionaries({"category": names, "n": counts}), max_size=4).map(
    lambda rows: _unique(rows, "category")
)
consents = st.one_of(names, st.sampled_from(["true", "TRUE", "1", "yes", "no", "false"]))


def _state(cart_lines: tuple[list[dict[str, Any]] | None, list[dict[str, Any]] | None]) -> st.SearchStrategy:
    return st.fixed_dictionaries(
        {
            "first_ts": times,
            "last_ts": times,
            **{
                k: v
                for t in STATED
                for k, v in ((t, consents if "consent" in t else names), (f"{t}_ts", times))
            },
            "identified_at": times,
            "unsubscribed_at": times,
            "lines": st.just(cart_lines[0]),
            "moves": st.just(cart_lines[1]),
            "carts": carts,
            "checkouts": checkouts,
            "checkout_lines": st.one_of(st.none(), checkout_lines),
            "cart_checkouts": st.one_of(st.none(), cart_checkouts),
            "orders": orders,
            "refunds": st.one_of(st.none(), refunds),
            "views": views,
            "searches": searches,
            "categories": categories,
            "engagement": st.one_of(st.none(), st.floats(300, 340)),
        }
    )


states = lines_and_moves().flatmap(_state)
crms = st.fixed_dictionaries(
    {"email": names, "first_name": names, "locale": names, "timezone": names, "loyalty_tier": names,
     "marketing_consent": st.one_of(st.none(), st.booleans()), "updated_at": times}
)  # fmt: skip


def _polars_row(state: dict[str, Any] | None, crm: dict[str, Any] | None, as_of: datetime) -> dict[str, Any]:
    """derive's row for `u1`, from the values as the store holds them (JSON of the wire form)."""
    values = [orjson.dumps({"principal": "u1", **state})] if state is not None else []
    partial = decode(values, PARTIAL_SCHEMA) if values else pl.DataFrame(schema=PARTIAL_SCHEMA)
    rows = [orjson.dumps({"user_id": "u1", **crm})] if crm is not None else []
    customers = decode(rows, CUSTOMERS_SCHEMA) if rows else pl.DataFrame(schema=CUSTOMERS_SCHEMA)
    (row,) = derive(partial, customers, as_of).iter_rows(named=True)
    return row


@pytest.mark.deep
@settings(max_examples=200, deadline=None)  # 300 took 14-23 s on CI
@given(
    state=st.one_of(st.none(), states),
    crm=st.one_of(st.none(), crms),
    later=st.integers(0, 10**12),
)
def test_derive_one_is_derive(state: dict[str, Any] | None, crm: dict[str, Any] | None, later: int) -> None:
    if state is None and crm is None:
        crm = {"email": "x@example.com"}
    as_of = datetime(2026, 5, 28, tzinfo=UTC) + timedelta(microseconds=later)
    wire = {"principal": "u1", **state} if state is not None else None
    mine = derive_one("u1", orjson.loads(orjson.dumps(wire)), orjson.loads(orjson.dumps(crm)), as_of)
    assert mine == _polars_row(state, crm, as_of)
    assert list(mine or {}) == list(_polars_row(state, crm, as_of))


moments = st.sampled_from([None, BASE, BASE + 1, BASE + 3_600_000_000])
linked_carts = st.lists(
    st.fixed_dictionaries(
        {"cart_id": st.sampled_from(["c1", "c2", IMPLICIT_CART]),
         "changed_at": st.sampled_from([BASE, BASE + 1]), "checkout_at": moments,
         "ordered_at": st.one_of(st.none(), moments)}
    ),
    max_size=3,
).map(lambda rows: _unique(rows, "cart_id"))  # fmt: skip
links = st.lists(
    st.fixed_dictionaries(
        {"cart_id": st.sampled_from(["c1", "c2"]), "checkout_id": linked, "order_id": linked}
    ),
    min_size=1,
    max_size=3,
)
unnamed_orders = st.lists(
    st.fixed_dictionaries(
        {"order_id": linked, "cart_id": st.sampled_from([None, None, "c2"]), "checkout_id": linked,
         "revenue": cents, "ordered_at": moments}
    ),
    min_size=1,
    max_size=3,
)  # fmt: skip


@st.composite
def checkout_orders(draw: st.DrawFn) -> dict[str, Any]:
    """A state whose orders mostly name no cart but a checkout's or an order's id that checkouts naming the
    state's carts named (`cart_checkouts`; `checkouts`, keyed by the cart), at moments either side of the
    carts' changes and orders."""
    named = draw(links)
    kept = draw(st.lists(st.sampled_from(named)))
    return draw(states) | {
        "carts": draw(linked_carts),
        "cart_checkouts": draw(st.sampled_from([None, named, named])),
        "checkouts": [{"checkout_key": c["cart_id"], **c, "started_at": BASE} for c in kept],
        "orders": draw(unnamed_orders),
    }


@pytest.mark.deep
@settings(max_examples=150, deadline=None)
@given(state=checkout_orders(), later=st.integers(0, 10**12))
def test_derive_one_is_derive_for_orders_naming_a_checkout(state: dict[str, Any], later: int) -> None:
    as_of = datetime(2026, 5, 28, tzinfo=UTC) + timedelta(microseconds=later)
    mine = derive_one("u1", orjson.loads(orjson.dumps({"principal": "u1", **state})), None, as_of)
    assert mine == _polars_row(state, None, as_of)


def test_many_orders_are_left_to_derive() -> None:
    orders = [{"order_id": str(n), "revenue": 0.1, "ordered_at": BASE} for n in range(SEQUENTIAL_SUM)]
    assert derive_one("u1", {"orders": orders}, None, datetime(2026, 6, 1, tzinfo=UTC)) is None
    assert derive_one("u1", {"orders": orders[1:]}, None, datetime(2026, 6, 1, tzinfo=UTC)) is not None


def test_recent_views_and_searches_are_the_newest_whatever_the_lists_order() -> None:
    # A stored state's lists are in canonical (ascending) order: the first ten were the OLDEST.
    views = [{"ts": BASE + i, "product_id": f"p{i:02d}", "category": None} for i in range(12)]
    views += [{"ts": BASE + 5, "product_id": None, "category": "c"}, {"ts": BASE + 3, "product_id": "p11"}]
    searches = [{"ts": BASE + i, "query": f"q{i:02d}"} for i in range(12)]
    newest = ([f"p{i:02d}" for i in range(11, 1, -1)], [f"q{i:02d}" for i in range(11, 1, -1)])
    as_of = datetime(2026, 5, 29, tzinfo=UTC)
    for order in (list, lambda rows: rows[::-1]):
        state = {"last_ts": BASE, "views": order(views), "searches": order(searches)}
        for row in (_polars_row(state, None, as_of), derive_one("u1", state, None, as_of)):
            assert row is not None and (row["recent_views"], row["recent_searches"]) == newest


@pytest.mark.parametrize(
    ("prices", "revenues"),
    [([1e308], [1e308, 1e308]), ([1e308, -1e308], [-1e308, 5.0, -1e308]), ([1.7976931348623157e308], [])],
)
def test_a_cart_or_orders_worth_more_than_a_double_holds_give_derives_row(
    prices: list[float], revenues: list[float]
) -> None:
    """Anyone holding the public write key can add two of a product at a price of 1e308 (the ingest takes
    any finite price) or order twice for 1e308: the sum is infinite (or NaN), which derive keeps and
    `round` could not take (OverflowError, ValueError), so the profile API answered that shopper 500
    (found by review)."""
    lines = [
        {"cart_id": "c1", "product_id": f"p{n}", "price": price, "added": 2, "removed": 0, "last_ts": BASE}
        for n, price in enumerate(prices)
    ]
    carts = [{"cart_id": "c1", "changed_at": BASE, "checkout_at": None, "ordered_at": None}]
    orders = [{"order_id": f"o{n}", "revenue": r, "ordered_at": BASE - n} for n, r in enumerate(revenues)]
    state = {"last_ts": BASE, "lines": lines, "carts": carts, "orders": orders}
    as_of = datetime(2026, 5, 29, tzinfo=UTC)
    mine = derive_one("u1", orjson.loads(orjson.dumps(state)), None, as_of)
    assert mine is not None and not math.isfinite(mine["cart_value"])
    assert _nan_named(mine) == _nan_named(_polars_row(state, None, as_of))


def _nan_named(row: dict[str, Any]) -> dict[str, Any]:
    """`row` with each NaN as the word (a NaN is no NaN's equal)."""
    return {k: "NaN" if isinstance(v, float) and math.isnan(v) else v for k, v in row.items()}
