"""Profiles as a commutative fold: per-batch partial states that merge in any order, then derived traits.

A batch's events become one *partial* row per principal (a user id, or `anon:<anonymous_id>` before an
identify). Partials merge associatively and commutatively: maxima, minima, sums, last-writer-wins by
event time (ties broken by value), and top-N lists by time. So a late or reordered event gives the same
profile as one on time, and a batch costs what its events cost: the store appends partials and a
periodic fold merges them (`merge_partials`). Identity is resolved at merge time, so an anonymous cart
follows its shopper once an identify links them, however late the link arrives.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl

from transforms.schema import CART_LINE, PROFILES_SCHEMA, UTC_TS

ANON = "anon:"
EPOCH = datetime(2020, 1, 1, tzinfo=UTC)
ENGAGEMENT_HALF_LIFE = timedelta(days=7)
RECENT_VIEWS, RECENT_SEARCHES, VIEW_STATE = 10, 10, 50
TRAITS = ("email", "first_name", "timezone", "locale", "marketing_consent")
CART_EVENTS = ("Product Added", "Product Removed")

LINE_STATE = pl.Struct(
    {
        "cart_id": pl.String(),
        "product_id": pl.String(),
        "name": pl.String(),
        "category": pl.String(),
        "price": pl.Float64(),
        "image_url": pl.String(),
        "url": pl.String(),
        "added": pl.Int64(),
        "removed": pl.Int64(),
        "last_ts": UTC_TS,
    }
)
CART_STATE = pl.Struct(
    {"cart_id": pl.String(), "changed_at": UTC_TS, "checkout_at": UTC_TS, "ordered_at": UTC_TS}
)
ORDER_STATE = pl.Struct(
    {
        "order_id": pl.String(),
        "cart_id": pl.String(),
        "revenue": pl.Float64(),
        "ordered_at": UTC_TS,
        "products": pl.List(pl.String()),
        "categories": pl.List(pl.String()),
    }
)
VIEW = pl.Struct({"ts": UTC_TS, "product_id": pl.String(), "category": pl.String()})
SEARCH = pl.Struct({"ts": UTC_TS, "query": pl.String()})
CATEGORY_COUNT = pl.Struct({"category": pl.String(), "n": pl.Int64()})

PARTIAL_SCHEMA: dict[str, pl.DataType] = {
    "principal": pl.String(),
    "first_ts": UTC_TS,
    "last_ts": UTC_TS,
    **{column: dtype for t in TRAITS for column, dtype in ((t, pl.String()), (f"{t}_ts", UTC_TS))},
    "identified_at": UTC_TS,
    "unsubscribed_at": UTC_TS,
    "lines": pl.List(LINE_STATE),
    "carts": pl.List(CART_STATE),
    "orders": pl.List(ORDER_STATE),
    "views": pl.List(VIEW),
    "searches": pl.List(SEARCH),
    "categories": pl.List(CATEGORY_COUNT),
    "engagement": pl.Float64(),  # log of sum(exp((ts - EPOCH) / half-life)) over events
}
TRAITS_DTYPE = pl.Struct({t: pl.String() for t in TRAITS})
ORDER_PRODUCTS = pl.List(pl.Struct({"product_id": pl.String(), "category": pl.String()}))


def principal() -> pl.Expr:
    """The key partials are kept under: the user id, or `anon:` and the anonymous id."""
    return pl.coalesce(pl.col("user_id"), pl.lit(ANON) + pl.col("anonymous_id"))


def _tau(column: str) -> pl.Expr:
    seconds = (pl.col(column) - pl.lit(EPOCH, dtype=UTC_TS)).dt.total_microseconds() / 1e6
    return seconds / ENGAGEMENT_HALF_LIFE.total_seconds()


def _logsumexp(expr: pl.Expr) -> pl.Expr:
    top = expr.max()
    return top + (expr - top).exp().sum().log()


def partials(events: pl.DataFrame) -> pl.DataFrame:
    """One partial state per principal from a batch of `events` rows (PARTIAL_SCHEMA)."""
    ev = (
        events.with_columns(
            principal().alias("principal"),
            pl.col("traits").str.json_decode(TRAITS_DTYPE).alias("_traits"),
        )
        .with_columns(pl.col("_traits").struct.field(t).alias(f"_{t}") for t in TRAITS)
        .with_columns(
            pl.coalesce("_timezone", "timezone").alias("_timezone"),
            pl.coalesce("_locale", "locale").alias("_locale"),
        )
    )
    base = ev.group_by("principal").agg(
        pl.col("event_ts").min().alias("first_ts"),
        pl.col("event_ts").max().alias("last_ts"),
        *[expr for t in TRAITS for expr in _trait_pair(t)],
        pl.col("event_ts")
        .filter((pl.col("event_type") == "identify") & pl.col("_email").is_not_null())
        .min()
        .alias("identified_at"),
        pl.col("event_ts").filter(pl.col("event_name") == "Unsubscribed").min().alias("unsubscribed_at"),
        _logsumexp(_tau("event_ts")).alias("engagement"),
    )
    parts = [_lines(ev), _carts(ev), _orders(ev), _views(ev), _searches(ev), _categories(ev)]
    for part in parts:
        base = base.join(part, on="principal", how="left")
    return _fill_lists(base).select([pl.col(c).cast(t) for c, t in PARTIAL_SCHEMA.items()])


def _trait_pair(trait: str) -> tuple[pl.Expr, pl.Expr]:
    present = pl.col(f"_{trait}").is_not_null()
    value = (
        pl.col(f"_{trait}")
        .filter(present)
        .sort_by([pl.col("event_ts").filter(present), pl.col(f"_{trait}").filter(present)])
    )
    return value.last().alias(trait), pl.col("event_ts").filter(present).max().alias(f"{trait}_ts")


def _lines(ev: pl.DataFrame) -> pl.DataFrame:
    """Cart lines per (cart, product): units added and removed, product details as of the last event."""
    cart = ev.filter(pl.col("event_name").is_in(CART_EVENTS) & pl.col("cart_id").is_not_null())
    quantity = pl.col("quantity").fill_null(1).clip(lower_bound=0)
    lines = (
        cart.sort("event_ts", "event_id")
        .group_by("principal", "cart_id", "product_id")
        .agg(
            *[pl.col(c).drop_nulls().last().alias(a) for c, a in _DETAILS],
            quantity.filter(pl.col("event_name") == "Product Added").sum().alias("added"),
            quantity.filter(pl.col("event_name") == "Product Removed").sum().alias("removed"),
            pl.col("event_ts").max().alias("last_ts"),
        )
    )
    return _nest(lines, "lines", LINE_STATE)


_DETAILS = (
    ("product_name", "name"),
    ("category", "category"),
    ("price", "price"),
    ("image_url", "image_url"),
    ("url", "url"),
)


def _carts(ev: pl.DataFrame) -> pl.DataFrame:
    """Per cart: the last change, the last checkout start and the first order."""
    carts = (
        ev.filter(pl.col("cart_id").is_not_null())
        .group_by("principal", "cart_id")
        .agg(
            pl.col("event_ts").filter(pl.col("event_name").is_in(CART_EVENTS)).max().alias("changed_at"),
            pl.col("event_ts").filter(pl.col("event_name") == "Checkout Started").max().alias("checkout_at"),
            pl.col("event_ts").filter(pl.col("event_name") == "Order Completed").min().alias("ordered_at"),
        )
    )
    return _nest(carts, "carts", CART_STATE)


def _orders(ev: pl.DataFrame) -> pl.DataFrame:
    """Distinct orders (the same order_id twice is one order: the first sighting wins)."""
    orders = (
        ev.filter((pl.col("event_name") == "Order Completed") & pl.col("order_id").is_not_null())
        .with_columns(pl.col("products").str.json_decode(ORDER_PRODUCTS).alias("_products"))
        .with_columns(
            pl.col("_products").list.eval(pl.element().struct.field("product_id")).alias("products"),
            pl.col("_products").list.eval(pl.element().struct.field("category")).alias("categories"),
            pl.coalesce("revenue", "total").alias("revenue"),
            pl.col("event_ts").alias("ordered_at"),
        )
    )
    return _nest(_first_orders(orders), "orders", ORDER_STATE)


def _first_orders(orders: pl.DataFrame) -> pl.DataFrame:
    """One row per (principal, order_id): the earliest sighting, ties broken by content."""
    return orders.sort("ordered_at", "cart_id", "revenue", nulls_last=True).unique(
        ["principal", "order_id"], keep="first", maintain_order=True
    )


def _views(ev: pl.DataFrame) -> pl.DataFrame:
    views = ev.filter((pl.col("event_name") == "Product Viewed") & pl.col("product_id").is_not_null()).select(
        "principal", pl.col("event_ts").alias("ts"), "product_id", "category"
    )
    return _nest(_top_recent(views, VIEW_STATE), "views", VIEW)


def _searches(ev: pl.DataFrame) -> pl.DataFrame:
    searches = ev.filter(
        (pl.col("event_name") == "Products Searched") & pl.col("query").is_not_null()
    ).select("principal", pl.col("event_ts").alias("ts"), "query")
    return _nest(_top_recent(searches, RECENT_SEARCHES), "searches", SEARCH)


def _categories(ev: pl.DataFrame) -> pl.DataFrame:
    counts = (
        ev.filter(pl.col("category").is_not_null())
        .group_by("principal", "category")
        .agg(pl.len().cast(pl.Int64).alias("n"))
    )
    return _nest(counts, "categories", CATEGORY_COUNT)


def _top_recent(frame: pl.DataFrame, n: int) -> pl.DataFrame:
    """The `n` most recent rows per principal (ties by content, so the cut is deterministic)."""
    order = [c for c in frame.columns if c != "principal"]
    return (
        frame.unique()
        .sort(order, descending=True, nulls_last=True)
        .group_by("principal", maintain_order=True)
        .head(n)
    )


def _nest(frame: pl.DataFrame, name: str, dtype: pl.Struct) -> pl.DataFrame:
    fields = [f.name for f in dtype.fields]
    return frame.group_by("principal").agg(pl.struct(fields).alias(name))


def _fill_lists(frame: pl.DataFrame) -> pl.DataFrame:
    lists = [c for c, t in PARTIAL_SCHEMA.items() if isinstance(t, pl.List)]
    return frame.with_columns(
        pl.col(c).fill_null(pl.lit([], dtype=PARTIAL_SCHEMA[c])) for c in lists if c in frame.columns
    )


def resolve(partial: pl.DataFrame, identities: pl.DataFrame) -> pl.DataFrame:
    """Partials re-keyed to user ids where an identities edge links their anonymous principal."""
    links = (
        identities.sort("first_seen_at", "user_id")
        .unique("anonymous_id", keep="first", maintain_order=True)  # the first identify claims it
        .select((pl.lit(ANON) + pl.col("anonymous_id")).alias("principal"), pl.col("user_id").alias("_to"))
    )
    return (
        partial.join(links, on="principal", how="left")
        .with_columns(pl.coalesce("_to", "principal").alias("principal"))
        .drop("_to")
    )


def merge_partials(partial: pl.DataFrame) -> pl.DataFrame:
    """Partials with the same principal merged into one (associative, commutative, PARTIAL_SCHEMA)."""
    if partial.height == partial["principal"].n_unique():
        return partial.select(list(PARTIAL_SCHEMA))
    base = partial.group_by("principal").agg(
        pl.col("first_ts").min(),
        pl.col("last_ts").max(),
        *[expr for t in TRAITS for expr in _merge_trait(t)],
        pl.col("identified_at").min(),
        pl.col("unsubscribed_at").min(),
        _logsumexp(pl.col("engagement").drop_nulls()).alias("engagement"),
    )
    for part in (_merge_lines, _merge_carts, _merge_orders, _merge_recent, _merge_categories):
        base = base.join(part(partial), on="principal", how="left")
    return _fill_lists(base).select([pl.col(c).cast(t) for c, t in PARTIAL_SCHEMA.items()])


def _merge_trait(trait: str) -> tuple[pl.Expr, pl.Expr]:
    present = pl.col(f"{trait}_ts").is_not_null()
    value = (
        pl.col(trait)
        .filter(present)
        .sort_by([pl.col(f"{trait}_ts").filter(present), pl.col(trait).filter(present)])
    )
    return value.last().alias(trait), pl.col(f"{trait}_ts").max()


def _explode(partial: pl.DataFrame, column: str) -> pl.DataFrame:
    return partial.select("principal", column).explode(column).drop_nulls(column).unnest(column)


def _merge_lines(partial: pl.DataFrame) -> pl.DataFrame:
    lines = (
        _explode(partial, "lines")
        .sort("last_ts", "name", "price", nulls_last=False)
        .group_by("principal", "cart_id", "product_id")
        .agg(
            *[pl.col(a).drop_nulls().last() for _, a in _DETAILS],
            pl.col("added").sum(),
            pl.col("removed").sum(),
            pl.col("last_ts").max(),
        )
    )
    return _nest(lines, "lines", LINE_STATE)


def _merge_carts(partial: pl.DataFrame) -> pl.DataFrame:
    carts = (
        _explode(partial, "carts")
        .group_by("principal", "cart_id")
        .agg(pl.col("changed_at").max(), pl.col("checkout_at").max(), pl.col("ordered_at").min())
    )
    return _nest(carts, "carts", CART_STATE)


def _merge_orders(partial: pl.DataFrame) -> pl.DataFrame:
    return _nest(_first_orders(_explode(partial, "orders")), "orders", ORDER_STATE)


def _merge_recent(partial: pl.DataFrame) -> pl.DataFrame:
    views = _nest(_top_recent(_explode(partial, "views"), VIEW_STATE), "views", VIEW)
    searches = _nest(_top_recent(_explode(partial, "searches"), RECENT_SEARCHES), "searches", SEARCH)
    return views.join(searches, on="principal", how="full", coalesce=True)


def _merge_categories(partial: pl.DataFrame) -> pl.DataFrame:
    counts = _explode(partial, "categories").group_by("principal", "category").agg(pl.col("n").sum())
    return _nest(counts, "categories", CATEGORY_COUNT)


def derive(state: pl.DataFrame, customers: pl.DataFrame, as_of: datetime) -> pl.DataFrame:
    """PROFILES_SCHEMA rows for the known users of `state` (merged, resolved) and `customers` (CRM)."""
    known = state.filter(~pl.col("principal").str.starts_with(ANON)).rename({"principal": "user_id"})
    crm = customers.select(
        "user_id",
        *[pl.col(t).cast(pl.String).alias(f"crm_{t}") for t in (*TRAITS, "loyalty_tier")],
        pl.col("updated_at").alias("crm_at"),
    )
    joined = known.join(crm, on="user_id", how="full", coalesce=True)
    traits = [_newest(t) for t in TRAITS]
    consent = pl.col("marketing_consent").str.to_lowercase().is_in(["true", "1", "yes"])
    at = pl.lit(as_of, dtype=UTC_TS)
    out = (
        _fill_lists(joined.with_columns(traits))
        .with_columns(
            pl.when(pl.col("marketing_consent").is_null())
            .then(None)
            .otherwise(consent)
            .alias("marketing_consent"),
            pl.col("crm_loyalty_tier").alias("loyalty_tier"),
        )
        .pipe(_with_current_cart)
        .pipe(_with_cart_items)
        .with_columns(
            pl.col("cart_items")
            .list.eval((pl.element().struct.field("price") * pl.element().struct.field("quantity")).sum())
            .list.first()
            .fill_null(0.0)
            .round(2)
            .alias("cart_value"),
            pl.col("carts")
            .list.eval(pl.element().struct.field("checkout_at").max())
            .list.first()
            .alias("last_checkout_at"),
            *_order_traits(),
            _distinct_recent("views", "product_id", RECENT_VIEWS).alias("recent_views"),
            _distinct_recent("searches", "query", RECENT_SEARCHES).alias("recent_searches"),
            _top_category().alias("top_category"),
            (pl.col("engagement") - _tau_lit(as_of)).exp().round(6).alias("engagement_score"),
            pl.col("last_ts").alias("last_seen_at"),
            at.alias("as_of"),
        )
    )
    return out.select([pl.col(c).cast(t) for c, t in PROFILES_SCHEMA.items()]).sort("user_id")


def _tau_lit(moment: datetime) -> float:
    return (moment - EPOCH).total_seconds() / ENGAGEMENT_HALF_LIFE.total_seconds()


def _newest(trait: str) -> pl.Expr:
    """The event-sourced trait or the CRM's, whichever is newer (events win a tie)."""
    crm_newer = pl.col(f"{trait}_ts").is_null() | (pl.col("crm_at") > pl.col(f"{trait}_ts"))
    pick_crm = crm_newer & pl.col(f"crm_{trait}").is_not_null()
    return pl.when(pick_crm).then(pl.col(f"crm_{trait}")).otherwise(pl.col(trait)).alias(trait)


def _with_current_cart(frame: pl.DataFrame) -> pl.DataFrame:
    """`cart_id` / `cart_updated_at`: the open cart (no order) changed last; ties by cart id."""
    open_carts = (
        frame.select("user_id", "carts")
        .explode("carts")
        .unnest("carts")
        .filter(pl.col("ordered_at").is_null() & pl.col("changed_at").is_not_null())
        .sort("changed_at", "cart_id", descending=True)
        .unique("user_id", keep="first")
        .select("user_id", "cart_id", pl.col("changed_at").alias("cart_updated_at"))
    )
    return frame.join(open_carts, on="user_id", how="left")


def _with_cart_items(frame: pl.DataFrame) -> pl.DataFrame:
    """`cart_items`: the current cart's lines with units left (added - removed > 0), by product id."""
    line = pl.col("_line").struct
    items = (
        frame.select("user_id", "cart_id", pl.col("lines").alias("_line"))
        .filter(pl.col("cart_id").is_not_null())
        .explode("_line")
        .drop_nulls("_line")
        .filter(line.field("cart_id") == pl.col("cart_id"))
        .with_columns((line.field("added") - line.field("removed")).alias("quantity"))
        .filter(pl.col("quantity") > 0)
        .select(
            "user_id",
            *[line.field(f.name).alias(f.name) for f in CART_LINE.fields if f.name != "quantity"],
            "quantity",
        )
        .sort("user_id", "product_id")
        .group_by("user_id", maintain_order=True)
        .agg(pl.struct([f.name for f in CART_LINE.fields]).alias("cart_items"))
    )
    joined = frame.join(items, on="user_id", how="left")
    return joined.with_columns(pl.col("cart_items").fill_null(pl.lit([], dtype=pl.List(CART_LINE))))


def _order_traits() -> list[pl.Expr]:
    order = pl.element().struct
    orders = pl.col("orders")
    return [
        orders.list.eval(order.field("ordered_at").max()).list.first().alias("last_order_at"),
        orders.list.len().cast(pl.Int64).alias("order_count"),
        orders.list.eval(order.field("revenue").sort().sum())
        .list.first()
        .fill_null(0.0)
        .round(2)
        .alias("lifetime_value"),
        orders.list.eval(order.field("products").explode().drop_nulls().unique().sort()).alias(
            "purchased_products"
        ),
    ]


def _distinct_recent(column: str, field: str, n: int) -> pl.Expr:
    return pl.col(column).list.eval(
        pl.element().struct.field(field).drop_nulls().unique(maintain_order=True).head(n)
    )


def _top_category() -> pl.Expr:
    count = pl.element().struct
    return (
        pl.col("categories")
        .list.eval(
            count.field("category").sort_by(
                [count.field("n"), count.field("category")], descending=[True, False]
            )
        )
        .list.first()
    )
