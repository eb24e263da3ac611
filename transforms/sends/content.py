"""Email content, pure part: what each kind of email says, the fallbacks it needed, or why it cannot go."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl

from transforms.ingest.reference_tables import is_price_drop
from transforms.schema import CART_LINE
from transforms.sends.catalog import Catalog, in_stock_bestsellers, product_ids
from transforms.sends.safety import NAME_LIMIT, format_price, header_value, holds_link, safe_url

CART_KINDS = ("abandoned_cart", "abandoned_checkout")
PRODUCT_KINDS = ("browse_abandonment", "back_in_stock", "price_drop")
KINDS = (*CART_KINDS, "welcome", "post_purchase", *PRODUCT_KINDS)  # every trigger kind of the rules
VARIANTS = ("a", "b")
_LINE_FIELDS: dict[str, Any] = {f.name: f.dtype for f in CART_LINE.fields}


@dataclass(frozen=True)
class Shop:
    """The sender's identity as emails show it."""

    name: str
    home_url: str  # https
    postal_address: str
    support_email: str
    currency: str = "EUR"  # for cart lines whose product has no currency in the catalog

    @property
    def cart_url(self) -> str:
        return self.home_url.rstrip("/") + "/cart"

    @property
    def checkout_url(self) -> str:
        return self.home_url.rstrip("/") + "/checkout"

    def as_context(self) -> dict[str, str]:
        return {**asdict(self), "cart_url": self.cart_url, "checkout_url": self.checkout_url}


@dataclass(frozen=True)
class Content:
    """What one email says: the templates' context, the fallbacks used, or why no email can be made."""

    context: dict[str, Any] = field(default_factory=dict)
    fallbacks: list[dict[str, str]] = field(default_factory=list)
    aborted: str | None = None


class _Abort(Exception):
    """No valid email can be made (the reason is the `sends` row's `last_error`)."""


@dataclass
class _Draft:
    """What every part of one email's content needs: the catalog, the shop, staleness, fallbacks so far."""

    catalog: pl.DataFrame
    shop: Shop
    stale: bool
    fallbacks: list[dict[str, str]]
    index: Catalog


def _card(row: Mapping[str, Any], shop: Shop) -> dict[str, Any]:
    """A product as templates show it: only safe links, a formatted price."""
    return {
        "name": header_value(row.get("name") or "", NAME_LIMIT) or "Item",
        "url": safe_url(row.get("url"), shop.home_url),
        "image_url": safe_url(row.get("image_url"), ""),
        "price": format_price(row.get("price"), row.get("currency") or shop.currency),
    }


def _cart_frame(items: Sequence[Mapping[str, Any]], catalog: pl.DataFrame, currency: str) -> pl.DataFrame:
    """Cart lines joined to the current catalog, whose values win. Links and pictures come from the
    catalog only: anyone holding the public write key can land a `Product Added` with any `url` /
    `image_url`, which the email would carry, signed into a click link (found by review). A line whose
    product the catalog lacks has no picture, no price and no link of its own."""
    lines = pl.DataFrame([{k: item.get(k) for k in _LINE_FIELDS} for item in items], schema=_LINE_FIELDS)
    in_cart = pl.col("product_id").is_in(product_ids(lines["product_id"].drop_nulls().to_list()))
    current = (
        catalog.lazy()
        .filter(in_cart)
        .unique("product_id", keep="first", maintain_order=True)
        .select(
            "product_id",
            "currency",
            pl.lit(True).alias("known"),
            *(pl.col(c).alias(f"c_{c}") for c in ("name", "category", "price", "image_url", "url")),
        )
    )
    known = pl.col("known").fill_null(False)
    return (
        lines.lazy()
        .join(current, on="product_id", how="left", maintain_order="left")
        .with_columns(
            *(pl.coalesce(f"c_{c}", c).alias(c) for c in ("name", "category")),
            event_name=pl.col("c_name").is_null(),  # the name the event gave, not the catalog's
            known=known,
            quantity=pl.col("quantity").fill_null(1),
            price=pl.when(known).then(pl.coalesce("c_price", "price")),  # never an unverified price
            url=pl.col("c_url"),  # none: the line links to the shop's home (`_card`)
            image_url=pl.col("c_image_url"),
            currency=pl.coalesce("currency", pl.lit(currency)),
        )
        .filter(pl.col("quantity") > 0)
        .with_columns(line_total=pl.col("price") * pl.col("quantity"))
        .collect()
    )


def _cart_total(frame: pl.DataFrame) -> str:
    """The cart's total, or "" when a line has no price or currencies differ (a partial sum misleads)."""
    if frame["price"].null_count() or frame["currency"].n_unique() != 1:
        return ""
    return format_price(float(frame["line_total"].sum()), frame["currency"][0])


def _cart_line(
    row: Mapping[str, Any], shop: Shop, detailed: bool, fallbacks: list[dict[str, str]]
) -> dict[str, Any]:
    card = _card(row, shop)
    if not row["known"]:  # stale or not: why the line is a name linking to the shop's home
        fallbacks.append({"block": "cart_line", "reason": "product_not_in_catalog"})
    if row["event_name"] and holds_link(card["name"]):  # anyone's text: never a link in the shop's email
        fallbacks.append({"block": "cart_line", "reason": "link_in_name"})
        card["name"] = "Item"
    if not detailed:  # a stale profile: names (and links) only
        return {**card, "image_url": "", "price": "", "line_total": "", "quantity": 0}
    if row["known"] and not card["image_url"]:
        fallbacks.append({"block": "cart_line", "reason": "no_image"})
    if row["known"] and not card["price"]:
        fallbacks.append({"block": "cart_line", "reason": "no_price"})
    total = format_price(row["line_total"], row["currency"])
    return {**card, "quantity": row["quantity"], "line_total": total}


def cart_of(kind: str, trigger: Mapping[str, Any]) -> str | None:
    """The cart an email is about: a cart email's anchor; a checkout's cart when the checkout named one
    (the trigger facts' `cart_id`; Segment's spec puts `order_id` / `checkout_id` on checkouts: then it
    is the shopper's open cart)."""
    if kind == "abandoned_cart":
        return trigger.get("anchor")
    return trigger.get("cart_id") if kind == "abandoned_checkout" else None


def _cart_part(
    kind: str, profile: Mapping[str, Any], trigger: Mapping[str, Any], draft: _Draft
) -> tuple[dict[str, Any], str | None, list[str]]:
    cart_id = profile.get("cart_id")
    if (about := cart_of(kind, trigger)) and cart_id and about != cart_id:
        # Never write about a cart the shopper no longer has. The checkout rule's exit withdraws such a
        # checkout when due and again right before sending (exit_reasons_now); this is the guard behind it.
        raise _Abort("cart_changed")
    frame = _cart_frame(profile.get("cart_items") or [], draft.catalog, draft.shop.currency)
    if frame.is_empty():
        raise _Abort("empty_cart")
    rows = frame.iter_rows(named=True)
    lines = [_cart_line(row, draft.shop, not draft.stale, draft.fallbacks) for row in rows]
    total = "" if draft.stale else _cart_total(frame)
    cart = {"lines": lines, "total": total, "count": int(frame["quantity"].sum())}
    cta = draft.shop.checkout_url if kind == "abandoned_checkout" else draft.shop.cart_url
    category = (frame["category"].drop_nulls().to_list() or [None])[0]
    return {"cart": cart, "cta_url": cta}, category, frame["product_id"].drop_nulls().to_list()


def _product_part(
    kind: str, trigger: Mapping[str, Any], draft: _Draft
) -> tuple[dict[str, Any], str | None, list[str]]:
    found = draft.catalog.filter(pl.col("product_id") == pl.lit(trigger.get("anchor"), dtype=pl.String))
    if found.is_empty():
        raise _Abort("product_not_in_catalog")
    row = found.row(0, named=True)
    if kind == "back_in_stock" and not (row["stock"] or 0) > 0:
        raise _Abort("out_of_stock")  # sold out again since the change was seen
    product = {**_card(row, draft.shop), "old_price": "", "drop_percent": 0}
    if kind == "price_drop":
        old, price = trigger.get("old_price"), row["price"]
        if price is None or (old is not None and not is_price_drop(old, price)):
            raise _Abort("no_price_drop")  # back up since, or no longer by MIN_PRICE_DROP
        if old:
            product["old_price"] = format_price(old, row["currency"] or draft.shop.currency)
            product["drop_percent"] = round((1 - price / old) * 100)
    if not product["image_url"]:
        draft.fallbacks.append({"block": "product", "reason": "no_image"})
    return {"product": product, "cta_url": product["url"]}, row["category"], [row["product_id"]]


def _own_category(
    kind: str, profile: Mapping[str, Any], trigger: Mapping[str, Any], catalog: pl.DataFrame
) -> str | None:
    """Welcome: the profile's top category; post_purchase: that of the order's (else any bought) products."""
    if kind == "post_purchase":
        bought = list(trigger.get("products") or profile.get("purchased_products") or [])
        found = catalog.filter(
            pl.col("product_id").is_in(product_ids(bought)) & pl.col("category").is_not_null()
        )
        if not found.is_empty():  # first in the profile's order, not the catalog's
            order = {pid: i for i, pid in enumerate(bought)}
            return min(found.iter_rows(named=True), key=lambda r: order[r["product_id"]])["category"]
    return profile.get("top_category")


def _is_stale(as_of: datetime | None, now: datetime, staleness: timedelta) -> bool:
    if as_of is None:
        return True  # freshness unknown: treat as stale
    utc = [t if t.tzinfo else t.replace(tzinfo=UTC) for t in (as_of, now)]  # naive times are UTC
    return utc[0] < utc[1] - staleness


def _recommended(
    draft: _Draft, category: str | None, exclude: list[str], bestsellers: Sequence[str]
) -> tuple[list[dict[str, Any]], str]:
    """Recommendation cards and their source: personal, else (none, or a stale profile) bestsellers."""
    picked = [] if draft.stale else draft.index.recommend(category, exclude)
    if picked:
        return [_card(row, draft.shop) for row in picked], "personal"
    # a stale profile's interests may be old news: bestsellers are safe
    reason = "stale_profile" if draft.stale else "no_recommendations"
    draft.fallbacks.append({"block": "recommendations", "reason": reason})
    ranked = in_stock_bestsellers(draft.catalog, bestsellers, exclude)
    return [_card(row, draft.shop) for row in ranked.iter_rows(named=True)], "bestsellers"


def _kind_part(
    kind: str, profile: Mapping[str, Any], trigger: Mapping[str, Any], draft: _Draft
) -> tuple[dict[str, Any], str | None, list[str]]:
    """The kind's own part of the context, the category to recommend from, the products it shows."""
    if kind in CART_KINDS:
        return _cart_part(kind, profile, trigger, draft)
    if kind in PRODUCT_KINDS:
        return _product_part(kind, trigger, draft)
    return {"cta_url": draft.shop.home_url}, _own_category(kind, profile, trigger, draft.catalog), []


def build_content(
    kind: str,
    *,
    profile: Mapping[str, Any],
    trigger: Mapping[str, Any],
    catalog: pl.DataFrame | Catalog,
    bestsellers: Sequence[str],
    now: datetime,
    shop: Shop,
    staleness: timedelta,
) -> Content:
    """The context of one email of `kind`, with the fallbacks it needed, or the reason it cannot be sent."""
    if kind not in KINDS:
        raise ValueError(f"unknown email kind: {kind!r}")
    email = profile.get("email")
    if not email or "@" not in email:
        return Content(aborted="no_email")
    stale = _is_stale(profile.get("as_of"), now, staleness)
    index = catalog if isinstance(catalog, Catalog) else Catalog.of(catalog)
    draft = _Draft(index.frame, shop, stale, [], index)  # one row per product_id (the table's key)
    if stale:
        draft.fallbacks.append({"block": "profile", "reason": "stale_profile"})
    first_name = header_value(profile.get("first_name") or "", NAME_LIMIT)
    if holds_link(first_name):  # a trait anyone with the public write key can set: never a link
        draft.fallbacks.append({"block": "greeting", "reason": "link_in_first_name"})
        first_name = ""
    elif not first_name:
        draft.fallbacks.append({"block": "greeting", "reason": "no_first_name"})
    try:
        part, category, shown = _kind_part(kind, profile, trigger, draft)
    except _Abort as abort:
        return Content(fallbacks=_unique(draft.fallbacks), aborted=str(abort))
    exclude = [*shown, *(profile.get("purchased_products") or [])]
    cards, source = _recommended(draft, category, exclude, bestsellers)
    context = {
        "kind": kind,
        "shop": shop.as_context(),
        "first_name": first_name,
        "loyalty_tier": "" if stale else header_value(profile.get("loyalty_tier") or "", NAME_LIMIT),
        "generic": stale,
        "recommendations": cards,
        "recommendations_source": source,
        **part,
    }
    return Content(context=context, fallbacks=_unique(draft.fallbacks))


def _unique(fallbacks: list[dict[str, str]]) -> list[dict[str, str]]:
    """Each (block, reason) once, in first-seen order: a send records which fallbacks, not how often."""
    return list({(f["block"], f["reason"]): f for f in fallbacks}.values())
