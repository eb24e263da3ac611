"""One shopper's profile row in plain Python: what `transforms.profiles.derive.derive` gives for that
shopper, without a Polars query (whose cost is per call: ~14 ms for one row, issue #16's profile API).

The input is the store's values as JSON decodes them (`transforms.state.encode`'s wire form: times as
integer microseconds), the state (PARTIAL_SCHEMA) and/or the CRM row (CUSTOMERS_SCHEMA). Every rule
mirrors `derive` (nulls, ties, sort orders, Polars' rounding: half to even of `x * 10**d`); a test
compares the two on generated states. Polars adds floats sequentially up to SEQUENTIAL_SUM terms and
pairwise beyond, so a shopper with that many orders or cart lines is left to `derive` (None here).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from transforms.profiles.one_baskets import cartless_start, checkout_cut, order_carts, put_in_cart
from transforms.profiles.state import (
    ENGAGEMENT_HALF_LIFE,
    EPOCH,
    IMPLICIT_CART,
    RECENT_ORDER,
    RECENT_SEARCHES,
    RECENT_VIEWS,
    TRAITS,
)

SEQUENTIAL_SUM = 128  # Polars sums fewer floats than this in order (as Python's sum does)
UNIX = datetime(1970, 1, 1, tzinfo=UTC)
CONSENTING = ("true", "1", "yes")
Wire = Mapping[str, Any]


def at(micros: int | None) -> datetime | None:
    """A wire time (microseconds since 1970, UTC) as the datetime Polars gives back."""
    return None if micros is None else UNIX + timedelta(microseconds=micros)


def _round(value: float, digits: int) -> float:
    """Polars' `round`: half to even of `value * 10**digits`; a value whose product is no finite number
    (infinite or NaN, or over 1.8e306 for cents: a shopper's cart of two at 1e308) is left as it is."""
    scale = 10.0**digits
    scaled = value * scale
    return round(scaled) / scale if math.isfinite(scaled) else value


def _max(values: Iterable[Any]) -> Any:
    present = [v for v in values if v is not None]
    return max(present) if present else None


def _sum(values: Iterable[float | None]) -> float:
    total = 0.0
    for value in values:
        if value is not None:
            total += value
    return total


def _string(value: Any) -> str | None:
    """A CRM value cast to text as Polars casts it (booleans as `true` / `false`)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return None if value is None else str(value)


def _newest(state: Wire, crm: Wire, trait: str) -> Any:
    """The event-sourced trait or the CRM's, whichever is newer (events win a tie)."""
    stated_at, crm_at, crm_value = state.get(f"{trait}_ts"), crm.get("updated_at"), _string(crm.get(trait))
    crm_newer = stated_at is None or (crm_at is not None and crm_at > stated_at)
    return crm_value if crm_newer and crm_value is not None else state.get(trait)


def _current_cart(lists: dict[str, list[Wire]]) -> tuple[str | None, int | None, int | None]:
    """(cart_id, changed_at, ordered_at) of the open cart changed last (`carts.open_carts`: no order since
    its last change, `ordered_at` its latest order, naming it or its checkout naming it (`order_carts`): any
    order of the shopper for the implicit cart, which is a cart only once something was added to it or a
    checkout listed its products, `carts.cart_rows`); ties by cart id, descending (nulls first)."""
    carts, orders, lines = lists["carts"], lists["orders"], lists["lines"]
    latest: dict[str, int] = {}
    for cart_id, ordered_at in order_carts(lists):  # the carts it names, or its checkout named
        latest[cart_id] = max(latest.get(cart_id, ordered_at), ordered_at)
    any_order = _max(o.get("ordered_at") for o in orders)
    filled = any(line.get("cart_id") == IMPLICIT_CART and (line.get("added") or 0) > 0 for line in lines)
    filled = filled or any(b.get("cart_id") == IMPLICIT_CART for b in lists["checkout_lines"])
    rows = []
    for cart in carts:
        changed_at, cart_id = cart.get("changed_at"), cart.get("cart_id")
        if cart_id == IMPLICIT_CART and not filled:
            continue
        ordered_at = _max([cart.get("ordered_at"), latest.get(cart_id) if cart_id is not None else None])
        if cart_id == IMPLICIT_CART:
            ordered_at = _max([ordered_at, any_order])
        if changed_at is not None and (ordered_at is None or ordered_at < changed_at):
            rows.append((changed_at, cart_id is None, cart_id or "", cart_id, ordered_at))
    if not rows:
        return None, None, None
    changed_at, _, _, cart_id, ordered_at = max(rows, key=lambda row: row[:3])
    return cart_id, changed_at, ordered_at


def _cart_items(
    lists: dict[str, list[Wire]], cart_id: str | None, ordered_at: int | None
) -> list[dict[str, Any]]:
    """The current cart's lines with units left after its cut (`carts.line_units`: its latest order, or
    its latest checkout listing products after it, whose quantities count; then the units its moves put in
    or took out after the cut, and those no move accounts for when the line was touched after it), by
    product id (nulls first)."""
    if cart_id is None:
        return []
    lines, moves = lists["lines"], lists["moves"]
    cut, listed = checkout_cut(lists["checkout_lines"], cart_id, ordered_at)
    after: dict[str | None, int] = {}
    moved: dict[str | None, int] = {}
    for move in moves:
        if move.get("cart_id") != cart_id:
            continue
        product, ts, units = move.get("product_id"), move.get("ts"), move.get("units") or 0
        moved[product] = moved.get(product, 0) + units
        if cut is None or (ts is not None and ts > cut):
            after[product] = after.get(product, 0) + units
    items = []
    for line in lines:
        if line.get("cart_id") != cart_id:
            continue
        added, removed, touched = line.get("added"), line.get("removed"), line.get("last_ts")
        product = line.get("product_id")
        quantity = listed.get(product, 0) + after.get(product, 0)
        if cut is None or touched is None or touched > cut:  # what no move accounts for
            if added is None or removed is None:
                continue
            quantity += added - removed - moved.get(product, 0)
        if quantity <= 0:
            continue
        items.append(
            {
                "product_id": product,
                "name": line.get("name"),
                "category": line.get("category"),
                "quantity": quantity,
                "price": _float(line.get("price")),
                "image_url": line.get("image_url"),
                "url": line.get("url"),
            }
        )
    items.sort(key=lambda i: (i["product_id"] is not None, i["product_id"] or ""))
    return items


def _distinct_recent(entries: list[Wire], column: str, field: str, n: int) -> list[str]:
    """`derive`'s: the `n` most recent distinct values of `column`'s entries (RECENT_ORDER, a null below
    any value), whatever the list's order."""
    names = RECENT_ORDER[column]
    seen: dict[str, None] = {}
    ranked = sorted(entries, key=lambda e: tuple(_ranked(e.get(name)) for name in names), reverse=True)
    for entry in ranked:
        value = entry.get(field)
        if value is not None and value not in seen:
            seen[value] = None
            if len(seen) == n:
                break
    return list(seen)


def _ranked(value: Any) -> tuple[bool, Any]:
    """A value as a sort key where a null ranks below any value."""
    return (value is not None, 0 if value is None else value)


def _top_category(counts: list[Wire]) -> str | None:
    """The category counted most (nulls first, then the larger count), ties to the smaller name."""
    if not counts:
        return None

    def rank(c: Wire) -> tuple[bool, int, bool, str]:
        n, name = c.get("n"), c.get("category")
        return (n is not None, -(n or 0), name is not None, name or "")

    return min(counts, key=rank).get("category")


def _net_revenue(order: Wire, refunds: list[Wire]) -> float | None:
    """`derive`'s: the order's revenue net of its refunds (`transforms.profiles.refunds.net_orders`)."""
    revenue, order_id, currency = order.get("revenue"), order.get("order_id"), order.get("currency")
    theirs = [r for r in refunds if order_id is not None and r.get("order_id") == order_id]
    if revenue is None or not theirs:
        return revenue
    partial = [r for r in theirs if r.get("cancelled") is False and r.get("amount") is not None]
    same = [
        r["amount"] for r in partial if None in (r.get("currency"), currency) or r["currency"] == currency
    ]
    refunded = _sum(sorted(same))
    cancelled = any(r.get("cancelled") is True for r in theirs)
    whole = any(r.get("cancelled") is False and r.get("amount") is None for r in theirs)
    if cancelled or whole or (same and refunded >= revenue):
        return 0.0
    return max(revenue - refunded, 0.0) if same else revenue


def _lists(state: Wire) -> dict[str, list[Wire]]:
    names = (
        "lines",
        "moves",
        "carts",
        "checkouts",
        "checkout_lines",
        "cart_checkouts",
        "orders",
        "refunds",
        "views",
        "searches",
        "categories",
    )
    return {name: [e for e in (state.get(name) or ()) if e is not None] for name in names}


def derive_one(user_id: str, state: Wire | None, crm: Wire | None, as_of: datetime) -> dict[str, Any] | None:
    """The `profiles` row (PROFILES_SCHEMA) of `user_id` from its wire state and CRM row (None: that
    value is absent; both absent is not a profile), as of `as_of`; None when only `derive` can say
    exactly (a float sum over SEQUENTIAL_SUM terms or more)."""
    state, crm = state or {}, crm or {}
    lists = _lists(state)
    orders, lines, refunds = lists["orders"], lists["lines"], lists["refunds"]
    if max(len(orders), len(lines), len(refunds)) >= SEQUENTIAL_SUM:
        return None
    traits = {t: _newest(state, crm, t) for t in TRAITS}
    stated = traits["marketing_consent"]
    if stated is None:
        stated = state.get("category_consent")
    cartless = cartless_start(lists)
    if cartless is not None:  # a checkout naming no cart: the open cart's, else the implicit cart's
        lists = put_in_cart(lists, _current_cart(lists)[0] or IMPLICIT_CART, cartless)
    cart_id, cart_at, cart_ordered_at = _current_cart(lists)
    items = _cart_items(lists, cart_id, cart_ordered_at)
    revenues = sorted(r for o in orders if (r := _net_revenue(o, refunds)) is not None)
    engagement = state.get("engagement")
    half_lives = (as_of - EPOCH).total_seconds() / ENGAGEMENT_HALF_LIFE.total_seconds()
    checkout = (c.get("checkout_at") for c in lists["carts"])
    started = (c.get("started_at") for c in lists["checkouts"])
    products = {p for o in orders for p in (o.get("products") or ()) if p is not None}
    return {
        "user_id": user_id,
        **{t: traits[t] for t in ("email", "first_name", "timezone", "locale")},
        "loyalty_tier": _string(crm.get("loyalty_tier")),
        "marketing_consent": None if stated is None else stated.lower() in CONSENTING,
        "cart_id": cart_id,
        "cart_items": items,
        "cart_value": _round(_sum(_product(i) for i in items), 2),
        "cart_updated_at": at(cart_at),
        "last_checkout_at": at(_max([_max(checkout), _max(started)])),
        "last_order_at": at(_max(o.get("ordered_at") for o in orders)),
        "order_count": len(orders),
        "lifetime_value": _round(_sum(revenues), 2),
        "purchased_products": sorted(products),
        "recent_views": _distinct_recent(lists["views"], "views", "product_id", RECENT_VIEWS),
        "recent_searches": _distinct_recent(lists["searches"], "searches", "query", RECENT_SEARCHES),
        "top_category": _top_category(lists["categories"]),
        "engagement_score": None if engagement is None else _round(math.exp(engagement - half_lives), 6),
        "identified_at": at(state.get("identified_at")),
        "last_seen_at": at(state.get("last_ts")),
        "as_of": as_of,
    }


def _float(value: float | None) -> float | None:
    return None if value is None else float(value)


def _product(item: Mapping[str, Any]) -> float | None:
    price = item["price"]
    return None if price is None else price * item["quantity"]
