"""A checkout's products as its cart's lines, for one shopper in plain Python (`transforms.profiles.one`):
what `transforms.profiles.baskets.checkout_carts` and `transforms.profiles.carts.line_units` do with them,
rule for rule (nulls, ties), on the store's wire values (times as integer microseconds)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

Wire = Mapping[str, Any]
Lists = dict[str, list[Wire]]
_DETAILS = ("name", "price", "category", "image_url", "url")  # `baskets.LINE_TIES`


def _first(value: Any) -> tuple[bool, Any]:
    """A value as a sort key where a null ranks first (Polars' `nulls_last=False`)."""
    return (value is not None, 0 if value is None else value)


def latest_checkout_lines(rows: list[Wire]) -> list[Wire]:
    """`carts.latest_checkout_lines`: per cart, the lines of its latest `started_at`, and of those the lines
    of the greatest `checkout` (a null is never the latest), each distinct line once."""
    kept = rows
    for name in ("started_at", "checkout"):
        latest: dict[Any, Any] = {}
        for row in kept:
            if (value := row.get(name)) is not None:
                cart = row.get("cart_id")
                latest[cart] = max(latest.get(cart, value), value)
        kept = [r for r in kept if r.get(name) is not None and r[name] == latest.get(r.get("cart_id"))]
    return list({tuple(sorted(r.items())): r for r in kept}.values())


def order_carts(lists: Lists) -> list[tuple[Any, int]]:
    """`carts.order_carts`: (cart_id, ordered_at) of each order with a time and the carts it is of: the one
    it names, else each cart a checkout of the shopper (`cart_checkouts`, `checkouts`) named with the
    order's checkout_id or order_id."""
    links: dict[str, set[tuple[Any, Any]]] = {"checkout_id": set(), "order_id": set()}
    for row in (*lists["cart_checkouts"], *lists["checkouts"]):
        if (cart := row.get("cart_id")) is not None:
            for name, linked in links.items():
                if (value := row.get(name)) is not None:
                    linked.add((value, cart))
    ended: list[tuple[Any, int]] = []
    for order in lists["orders"]:
        if (ordered_at := order.get("ordered_at")) is None:
            continue
        if (named := order.get("cart_id")) is not None:
            ended.append((named, ordered_at))
            continue
        for name, linked in links.items():
            value = order.get(name)
            ended += [(cart, ordered_at) for v, cart in linked if value is not None and v == value]
    return ended


def cartless_start(lists: Lists) -> int | None:
    """`baskets._cartless`: the start of the shopper's checkout naming no cart, unless an order of the
    shopper at or after it ended it (None: none, or ended)."""
    starts = [r.get("started_at") for r in lists["checkout_lines"] if r.get("cart_id") is None]
    started = max((s for s in starts if s is not None), default=None)
    if started is None:
        return None
    ordered = max((o["ordered_at"] for o in lists["orders"] if o.get("ordered_at") is not None), default=None)
    return None if ordered is not None and ordered >= started else started


def _fold_lines(lines: list[Wire]) -> list[Wire]:
    """`baskets.fold_lines`: per (cart, product), units summed, the last touch, each detail as of the
    latest line stating it (ties by every detail, in `_DETAILS` order: by name and price alone, lines of one
    moment that differ in category, picture or URL kept the wire's order, found by review)."""
    groups: dict[tuple[Any, Any], list[Wire]] = {}
    for line in lines:
        groups.setdefault((line.get("cart_id"), line.get("product_id")), []).append(line)
    folded: list[Wire] = []
    for (cart, product), group in groups.items():
        group.sort(key=lambda ln: tuple(_first(ln.get(name)) for name in ("last_ts", *_DETAILS)))
        row: dict[str, Any] = {"cart_id": cart, "product_id": product}
        for name in _DETAILS:
            stated = [ln.get(name) for ln in group if ln.get(name) is not None]
            row[name] = stated[-1] if stated else None
        row["added"] = sum(ln.get("added") or 0 for ln in group)
        row["removed"] = sum(ln.get("removed") or 0 for ln in group)
        row["last_ts"] = max((ln["last_ts"] for ln in group if ln.get("last_ts") is not None), default=None)
        folded.append(row)
    return folded


def _fold_carts(carts: list[Wire]) -> list[Wire]:
    """`baskets.fold_carts`: per cart, the last change and checkout, the first order."""
    groups: dict[Any, list[Wire]] = {}
    for cart in carts:
        groups.setdefault(cart.get("cart_id"), []).append(cart)
    folded: list[Wire] = []
    for cart_id, group in groups.items():
        row: dict[str, Any] = {"cart_id": cart_id}
        for name, pick in (("changed_at", max), ("checkout_at", max), ("ordered_at", min)):
            values = [c[name] for c in group if c.get(name) is not None]
            row[name] = pick(values) if values else None
        folded.append(row)
    return folded


def put_in_cart(lists: Lists, cart_id: str, started: int) -> Lists:
    """`baskets.checkout_carts` for one shopper: the checkout naming no cart (started at `started`) and its
    line details under `cart_id`, that cart changed at `started`."""

    def into(row: Wire) -> Wire:
        return {**row, "cart_id": cart_id} if row.get("cart_id") is None else row

    changed = {"cart_id": cart_id, "changed_at": started, "checkout_at": None, "ordered_at": None}
    return {
        **lists,
        "lines": _fold_lines([into(r) for r in lists["lines"]]),
        "checkout_lines": latest_checkout_lines([into(r) for r in lists["checkout_lines"]]),
        "carts": _fold_carts([*lists["carts"], changed]),
    }


def checkout_cut(
    baskets: list[Wire], cart_id: str, ordered_at: int | None
) -> tuple[int | None, dict[Any, int]]:
    """`carts.line_units`' cut of cart `cart_id` (its latest order, or its latest checkout listing products
    when that came after it) and the units that checkout listed per product (none after an order)."""
    theirs = latest_checkout_lines([b for b in baskets if b.get("cart_id") == cart_id])
    reset = max((b["started_at"] for b in theirs if b.get("started_at") is not None), default=None)
    if reset is None or (ordered_at is not None and reset <= ordered_at):
        return ordered_at, {}
    listed: dict[Any, int] = {}
    for row in theirs:
        if row.get("started_at") == reset:
            listed[row.get("product_id")] = listed.get(row.get("product_id"), 0) + (row.get("units") or 0)
    return reset, listed
