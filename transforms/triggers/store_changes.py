"""What one engine run changes in the state store's decision namespaces (pure).

The store is an index of the lake (`stores.state.rebuild` derives it from `trigger_state` and the
`triggers` log): the changes below give, key for key and byte for byte, what a rebuild after the run
would hold for the keys the run touched. Values are encoded as the rebuild encodes them
(`transforms.state.encode` with the namespace's value schema).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import polars as pl

from transforms.schema import PENDING_DECISIONS, TRIGGERS_SCHEMA, UTC_TS
from transforms.state import StateChanges, encode
from transforms.state_keys import due_key, joined_key

RECENT_SENDS = timedelta(days=17)  # recent_sends keeps this much (stores.triggers.HISTORY)
DECIDED_COLUMNS = ("trigger_id", "kind", "user_id", "decision", "decided_at", "evaluation")
DECIDED_SCHEMA: dict[str, pl.DataType] = {c: TRIGGERS_SCHEMA[c] for c in DECIDED_COLUMNS}
SEND_SCHEMA: dict[str, pl.DataType] = {
    "trigger_id": pl.String(),
    "kind": pl.String(),
    "anchor": pl.String(),
    "decided_at": UTC_TS,
}
SENDS_VALUE: dict[str, pl.DataType] = {"sends": pl.List(pl.Struct(SEND_SCHEMA))}
ID_VALUE: dict[str, pl.DataType] = {"trigger_id": pl.String()}
SENT_ROWS: dict[str, pl.DataType] = {"user_id": pl.String(), **SEND_SCHEMA}


@dataclass
class Before:
    """What the store held before the run, for the keys its rows touch."""

    pending: pl.DataFrame  # TRIGGERS_SCHEMA: the pending rows of the run's trigger ids
    decided: set[str] = field(default_factory=set)  # of the run's trigger ids, those already decided
    sends: pl.DataFrame = field(
        default_factory=lambda: pl.DataFrame(schema=SENT_ROWS)
    )  # of the run's senders


def principal_key(principal: pl.Expr, trigger_id: pl.Expr) -> pl.Expr:
    """`pending_principals`' key: the principal, then the trigger id (a prefix scan finds a principal's)."""
    return joined_key(principal, trigger_id)


def _pairs(frame: pl.DataFrame, key: pl.Expr, schema: dict[str, pl.DataType]) -> dict[str, bytes]:
    encoded = encode(frame.lazy(), key, schema).collect()
    return {k: v.encode() for k, v in encoded.select("key", "value").iter_rows()}


def _index(pending: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(pending_due, pending_principals) pairs (`key`, `value`) of pending rows."""
    dated = pending.filter(pl.col("due_at").is_not_null())
    due = encode(dated.lazy(), due_key(pl.col("due_at"), pl.col("trigger_id")), ID_VALUE).collect()
    owners = encode(
        pending.lazy(), principal_key(pl.col("principal"), pl.col("trigger_id")), ID_VALUE
    ).collect()
    return due, owners


def latest_rows(rows: pl.DataFrame) -> pl.DataFrame:
    """The last row of each trigger id (as `stores.triggers_pending.apply` takes them: by evaluation, in
    order)."""
    return rows.sort("evaluation", maintain_order=True).unique("trigger_id", keep="last", maintain_order=True)


def pending_changes(changes: StateChanges, rows: pl.DataFrame, before: pl.DataFrame) -> None:
    """Pending rows put (with their due and principal index keys), terminal ones and old index keys gone.
    In bulk (`put_many`, `delete_many`): key by key it was a fifth of an engine run on a backlog (#17)."""
    latest = latest_rows(rows)
    pending = latest.filter(pl.col("decision").is_in(PENDING_DECISIONS))
    changes.put_many(
        "pending_triggers", encode(pending.lazy(), pl.col("trigger_id"), TRIGGERS_SCHEMA).collect()
    )
    changes.delete_many(
        "pending_triggers", latest.filter(~pl.col("decision").is_in(PENDING_DECISIONS))["trigger_id"]
    )
    due, owners = _index(pending)
    old_due, old_owners = _index(before.filter(pl.col("trigger_id").is_in(latest["trigger_id"].implode())))
    for namespace, new, old in (("pending_due", due, old_due), ("pending_principals", owners, old_owners)):
        changes.put_many(namespace, new)
        changes.delete_many(namespace, old.join(new, on="key", how="anti")["key"].unique())


def decided_changes(changes: StateChanges, rows: pl.DataFrame, decided: set[str]) -> None:
    """The first terminal decision of each trigger id not decided before."""
    terminal = rows.filter(
        ~pl.col("decision").is_in(PENDING_DECISIONS) & ~pl.col("trigger_id").is_in(list(decided))
    )
    first = terminal.sort("evaluation", "decided_at", "decision").unique("trigger_id", keep="first")
    changes.put_many("decided_triggers", encode(first.lazy(), pl.col("trigger_id"), DECIDED_SCHEMA).collect())


def sends_changes(changes: StateChanges, rows: pl.DataFrame, before: pl.DataFrame, now: datetime) -> None:
    """Each sender's `send` decisions of the last RECENT_SENDS before `now`, this run's added."""
    sent = rows.filter((pl.col("decision") == "send") & pl.col("user_id").is_not_null())
    if sent.height == 0:
        return
    users = sent["user_id"].unique()
    both = pl.concat([before.filter(pl.col("user_id").is_in(users.implode())), sent.select(list(SENT_ROWS))])
    kept = both.filter(pl.col("decided_at") >= now - RECENT_SENDS).unique()
    columns = list(SEND_SCHEMA)
    listed = kept.group_by("user_id").agg(pl.struct(columns).sort_by(columns).alias("sends"))
    pairs = _pairs(listed, pl.col("user_id"), SENDS_VALUE)
    for user in users:
        if user in pairs:
            changes.put("recent_sends", user, pairs[user])
        else:
            changes.delete("recent_sends", user)


def run_changes(rows: pl.DataFrame, before: Before, now: datetime) -> StateChanges:
    """The store changes of an engine run's log rows (TRIGGERS_SCHEMA) at `now`."""
    changes = StateChanges()
    if rows.height == 0:
        return changes
    pending_changes(changes, rows, before.pending)
    decided_changes(changes, rows, before.decided)
    sends_changes(changes, rows, before.sends, now)
    return changes
