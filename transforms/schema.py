"""The lake's table contract: each table's columns, key and Delta application-transaction ids (the
landed message format and the quarantine reason codes are in `transforms.spec`).

An application transaction (`app_id -> version`) is committed with a table's rows, so the table itself
records the last batch, fold or engine run that wrote it: a rerun reads it back and skips what is done.
"""

from __future__ import annotations

import polars as pl

from transforms.spec import CONTEXT_COLUMNS, PROPERTY_COLUMNS

UTC_TS = pl.Datetime("us", "UTC")


def batch_column(batch_id: int) -> pl.Expr:
    """The `batch_id` column every table a micro-batch writes carries: Int64, as the tables declare it
    (a bare `pl.lit` is Int32, and the table is created with the type of its first rows)."""
    return pl.lit(batch_id, dtype=pl.Int64).alias("batch_id")


# Application-transaction ids (the writer) and what each records as its version.
INGEST_APP_ID = "lakemail-ingest"  # the micro-batch number, on every table a batch writes; ingest_log last
UPDATES_APP = "lakemail-profile-updates"  # profile_updates: the last batch whose partials it holds
FOLD_APP = "lakemail-profile-fold"  # profile_state and profiles: the batch folded up to
RUN_APP = "lakemail-triggers"  # triggers: the engine run (`evaluation`); trigger_state: the run it is as of
BATCH_APP = "lakemail-triggers-batch"  # triggers and trigger_state: the last ingest batch the engine run saw
LOGGED_APP = "lakemail-triggers-logged"  # triggers: the rows all engine runs logged; trigger_state: as of it
SENDS_APP = "lakemail-sends"  # sends: the last trigger evaluation whose `send` decisions are in the outbox
READ_APP = "lakemail-triggers-read:"  # + a table name, on triggers: the version of it the engine run read


# key: event_id (append, tagged INGEST_APP_ID; partitioned by event_date): the messageId, a public write
# key's as `~public:<messageId>` (transforms.ingest.trust)
EVENTS_SCHEMA: dict[str, pl.DataType] = {
    "event_id": pl.String(),
    "event_type": pl.String(),
    "event_name": pl.String(),
    "user_id": pl.String(),
    "anonymous_id": pl.String(),
    "previous_id": pl.String(),  # alias: the id linked to user_id
    "group_id": pl.String(),  # group
    "page_name": pl.String(),  # page / screen `name`
    "page_category": pl.String(),  # page / screen `category`
    "event_ts": UTC_TS,
    "original_timestamp": UTC_TS,  # the client's clock, as Segment's `originalTimestamp`
    "sent_at": UTC_TS,
    "received_at": UTC_TS,
    "landed_at": UTC_TS,
    "ingested_at": UTC_TS,
    "event_date": pl.Date(),
    **{column: dtype for column, dtype in PROPERTY_COLUMNS.values()},
    **{column: dtype for column, dtype in CONTEXT_COLUMNS.values()},
    "properties": pl.String(),
    "traits": pl.String(),
    "context": pl.String(),  # JSON, the IP truncated
    "source_file": pl.String(),
    "source_line": pl.Int64(),
    "batch_id": pl.Int64(),
}

# key: source_file, source_line (append, tagged INGEST_APP_ID)
QUARANTINE_SCHEMA: dict[str, pl.DataType] = {
    "source_file": pl.String(),
    "source_line": pl.Int64(),
    "reason": pl.String(),
    "detail": pl.String(),
    "raw": pl.String(),
    "ingested_at": UTC_TS,
    "batch_id": pl.Int64(),
}

# key: source_file, batch_id (append, tagged INGEST_APP_ID: the last commit of a batch)
INGEST_LOG_SCHEMA: dict[str, pl.DataType] = {
    "source_file": pl.String(),
    "bytes": pl.Int64(),
    "sha256": pl.String(),
    "lines": pl.Int64(),
    "accepted": pl.Int64(),
    "quarantined": pl.Int64(),
    "duplicates": pl.Int64(),
    "batch_id": pl.Int64(),
    "status": pl.String(),
    "detail": pl.String(),
    "landed_at": UTC_TS,  # when the file appeared in the landing zone (its ctime when first taken)
    "committed_at": UTC_TS,
    # its mtime as its producer left it: with path and bytes, what tells one landing from the next (null in
    # rows from before it was recorded, whose landed_at is that mtime)
    "modified_at": UTC_TS,
}

# key: anonymous_id, user_id (tagged INGEST_APP_ID)
IDENTITIES_SCHEMA: dict[str, pl.DataType] = {
    "anonymous_id": pl.String(),  # or an alias's previousId: an anonymous id or an earlier user id
    "user_id": pl.String(),
    "first_seen_at": UTC_TS,
    # the earliest `alias` naming anonymous_id as its previousId and user_id as its userId (null: none did,
    # or it was ingested before this column): such a previous id, as a user id, is the user's too
    # (transforms.profiles.aliases)
    "aliased_at": UTC_TS,
}

# A cart line as profiles keep it (and as email templates get it, joined to the catalog).
CART_LINE = pl.Struct(
    {
        "product_id": pl.String(),
        "name": pl.String(),
        "category": pl.String(),
        "quantity": pl.Int64(),
        "price": pl.Float64(),
        "image_url": pl.String(),
        "url": pl.String(),
    }
)

# key: user_id (rewritten by each fold, tagged FOLD_APP). `profile_state` and `profile_updates` hold
# partial states (transforms.profiles.tables); a micro-batch folds the updates into the state once
# FOLD_EVERY_ROWS of them wait.
FOLD_EVERY_ROWS = 250_000
PROFILES_SCHEMA: dict[str, pl.DataType] = {
    "user_id": pl.String(),
    "email": pl.String(),
    "first_name": pl.String(),
    "timezone": pl.String(),
    "locale": pl.String(),
    "loyalty_tier": pl.String(),
    "marketing_consent": pl.Boolean(),
    "cart_id": pl.String(),
    "cart_items": pl.List(CART_LINE),
    "cart_value": pl.Float64(),
    "cart_updated_at": UTC_TS,
    "last_checkout_at": UTC_TS,
    "last_order_at": UTC_TS,
    "order_count": pl.Int64(),
    "lifetime_value": pl.Float64(),
    "purchased_products": pl.List(pl.String()),
    "recent_views": pl.List(pl.String()),  # product ids, most recent first
    "recent_searches": pl.List(pl.String()),  # queries, most recent first
    "top_category": pl.String(),
    "engagement_score": pl.Float64(),
    "identified_at": UTC_TS,  # first identify with an email
    "last_seen_at": UTC_TS,
    "as_of": UTC_TS,
}

# key: user_id (rewritten whole, tagged INGEST_APP_ID)
CUSTOMERS_SCHEMA: dict[str, pl.DataType] = {
    "user_id": pl.String(),
    "email": pl.String(),
    "first_name": pl.String(),
    "locale": pl.String(),
    "timezone": pl.String(),
    "loyalty_tier": pl.String(),
    "marketing_consent": pl.Boolean(),
    "updated_at": UTC_TS,
}

# key: product_id (rewritten whole, tagged INGEST_APP_ID)
CATALOG_SCHEMA: dict[str, pl.DataType] = {
    "product_id": pl.String(),
    "name": pl.String(),
    "category": pl.String(),
    "price": pl.Float64(),
    "currency": pl.String(),
    "stock": pl.Int64(),
    "url": pl.String(),
    "image_url": pl.String(),
    "updated_at": UTC_TS,
}

# A restock or price drop as the ingest finds it; `catalog_changes` adds the batch that found it.
CATALOG_CHANGE_SCHEMA: dict[str, pl.DataType] = {
    "product_id": pl.String(),
    "change": pl.String(),  # back_in_stock | price_drop
    "old_value": pl.Float64(),
    "new_value": pl.Float64(),
    "changed_at": UTC_TS,
}
# key: product_id, change, changed_at, batch_id (append, tagged INGEST_APP_ID)
CATALOG_CHANGES_SCHEMA: dict[str, pl.DataType] = {**CATALOG_CHANGE_SCHEMA, "batch_id": pl.Int64()}

TERMINAL_DECISIONS = (
    "send",
    "exited",
    "suppressed",
    "capped",
    "cooldown",
    "holdout",
    "expired",
    "no_consent",
    "no_address",
)
PENDING_DECISIONS = ("held", "quiet_hours_deferred")
# `triggers`: the decision log, appended once per engine run (tagged RUN_APP, BATCH_APP, LOGGED_APP and
# READ_APP); a terminal decision is unique per trigger_id. `trigger_state`: the same columns, a checkpoint
# of the pending candidates as of the run its RUN_APP names, rewritten once the rows logged since are many
# (`stores.triggers_pending`: the pending set is the checkpoint with the later runs' rows applied).
TRIGGERS_SCHEMA: dict[str, pl.DataType] = {
    "trigger_id": pl.String(),
    "kind": pl.String(),
    "user_id": pl.String(),  # null while the candidate's shopper is anonymous
    "principal": pl.String(),  # the key its events came under (a user id or `anon:<anonymous_id>`)
    "anchor": pl.String(),
    "decision": pl.String(),
    "reason": pl.String(),
    "variant": pl.String(),
    "decided_at": UTC_TS,
    "due_at": UTC_TS,
    "expires_at": UTC_TS,
    "first_event_at": UTC_TS,
    "detail": pl.String(),
    "lake_version": pl.Int64(),
    "batch_id": pl.Int64(),  # the last ingest batch the decision saw
    "evaluation": pl.Int64(),  # the engine run that wrote the row (its Delta transaction version)
}

# key: send_id (the outbox: inserted before any HTTP call, then updated by status)
SEND_STATUSES = ("pending", "sent", "retrying", "failed_permanent", "unknown", "aborted")
SENDS_SCHEMA: dict[str, pl.DataType] = {
    "send_id": pl.String(),
    "trigger_id": pl.String(),
    "user_id": pl.String(),
    "kind": pl.String(),
    "template": pl.String(),
    "variant": pl.String(),
    "fallbacks": pl.String(),  # JSON list of {"block", "reason"}
    "provider": pl.String(),
    "provider_message_id": pl.String(),
    "status": pl.String(),
    "attempts": pl.Int64(),
    "last_error": pl.String(),
    "first_event_at": UTC_TS,  # the decision's first event (event time)
    "landed_at": UTC_TS,  # when that event's file landed
    "due_at": UTC_TS,  # when the decision's delay passed
    "created_at": UTC_TS,  # the outbox commit, before any HTTP call
    "sent_at": UTC_TS,  # when the provider accepted it
    "latency_ms": pl.Int64(),  # sent_at - max(landed_at, due_at): the time the system added
    "next_attempt_at": UTC_TS,  # when a waiting row is tried (or an `unknown` one looked up) again
}

# Written by erasures and unsubscribes. suppressions, key: user_key, reason (an HMAC, never the id).
SUPPRESSIONS_SCHEMA: dict[str, pl.DataType] = {
    "user_key": pl.String(),
    "reason": pl.String(),
    "since": UTC_TS,
}
# key: event_date, event_type, event_name (running totals of erased events)
ERASED_DAILY_SCHEMA: dict[str, pl.DataType] = {
    "event_date": pl.Date(),
    "event_type": pl.String(),
    "event_name": pl.String(),
    "events": pl.Int64(),
}
# key: request_id (one certificate per erasure request)
ERASURES_SCHEMA: dict[str, pl.DataType] = {
    "request_id": pl.String(),
    "user_key": pl.String(),
    "erased_at": UTC_TS,
    "passed": pl.Boolean(),
    "certificate": pl.String(),
}

# Columns whose min/max may enter the Delta log as file statistics. Person-identifying columns (user
# and anonymous ids, traits, raw lines) never do, so an erasure can leave no trace in `_delta_log`.
STATS_COLUMNS: dict[str, tuple[str, ...]] = {
    "events": (
        "event_id",
        "event_type",
        "event_name",
        "event_ts",
        "received_at",
        "landed_at",
        "ingested_at",
        "event_date",
        "product_id",
        "source_file",
        "source_line",
        "batch_id",
    ),
    "quarantine": ("source_file", "source_line", "reason", "ingested_at", "batch_id"),
    "ingest_log": ("source_file", "batch_id", "status", "landed_at", "committed_at"),
    "identities": ("first_seen_at",),
    "audit_results": ("audit", "run_at", "passed"),
    "suppressions": ("reason", "since"),
    "erased_events_daily": ("event_date", "event_type", "event_name"),
    "erasures": ("request_id", "erased_at", "passed"),
    "profiles": ("cart_updated_at", "last_order_at", "last_seen_at", "as_of"),
    "profile_updates": ("batch_id", "first_ts", "last_ts"),
    "customers": ("updated_at",),
    "catalog": ("product_id", "category", "stock", "updated_at"),
    "catalog_changes": ("product_id", "change", "changed_at", "batch_id"),
    "triggers": ("trigger_id", "kind", "decision", "decided_at", "due_at", "batch_id", "evaluation"),
    "trigger_state": ("trigger_id", "kind", "decision", "due_at", "evaluation"),
    "profile_state": ("first_ts", "last_ts"),
    "sends": ("send_id", "trigger_id", "kind", "status", "created_at", "sent_at", "next_attempt_at"),
    "attributions": ("order_event_id", "send_id", "kind", "rule", "sent_at", "converted_at"),
    "experiments": ("kind", "arm", "day", "computed_at"),
}
