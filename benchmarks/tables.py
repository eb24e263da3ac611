"""The smaller tables of a synthetic past, as frames: CRM, catalog, ingest log, quarantine, decision log.

Each follows what a micro-batch writes (the schemas in transforms.schema); the decision log's size is an
assumption, stated where it is set.
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import polars as pl

from benchmarks.past import EPOCH, Past
from benchmarks.shop import catalog_frame, hex_text
from transforms.erasure.records import user_key
from transforms.principals import user_principal
from transforms.schema import (
    CATALOG_SCHEMA,
    CUSTOMERS_SCHEMA,
    INGEST_LOG_SCHEMA,
    QUARANTINE_SCHEMA,
    SUPPRESSIONS_SCHEMA,
    TRIGGERS_SCHEMA,
    UTC_TS,
)

# Decision-log rows per past event. A 20k-event simulation through `lakemail process` logged 0.2 (most
# of them `held` rows of carts still changing, re-logged at each change); the simulator's shoppers act
# every few seconds, so a real shop, whose shoppers come back after days, logs fewer: 0.1 is assumed.
DECISIONS_PER_EVENT = 0.1
QUARANTINED_PER_LINE = 0.002  # the simulator's malformed-line rate
UNSUBSCRIBED_SHARE = 0.01
KINDS = (
    "abandoned_cart",
    "browse_abandonment",
    "welcome",
    "post_purchase",
    "abandoned_checkout",
    "price_drop",
)
# No `send`: the outbox (`sends`) has no past rows, and its first run would enqueue and
# deliver every past `send` decision it found.
DECISIONS = (
    "held",
    "exited",
    "no_consent",
    "holdout",
    "capped",
    "quiet_hours_deferred",
    "no_address",
    "expired",
)
DECISION_WEIGHTS = (0.40, 0.30, 0.10, 0.05, 0.05, 0.05, 0.03, 0.02)


def customers_rows(people: pl.DataFrame, past: Past) -> pl.DataFrame:
    """The CRM's members (the simulator's 30 %), as `customers` holds them."""
    tier = (pl.col("index") % 9).replace_strict(
        {0: "bronze", 1: "bronze", 6: "gold", 7: "gold", 8: "gold"}, default="silver"
    )
    return (
        people.filter("member")
        .select(
            "user_id",
            "email",
            "first_name",
            "locale",
            "timezone",
            tier.alias("loyalty_tier"),
            pl.col("consent").alias("marketing_consent"),
            pl.lit(past.now - past.span, dtype=UTC_TS).alias("updated_at"),
        )
        .select([pl.col(c).cast(t) for c, t in CUSTOMERS_SCHEMA.items()])
    )


def catalog_rows(past: Past) -> pl.DataFrame:
    at = pl.lit(past.now - past.span, dtype=UTC_TS).alias("updated_at")
    return (
        catalog_frame(past.seed)
        .with_columns(at)
        .select([pl.col(c).cast(t) for c, t in CATALOG_SCHEMA.items()])
    )


def ingest_log_rows(past: Past) -> pl.DataFrame:
    """One landed file per past batch (the files themselves are not in the landing zone)."""
    rng = np.random.default_rng([past.seed, 23])
    batch = pl.int_range(1, past.batches + 1, dtype=pl.Int64)
    lines = past.events // past.batches
    frame = pl.select(batch.alias("batch_id")).with_columns(
        pl.format("events/history-{}.ndjson", pl.col("batch_id").cast(pl.String).str.zfill(6)).alias(
            "source_file"
        ),
        pl.lit(lines * 330).alias("bytes"),
        hex_text(rng.integers(0, 256, (past.batches, 32), dtype=np.uint8)).alias("sha256"),
        pl.lit(lines).alias("lines"),
        pl.lit(lines).alias("accepted"),
        pl.lit(0).alias("quarantined"),
        pl.lit(0).alias("duplicates"),
        pl.lit("committed").alias("status"),
        pl.lit(None, dtype=pl.String).alias("detail"),
        past.batch_time(pl.col("batch_id")).alias("landed_at"),
        (past.batch_time(pl.col("batch_id")) + pl.duration(seconds=3)).alias("committed_at"),
        # The file's mtime, as its producer left it (what tells this landing from a later one of the path:
        # `history_lake._land` gives the sparse file the same, or every past file would be taken again).
        past.batch_time(pl.col("batch_id")).alias("modified_at"),
    )
    return frame.select([pl.col(c).cast(t) for c, t in INGEST_LOG_SCHEMA.items()])


def quarantine_rows(past: Past) -> pl.DataFrame:
    n = int(past.events * QUARANTINED_PER_LINE)
    rng = np.random.default_rng([past.seed, 29])
    batch = pl.Series(rng.integers(1, past.batches + 1, n))
    return (
        pl.DataFrame({"batch_id": batch})
        .select(
            pl.format("events/history-{}.ndjson", pl.col("batch_id").cast(pl.String).str.zfill(6)).alias(
                "source_file"
            ),
            pl.Series(rng.integers(1, past.events_per_batch, n)).alias("source_line"),
            pl.lit("invalid_json").alias("reason"),
            pl.lit("expected value at line 1 column 1").alias("detail"),
            pl.lit('{"type": "track", "event": "Product Viewed", "properties": {').alias("raw"),
            past.batch_time(pl.col("batch_id")).alias("ingested_at"),
            "batch_id",
        )
        .select([pl.col(c).cast(t) for c, t in QUARANTINE_SCHEMA.items()])
    )


def suppressions_rows(people: pl.DataFrame, past: Past, secret: str) -> pl.DataFrame:
    """Unsubscribed users (1 %), keyed by HMAC as `record_unsubscribes` keys them."""
    chosen = people.filter(pl.col("index") % int(1 / UNSUBSCRIBED_SHARE) == 0)["user_id"]
    keys = [user_key(u, secret) for u in chosen]
    since = pl.lit(past.now - past.span, dtype=UTC_TS)
    return (
        pl.DataFrame({"user_key": keys}, schema={"user_key": pl.String})
        .select("user_key", pl.lit("unsubscribed").alias("reason"), since.alias("since"))
        .select([pl.col(c).cast(t) for c, t in SUPPRESSIONS_SCHEMA.items()])
    )


def decision_rows(people: pl.DataFrame, past: Past, quiet: timedelta, *, salt: int = 0) -> pl.DataFrame:
    """The decision log of the past (TRIGGERS_SCHEMA), `DECISIONS_PER_EVENT` rows per past event.

    Decisions end `quiet` before `now`: the profile state has no activity after that either. Ids are
    random, so none equals a candidate the measured batches propose; the log counts for what reading it
    costs (`_with_decided`, `_history`, checks), not for which candidates it settles.
    """
    n = int(past.events * DECISIONS_PER_EVENT)
    rng = np.random.default_rng([past.seed, 31, salt])
    span_us = (past.span - quiet) // timedelta(microseconds=1)
    end_us = (past.now - quiet - EPOCH) // timedelta(microseconds=1)
    decided = end_us - rng.integers(0, span_us, n)
    batch = 1 + (decided - (end_us - span_us)) * past.batches // (span_us + 1)
    owner = rng.integers(0, people.height, n)
    frame = pl.DataFrame(
        {
            "trigger_id": "t-" + hex_text(rng.integers(0, 256, (n, 12), dtype=np.uint8)),
            "kind": pl.Series(KINDS).gather(rng.integers(0, len(KINDS), n)),
            "user_id": people["user_id"].gather(owner),
            "decision": pl.Series(DECISIONS).gather(rng.choice(len(DECISIONS), n, p=DECISION_WEIGHTS)),
            "decided_at": pl.Series(decided).cast(UTC_TS),
            "batch_id": pl.Series(batch),
        }
    )
    return (
        frame.select(
            "trigger_id",
            "kind",
            "user_id",
            user_principal(pl.col("user_id")).alias("principal"),
            pl.format("a-{}", pl.col("batch_id")).alias("anchor"),
            "decision",
            pl.lit("synthetic past decision").alias("reason"),
            pl.lit("a").alias("variant"),
            "decided_at",
            (pl.col("decided_at") + pl.duration(hours=1)).alias("due_at"),
            (pl.col("decided_at") + pl.duration(hours=25)).alias("expires_at"),
            pl.col("decided_at").alias("first_event_at"),
            pl.lit(None, dtype=pl.String).alias("detail"),
            pl.col("batch_id").alias("lake_version"),
            "batch_id",
            pl.col("batch_id").alias("evaluation"),
        )
        .sort("decided_at")
        .select([pl.col(c).cast(t) for c, t in TRIGGERS_SCHEMA.items()])
    )
