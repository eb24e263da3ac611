"""A synthetic past for the scaling benchmarks: the simulator's shoppers and the events they sent before.

`lakemail simulate --users N --seed S` picks shoppers `u-000001`..`u-N` with an anonymous id hashed
from (S, index); `shoppers` derives the same ids and traits with NumPy, so a simulated batch lands on
users a pre-built lake already knows. `past_events` writes their past as `events` rows in the
simulator's event mix, over its catalog, vectorised: millions of rows a second instead of thousands.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import datetime

import numpy as np
import polars as pl

from benchmarks.past import Past, epoch_us
from simulator.population import MEMBER_SHARE, REGIONS
from simulator.shop import BRANDS, CATEGORIES, SHOP, make_catalog
from transforms.schema import EVENTS_SCHEMA, UTC_TS

NO_FIRST_NAME_BELOW = 26  # of 256: the simulator's 10 % of shoppers without a first name
CONSENT_BELOW = 218  # of 256: its 85 % with marketing consent
LOGGED_IN_SHARE = 0.1  # browsing events that carry a userId (the simulator's sessions log in late)
CART_DAYS = 3  # a shopper's cart id changes every few days
# (event_name, weight) of tracked events besides identify, after the simulator's session actions.
TRACKS: tuple[tuple[str | None, int], ...] = (
    (None, 12),  # a page view
    ("Product Viewed", 40),
    ("Products Searched", 10),
    ("Product Added", 12),
    ("Product Removed", 3),
    ("Cart Viewed", 5),
    ("Checkout Started", 3),
    ("Order Completed", 2),
)
CART_EVENTS = frozenset(
    {"Product Added", "Product Removed", "Cart Viewed", "Checkout Started", "Order Completed"}
)
QUERIES = (*CATEGORIES, *(noun.lower() for nouns in CATEGORIES.values() for noun in nouns))
PAGE = json.dumps({"url": f"{SHOP}/sale", "path": "/sale", "title": "Sale"})


def _hex(raw: np.ndarray) -> np.ndarray:
    """Rows of bytes (uint8) as rows of lowercase hex digits (ASCII codes)."""
    digits = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
    hexed = np.empty((raw.shape[0], raw.shape[1] * 2), dtype=np.uint8)
    hexed[:, 0::2], hexed[:, 1::2] = digits[raw >> 4], digits[raw & 15]
    return hexed


def _text(ascii_rows: np.ndarray) -> pl.Series:
    return pl.Series(ascii_rows.view(f"S{ascii_rows.shape[1]}").ravel(), dtype=pl.Binary).cast(pl.String)


def hex_text(raw: np.ndarray) -> pl.Series:
    """Rows of bytes as hex strings."""
    return _text(_hex(raw))


def uuid_text(raw: np.ndarray, *, version4: bool = False) -> pl.Series:
    """Rows of 16 bytes as UUID text; `version4` writes a 4 first in the third group, as the simulator."""
    hexed = _hex(raw)
    text = np.full((raw.shape[0], 36), ord("-"), dtype=np.uint8)
    for start, end, at in ((0, 8, 0), (8, 12, 9), (12, 16, 14), (16, 20, 19), (20, 32, 24)):
        text[:, at : at + end - start] = hexed[:, start:end]
    if version4:
        text[:, 14] = ord("4")
    return _text(text)


def shoppers(seed: int, users: int) -> pl.DataFrame:
    """Shoppers 1..`users` as `lakemail simulate --seed seed` creates them (ids, traits, membership)."""
    digests = bytearray()
    for index in range(1, users + 1):
        digests += hashlib.blake2b(f"lakemail-shopper-{seed}-{index}".encode(), digest_size=32).digest()
    raw = np.frombuffer(bytes(digests), dtype=np.uint8).reshape(users, 32)
    region = (raw[:, 16] % len(REGIONS)).astype(np.int64)
    per_region = len(REGIONS[0][2])
    names = [name for _, _, region_names in REGIONS for name in region_names]
    frame = pl.DataFrame(
        {
            "index": np.arange(1, users + 1, dtype=np.int64),
            "anonymous_id": uuid_text(raw[:, :16], version4=True),
            "region": region,
            "name_at": region * per_region + raw[:, 18] % per_region,
            "no_name": raw[:, 17] < NO_FIRST_NAME_BELOW,
            "consent": raw[:, 20] < CONSENT_BELOW,
        }
    )
    first_name = pl.col("name_at").replace_strict(dict(enumerate(names)), return_dtype=pl.String)
    return frame.select(
        "index",
        pl.format("u-{}", pl.col("index").cast(pl.String).str.zfill(6)).alias("user_id"),
        "anonymous_id",
        pl.format("shopper{}@example.com", "index").alias("email"),
        pl.when("no_name").then(None).otherwise(first_name).alias("first_name"),
        pl.col("region").replace_strict({i: r[1] for i, r in enumerate(REGIONS)}).alias("locale"),
        pl.col("region").replace_strict({i: r[0] for i, r in enumerate(REGIONS)}).alias("timezone"),
        "consent",
        (pl.col("index") % 10 < MEMBER_SHARE).alias("member"),
    )


def catalog_frame(seed: int) -> pl.DataFrame:
    """The simulator's catalog, with the event columns and JSON texts a product brings into events."""
    rows = []
    for row in make_catalog(seed):
        number = row["product_id"][2:]
        sku, brand = f"SKU-{row['category'][:3].upper()}-{number}", BRANDS[int(number) % len(BRANDS)]
        props = {
            "product_id": row["product_id"],
            "sku": sku,
            "category": row["category"],
            "name": row["name"],
        }
        props |= {"brand": brand, "price": row["price"], "currency": "EUR", "url": row["url"]}
        props |= {"image_url": row["image_url"], "quantity": 1}
        line = {k: props[k] for k in ("product_id", "name", "price", "quantity", "category")}
        rows.append(
            {**row, "sku": sku, "brand": brand, "props": json.dumps(props), "line": json.dumps([line])}
        )
    return pl.DataFrame(rows)


def past_events(
    people: pl.DataFrame,
    newcomers: pl.DataFrame,
    count: int,
    *,
    past: Past,
    window: tuple[datetime, datetime],
    salt: int = 0,
) -> pl.DataFrame:
    """`count` past events (EVENTS_SCHEMA) in `window`: `newcomers` identify, `people` browse and buy.

    `newcomers` (rows of `shoppers`) identify once each, so identities links their anonymous events;
    the other events go to `people` at random, in the simulator's mix. `batch_id` follows time, as
    micro-batches committed them, so a file's batch_id statistics cover only the window it holds.
    """
    start, end = (epoch_us(at) for at in window)
    rng = np.random.default_rng([past.seed, salt, start])
    weights = np.array([w for _, w in TRACKS], dtype=float)
    counts = rng.multinomial(max(count - newcomers.height, 0), weights / weights.sum())
    parts = [_identifies(newcomers)]
    products = catalog_frame(past.seed)
    for (name, _), n in zip(TRACKS, counts, strict=True):
        who = people.select(pl.all().gather(rng.integers(0, people.height, n)))
        product = products.select(pl.all().name.prefix("p_").gather(rng.integers(0, products.height, n)))
        parts.append(_tracks(pl.concat([who, product], how="horizontal"), name, rng.random(n)))
    frame = pl.concat(parts, how="diagonal_relaxed")
    at = rng.integers(start, end, frame.height)
    frame = frame.with_columns(
        event_id=uuid_text(rng.integers(0, 256, (frame.height, 16), dtype=np.uint8), version4=True),
        event_ts=pl.Series(at).cast(UTC_TS),
        batch_id=pl.Series(past.batch_of(at)),
        row=pl.int_range(pl.len()),
    )
    return _finish(frame)


def day_events(
    people: pl.DataFrame, past: Past, count: int, day: int, *, salt: int = 0, identify: bool = True
) -> pl.DataFrame:
    """Day `day`'s share of `count` past events of `people` (one `events` partition of the span).

    With `identify`, that day's share of the shoppers identify (each shopper on one day of the span).
    """
    days = past.days()
    total = sum(epoch_us(end) - epoch_us(start) for start, end in days)
    start, end = days[day]
    rows = count * (epoch_us(end) - epoch_us(start)) // total
    newcomers = people.slice(people.height * day // len(days), people.height * (day + 1) // len(days))
    newcomers = newcomers if identify else newcomers.clear()
    return past_events(people, newcomers, rows, past=past, window=(start, end), salt=salt)


def event_days(people: pl.DataFrame, past: Past, count: int) -> Iterator[pl.DataFrame]:
    """`count` past events of `people` over the span, a frame per day; every shopper identifies once."""
    for day in range(len(past.days())):
        yield day_events(people, past, count, day)


def _identifies(people: pl.DataFrame) -> pl.DataFrame:
    traits = pl.struct(
        "email", "first_name", "locale", "timezone", pl.col("consent").alias("marketing_consent")
    ).struct.json_encode()
    return people.select(
        pl.lit("identify").alias("event_type"),
        "index",
        "user_id",
        "anonymous_id",
        "locale",
        "timezone",
        traits.alias("traits"),
    )


def _tracks(frame: pl.DataFrame, name: str | None, r: np.ndarray) -> pl.DataFrame:
    """Tracked events (page views when `name` is None) of one kind; `frame`: shopper and p_ columns."""
    ordering = name in ("Checkout Started", "Order Completed")
    frame = frame.with_columns(
        # a few carts per shopper over the history; orders close them
        cart_id=pl.format("c-{}-{}", "index", pl.Series((r * 1000).astype(np.int64) % 3)),
        logged_in=pl.Series(r < LOGGED_IN_SHARE) | ordering,
    )
    cart = pl.col("cart_id")
    columns: dict[str, pl.Expr] = {
        "event_type": pl.lit("track" if name else "page"),
        "event_name": pl.lit(name, dtype=pl.String),
        "index": pl.col("index"),
        "user_id": pl.when("logged_in").then("user_id"),
        "anonymous_id": pl.col("anonymous_id"),
        "locale": pl.col("locale"),
        "timezone": pl.col("timezone"),
    }
    if name is None:
        columns |= {"url": pl.lit(f"{SHOP}/sale"), "properties": pl.lit(PAGE)}
    elif name == "Products Searched":
        query = pl.int_range(pl.len()).mod(len(QUERIES)).replace_strict(dict(enumerate(QUERIES)))
        columns |= {"query": query, "properties": pl.format('{{"query": "{}"}}', query)}
    elif name in ("Product Viewed", "Product Added", "Product Removed"):
        product = {c: pl.col(f"p_{c}") for c in ("product_id", "sku", "category", "brand", "price")}
        columns |= {**product, "product_name": pl.col("p_name"), "quantity": pl.lit(1, dtype=pl.Int64)}
        columns |= {"url": pl.col("p_url"), "image_url": pl.col("p_image_url"), "currency": pl.lit("EUR")}
        if name in CART_EVENTS:
            props = pl.format('{}, "cart_id": "{}"}}', pl.col("p_props").str.head(-1), cart)
            columns |= {"cart_id": cart, "properties": props}
        else:
            columns["properties"] = pl.col("p_props")
    else:
        columns |= {"cart_id": cart, "currency": pl.lit("EUR")}
        if ordering:
            total = pl.col("p_price")
            columns |= {"checkout_id": pl.format("k-{}", cart), "total": total, "products": pl.col("p_line")}
            head = pl.format(
                '{{"checkout_id": "k-{}", "cart_id": "{}", "total": {}, "currency": "EUR", ',
                cart,
                cart,
                total,
            )
            if name == "Order Completed":
                order_id = pl.format(
                    "o-{}", pl.int_range(pl.len()).cast(pl.String) + "-" + pl.col("index").cast(pl.String)
                )
                columns |= {"order_id": order_id, "revenue": total}
                head = pl.format('{{"order_id": "{}", {}', order_id, head.str.slice(1))
            columns["properties"] = pl.format('{}"products": {}}}', head, pl.col("p_line"))
        else:
            columns["properties"] = pl.format('{{"cart_id": "{}", "products": {}}}', cart, pl.col("p_line"))
    return frame.select([expr.alias(c) for c, expr in columns.items()])


def _finish(frame: pl.DataFrame) -> pl.DataFrame:
    """EVENTS_SCHEMA columns in order: times after event_ts, the file and line a batch took them from."""
    ts = pl.col("event_ts")
    derived = {
        "sent_at": ts + pl.duration(milliseconds=500),
        "received_at": ts + pl.duration(milliseconds=500),
        "landed_at": ts + pl.duration(seconds=1),
        "ingested_at": ts + pl.duration(seconds=3),
        "event_date": ts.dt.date(),
        "source_file": pl.format("events/history-{}.ndjson", pl.col("batch_id").cast(pl.String).str.zfill(6)),
        "source_line": 1 + pl.col("row") % 1000,
    }
    frame = frame.with_columns(**derived)
    return frame.select(
        [
            (pl.col(c) if c in frame.columns else pl.lit(None)).cast(dtype).alias(c)
            for c, dtype in EVENTS_SCHEMA.items()
        ]
    )
