"""Profile state of a synthetic past: one merged PARTIAL_SCHEMA row per shopper, generated directly.

Folding millions of synthetic events through `transforms.profiles.partials.partials` would take minutes per
million users, so the benchmarks write the folded state itself: list lengths follow the events per user
(views, searches, carts and orders in the simulator's proportions, capped as the fold caps them), ids
and traits are the simulator's. Activity in the state ends `QUIET` before the measured batches, so no
old candidate is due in them and the synthetic decision log needs no entry for one.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import polars as pl
import pyarrow as pa

from benchmarks.past import Past, epoch_us
from benchmarks.shop import QUERIES, catalog_frame
from transforms.principals import user_principal
from transforms.profiles.state import (
    ENGAGEMENT_HALF_LIFE,
    PARTIAL_SCHEMA,
    RECENT_SEARCHES,
    TRAITS,
    VIEW_STATE,
)
from transforms.profiles.state import EPOCH as TAU_EPOCH
from transforms.schema import UTC_TS

QUIET = timedelta(days=5)
VIEW_SHARE, SEARCH_SHARE, CART_SHARE = 0.40, 0.10, 0.05  # of a shopper's events (transforms/simulate mix)
MAX_CARTS = 3
ORDERED = 0.5  # share of carts that became an order
PARTIAL_EVENTS = 3.0  # events per shopper in one batch's partial


def list_column(counts: np.ndarray, values: pl.DataFrame, dtype: pl.DataType) -> pl.Series:
    """A list column: row i holds the next `counts[i]` rows of `values` (in order) as structs."""
    offsets = pa.array(np.concatenate([[0], np.cumsum(counts)]), type=pa.int64())
    items = values.to_struct("item").to_arrow()
    return pl.Series(pa.LargeListArray.from_arrays(offsets, items)).cast(dtype)


class _Draw:
    """Random per-element draws for the shoppers of one state frame."""

    def __init__(self, rng: np.random.Generator, first: np.ndarray, last: np.ndarray) -> None:
        self.rng, self.first, self.last = rng, first, last

    def counts(self, mean: np.ndarray | float, cap: int) -> np.ndarray:
        return np.minimum(self.rng.poisson(mean, self.first.shape[0]), cap)

    def times(self, owner: np.ndarray) -> pl.Series:
        """A time within each owner's active span."""
        spread = (self.last - self.first)[owner]
        return pl.Series(
            self.first[owner] + (self.rng.random(owner.shape[0]) * spread).astype(np.int64)
        ).cast(UTC_TS)


def activity(past: Past) -> tuple[datetime, datetime]:
    """When the state's activity happened: the past's span, ending QUIET before the measured batches."""
    return past.now - max(past.span, QUIET + timedelta(days=1)), past.now - QUIET


def profile_states(
    people: pl.DataFrame, events_per_user: float, *, seed: int, window: tuple[datetime, datetime]
) -> pl.DataFrame:
    """The merged state (PARTIAL_SCHEMA) of `people` (rows of `shop.shoppers`), active within `window`."""
    n = people.height
    rng = np.random.default_rng([seed, 17, int(people["index"][0]) if n else 0])
    start, end = (epoch_us(at) for at in window)
    first = rng.integers(start, end, n)
    last = first + (rng.random(n) * (end - first)).astype(np.int64)
    draw = _Draw(rng, first, last)
    products = catalog_frame(seed)
    views, n_views = _views(draw, products, events_per_user)
    state = people.select(
        user_principal(pl.col("user_id")).alias("principal"),
        pl.Series(first).cast(UTC_TS).alias("first_ts"),
        pl.Series(last).cast(UTC_TS).alias("last_ts"),
        pl.col("email", "first_name", "timezone", "locale"),
        pl.when("consent").then(pl.lit("true")).otherwise(pl.lit("false")).alias("marketing_consent"),
        pl.Series(first).cast(UTC_TS).alias("identified_at"),
        pl.when("consent").then(pl.Series(first).cast(UTC_TS)).alias("consented_at"),
        pl.lit(None, dtype=UTC_TS).alias("unsubscribed_at"),
    ).with_columns(pl.col("identified_at").alias(f"{t}_ts") for t in TRAITS)
    carts, lines, moves, checkouts, orders = _carts(
        draw, products, events_per_user, people["index"].to_numpy()
    )
    searches = _searches(draw, events_per_user)
    categories = _categories(views, n_views, n)
    tau = (
        pl.col("last_ts") - pl.lit(TAU_EPOCH, dtype=UTC_TS)
    ).dt.total_seconds() / ENGAGEMENT_HALF_LIFE.total_seconds()
    state = state.with_columns(
        lines=lines,
        moves=moves,
        carts=carts,
        checkouts=checkouts,
        orders=orders,
        refunds=pl.lit([], dtype=PARTIAL_SCHEMA["refunds"]),  # none refunded
        checkout_lines=pl.lit([], dtype=PARTIAL_SCHEMA["checkout_lines"]),  # no checkout listed products
        cart_checkouts=pl.lit([], dtype=PARTIAL_SCHEMA["cart_checkouts"]),  # no checkout named a cart
        views=list_column(n_views, views.drop("owner"), PARTIAL_SCHEMA["views"]),
        searches=searches,
        categories=categories,
        engagement=tau + float(np.log(max(events_per_user, 1.0))),
        category_consent=pl.lit(None, dtype=pl.String),  # consent comes from traits here
        category_consent_ts=pl.lit(None, dtype=UTC_TS),
    )
    return state.select([pl.col(c).cast(t) for c, t in PARTIAL_SCHEMA.items()])


def _views(draw: _Draw, products: pl.DataFrame, events_per_user: float) -> tuple[pl.DataFrame, np.ndarray]:
    counts = draw.counts(VIEW_SHARE * events_per_user, VIEW_STATE)
    owner = np.repeat(np.arange(counts.shape[0]), counts)
    pick = draw.rng.integers(0, products.height, owner.shape[0])
    views = pl.DataFrame(
        {"owner": owner, "ts": draw.times(owner), "product_id": products["product_id"].gather(pick)}
    ).with_columns(category=products["category"].gather(pick))
    return views.sort("owner", "ts", descending=[False, True]), counts


def _searches(draw: _Draw, events_per_user: float) -> pl.Series:
    counts = draw.counts(SEARCH_SHARE * events_per_user, RECENT_SEARCHES)
    owner = np.repeat(np.arange(counts.shape[0]), counts)
    queries = pl.Series(QUERIES).gather(draw.rng.integers(0, len(QUERIES), owner.shape[0]))
    rows = pl.DataFrame({"owner": owner, "ts": draw.times(owner), "query": queries})
    rows = rows.sort("owner", "ts", descending=[False, True]).drop("owner")
    return list_column(counts, rows, PARTIAL_SCHEMA["searches"])


def _categories(views: pl.DataFrame, n_views: np.ndarray, users: int) -> pl.Series:
    counts = (
        views.group_by("owner", "category").agg(pl.len().cast(pl.Int64).alias("n")).sort("owner", "category")
    )
    per_user = (
        np.bincount(counts["owner"].to_numpy(), minlength=users)
        if n_views.sum()
        else np.zeros(users, np.int64)
    )
    return list_column(per_user, counts.drop("owner"), PARTIAL_SCHEMA["categories"])


def _carts(
    draw: _Draw, products: pl.DataFrame, events_per_user: float, index: np.ndarray
) -> tuple[pl.Series, pl.Series, pl.Series, pl.Series, pl.Series]:
    """(carts, lines, moves, checkouts, orders): a few carts per shopper, one line each (one unit added
    once: one move), half of them ordered."""
    counts = draw.counts(CART_SHARE * events_per_user + 0.1, MAX_CARTS)
    owner = np.repeat(np.arange(counts.shape[0]), counts)
    number = np.arange(owner.shape[0]) - np.repeat(np.cumsum(counts) - counts, counts)
    pick = draw.rng.integers(0, products.height, owner.shape[0])
    ordered = draw.rng.random(owner.shape[0]) < ORDERED
    changed = draw.times(owner)
    p = products.select(pl.all().gather(pick))
    cart_id = pl.format("c-{}-{}", pl.Series(index[owner]), pl.Series(number))
    rows = pl.DataFrame({"changed_at": changed, "ordered": ordered}).with_columns(
        cart_id=cart_id,
        checkout_at=pl.when("ordered").then("changed_at"),
        ordered_at=pl.when("ordered").then("changed_at"),
    )
    carts = list_column(
        counts, rows.select("cart_id", "changed_at", "checkout_at", "ordered_at"), PARTIAL_SCHEMA["carts"]
    )
    line_rows = rows.select(
        "cart_id",
        *[p[c] for c in ("product_id", "name", "category", "price", "image_url", "url")],
        pl.lit(1, dtype=pl.Int64).alias("added"),
        pl.lit(0, dtype=pl.Int64).alias("removed"),
        pl.col("changed_at").alias("last_ts"),
    )
    lines = list_column(counts, line_rows, PARTIAL_SCHEMA["lines"])
    move_rows = line_rows.select(
        "cart_id", "product_id", pl.col("last_ts").alias("ts"), pl.col("added").alias("units")
    )
    moves = list_column(counts, move_rows, PARTIAL_SCHEMA["moves"])
    order_rows = rows.with_columns(p["price"], p["product_id"], p["category"], owner=pl.Series(owner)).filter(
        "ordered"
    )
    order_rows = order_rows.select(
        pl.format("o-h-{}", pl.col("cart_id").str.slice(2)).alias("order_id"),
        "cart_id",
        pl.lit(None, dtype=pl.String).alias("checkout_id"),
        pl.col("price").alias("revenue"),
        "ordered_at",
        pl.concat_list("product_id").alias("products"),
        pl.concat_list("category").alias("categories"),
        pl.lit("EUR").alias("currency"),
        "owner",
    )
    per_user = np.bincount(order_rows["owner"].to_numpy(), minlength=counts.shape[0])
    orders = list_column(per_user, order_rows.drop("owner"), PARTIAL_SCHEMA["orders"])
    checkout_rows = order_rows.select(  # each ordered cart was checked out, naming its cart and order
        pl.col("cart_id").alias("checkout_key"),
        "checkout_id",
        "order_id",
        "cart_id",
        pl.col("ordered_at").alias("started_at"),
    )
    checkouts = list_column(per_user, checkout_rows, PARTIAL_SCHEMA["checkouts"])
    return carts, lines, moves, checkouts, orders


def pending_partials(
    people: pl.DataFrame, rows: int, *, past: Past, batches: tuple[int, int], salt: int = 0
) -> pl.DataFrame:
    """`rows` partials waiting for the next fold (PROFILE_UPDATES_SCHEMA) of random shoppers, from `batches`.

    They are states of a few events each (a batch's worth of activity per shopper), dated before QUIET
    like the base state, so they bring no candidate due in the measured batches either.
    """
    rng = np.random.default_rng([past.seed, 41, salt])
    picked = rng.choice(people.height, rows, replace=rows > people.height)
    sample = people.select(pl.all().gather(np.sort(picked)))
    _, end = activity(past)
    window = (end - timedelta(days=1), end)
    state = profile_states(sample, PARTIAL_EVENTS, seed=past.seed + salt, window=window)
    first, last = batches
    return state.with_columns(batch_id=pl.Series(rng.integers(first, last + 1, state.height)))
