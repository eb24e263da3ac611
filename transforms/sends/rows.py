"""The outbox, pure part: which decisions become outbox rows, and what a row says after each step.

A `sends` row exists once per `send_id` (deterministic from the trigger id). It is committed as
`pending` before any HTTP call; later commits move it to `sent`, `retrying`, `unknown`,
`failed_permanent` or `aborted`. Only `pending` and `retrying` rows (and `unknown` ones a provider
can look up, or dedupes when they are sent again) are picked up again, each at its `next_attempt_at`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import polars as pl

from transforms.schema import SENDS_SCHEMA
from transforms.sends.message import send_id_for

WAITING = ("pending", "retrying")  # rows a run delivers when their next_attempt_at has come
FIRST_RETRY = timedelta(seconds=15)  # after a run's attempts ran out; doubles per earlier attempt
MAX_RETRY = timedelta(minutes=15)
# Doublings of FIRST_RETRY that reach MAX_RETRY: more would only be capped (and a row of a provider down
# for hours has attempts enough for 2**attempts to overflow a timedelta).
MAX_DOUBLINGS = math.ceil(math.log2(MAX_RETRY / FIRST_RETRY))
CIRCUIT_COOL_OFF = timedelta(seconds=30)  # the provider refused our credentials: wait, then try one
LOOKUP_AFTER = timedelta(seconds=10)  # an `unknown` send is looked up at the provider after this
# An `unknown` send of a provider that dedupes on its idempotency key is sent again (same key, the retry
# backoff) until its row has made this many attempts in all; then it stays `unknown`, due no more.
MAX_RESEND_ATTEMPTS = 10
# A 429 naming its window pauses every call to the provider until it ends. The window lives in the outbox:
# the row that heard the 429 (`rate_limited: HTTP 429...`) and the rows held by it, uncalled
# (`rate_limited`), are all due at its end; a run reads it from them (`rate_limit_holds`).
RATE_LIMITED = "rate_limited"


@dataclass(frozen=True)
class Attempt:
    """What one run's delivery of a row came to (the provider's answer, already classified)."""

    status: str  # sent, retrying, unknown, failed_permanent
    attempts: int
    provider_message_id: str | None = None
    last_error: str | None = None
    circuit_open: bool = False
    retry_in: float | None = None  # seconds the provider asked us to wait, when it asked
    answered_at: datetime | None = None  # wall clock of the provider's yes (None: not seen by this run)
    rate_limited: bool = False  # a 429 that named its window (`retry_in`): the row is due at its end


def outbox_rows(
    decisions: pl.DataFrame, landed: pl.DataFrame, *, provider: str, now: datetime
) -> pl.DataFrame:
    """`pending` rows (SENDS_SCHEMA) for `send` decisions (TRIGGERS_SCHEMA rows), one per trigger_id.

    `landed` (principal, event_ts, landed_at) gives the landing time of each decision's first event.
    """
    sends = (
        decisions.filter(pl.col("decision") == "send").unique("trigger_id", keep="first").sort("trigger_id")
    )
    landed_at = landed.group_by("principal", pl.col("event_ts").alias("first_event_at")).agg(
        pl.col("landed_at").min()
    )
    rows = sends.join(landed_at, on=["principal", "first_event_at"], how="left")
    return rows.select(
        pl.Series("send_id", [send_id_for(t) for t in rows["trigger_id"]], pl.String),
        "trigger_id",
        "user_id",
        "kind",
        pl.col("kind").alias("template"),
        "variant",
        pl.lit("[]").alias("fallbacks"),
        pl.lit(provider).alias("provider"),
        pl.lit(None, pl.String).alias("provider_message_id"),
        pl.lit("pending").alias("status"),
        pl.lit(0, pl.Int64).alias("attempts"),
        pl.lit(None, pl.String).alias("last_error"),
        "first_event_at",
        "landed_at",
        "due_at",
        pl.lit(now).alias("created_at"),
        pl.lit(None, SENDS_SCHEMA["sent_at"]).alias("sent_at"),
        pl.lit(None, pl.Int64).alias("latency_ms"),
        pl.lit(now).alias("next_attempt_at"),
    ).cast(dict(SENDS_SCHEMA))  # type: ignore[arg-type]


def held_since(rows: pl.DataFrame) -> datetime | None:
    """The least `created_at` an outbox row already holding a send id of `rows` (`outbox_rows`) can have:
    their least `due_at`; None when one is null (a decision of an earlier release) or there are none.

    Why no held row lies before (#17: `enqueue` looked them up in every file of the outbox): a send id is
    its trigger's (`send_id_for`), and a row of it is made only by `outbox_rows`, created at the `now` of
    an `enqueue` of a `send` decision of that trigger (the MERGEs that write statuses copy `created_at`).
    A trigger has one `send` decision (a renewed instance takes an id of its own; the blocking
    `triggers_terminal_decision_unique`), so a held row was made by an earlier enqueue of the very decision
    taken again now (its evaluation taken twice: an outbox without the SENDS_APP tag, as of an earlier
    release). That enqueue ran in the decide-lane run that decided it or a later one (the lane's runs take
    turns under its lock; the sends step follows the triggers step), at a `now` no earlier than the
    decision's `decided_at`, and a `send` is decided only once due: at or after the `due_at` its row
    carries. `due_at` rather than `decided_at` (the row does not carry it): a margin of the decision's
    lateness for a wall clock that stepped back. A run whose `--now` went back past it could miss a held
    row and add a second; the sent-once audits read the whole outbox and find it.
    """
    least = rows["due_at"].min()
    return None if rows["due_at"].null_count() or not isinstance(least, datetime) else least


def trigger_facts(trigger: Mapping[str, Any]) -> dict[str, Any]:
    """The decision's facts content needs: its anchor and what the rule noted in `detail` (a price
    drop's old price, the cart a checkout named, the products of a post_purchase's order)."""
    facts: dict[str, Any] = {"anchor": trigger.get("anchor")}
    try:
        detail = json.loads(trigger.get("detail") or "{}")
    except json.JSONDecodeError:
        detail = {}
    if not isinstance(detail, dict):
        return facts
    if isinstance(detail.get("old"), int | float):
        facts["old_price"] = float(detail["old"])
    if isinstance(detail.get("cart_id"), str):
        facts["cart_id"] = detail["cart_id"]
    if isinstance(products := detail.get("products"), list):
        facts["products"] = [p for p in products if isinstance(p, str)]
    return facts


def latency_ms(sent_at: datetime, landed_at: datetime | None, due_at: datetime | None) -> int | None:
    """From the moment the email could go (its event landed and its delay passed) to the provider's yes."""
    start = max((t for t in (landed_at, due_at) if t is not None), default=None)
    return None if start is None else max(0, round((sent_at - start).total_seconds() * 1000))


@dataclass(frozen=True)
class Waits:
    """How long rows wait between runs: after a refused key, and before an `unknown` one is asked about
    (or, where the provider dedupes on the send's key and cannot be asked, sent again)."""

    cool_off: timedelta = CIRCUIT_COOL_OFF
    lookup_after: timedelta | None = LOOKUP_AFTER  # None: the provider cannot be asked, so never
    resend_unknown: bool = False  # (no look-up) the provider dedupes a resend: send it again, backing off


def retry_at(now: datetime, attempt: Attempt, attempts_so_far: int, waits: Waits = Waits()) -> datetime:
    """When a `retrying` row is next due: the circuit cool-off; the end of a rate-limit window, to the
    second (every row it holds is due then); else the provider's hint or the run backoff, the longer."""
    if attempt.circuit_open:
        return now + waits.cool_off
    if attempt.rate_limited and attempt.retry_in:
        return now + timedelta(seconds=attempt.retry_in)
    backoff = min(MAX_RETRY, FIRST_RETRY * 2 ** min(max(0, attempts_so_far), MAX_DOUBLINGS))
    hinted = timedelta(seconds=attempt.retry_in) if attempt.retry_in is not None else timedelta(0)
    return now + max(backoff, hinted)


def after_attempt(
    row: Mapping[str, Any],
    attempt: Attempt,
    *,
    now: datetime,
    waits: Waits = Waits(),
    offset: timedelta = timedelta(0),
) -> dict[str, Any]:
    """The row after one run's delivery attempts; every wait counts from the run's `now`.

    `offset` (the run's clock minus the wall clock; zero unless the run config set `now`) puts the
    wall-clock facts, when the event landed and when the provider said yes, on the run's timeline.
    """
    runs = int(row.get("attempts") or 0)
    updated = {
        **row,
        "status": attempt.status,
        "attempts": runs + attempt.attempts,
        "last_error": attempt.last_error,
        "provider_message_id": attempt.provider_message_id or row.get("provider_message_id"),
        "next_attempt_at": None,
    }
    if attempt.status == "sent":
        sent_at = now if attempt.answered_at is None else attempt.answered_at + offset
        landed = row.get("landed_at")
        updated["sent_at"] = sent_at
        updated["latency_ms"] = latency_ms(sent_at, landed and landed + offset, row.get("due_at"))
    elif attempt.status == "retrying":
        updated["next_attempt_at"] = retry_at(now, attempt, runs, waits)
    elif attempt.status == "unknown":
        updated["next_attempt_at"] = unknown_due(now, attempt, runs, waits)
    return updated


def unknown_due(now: datetime, attempt: Attempt, runs: int, waits: Waits) -> datetime | None:
    """When an `unknown` row is due again: to be looked up, or sent again with the same idempotency key
    as a `retrying` one would be (None: never, nobody can settle it)."""
    if waits.lookup_after is not None:
        return now + waits.lookup_after
    if waits.resend_unknown and runs + attempt.attempts < MAX_RESEND_ATTEMPTS:
        return retry_at(now, attempt, runs, waits)
    return None


def rate_limit_holds() -> pl.Expr:
    """Whether an outbox row (still to be tried) is held by the provider's rate-limit window: its
    `next_attempt_at` is the window's end."""
    return pl.col("status").is_in([*WAITING, "unknown"]) & pl.col("last_error").str.starts_with(RATE_LIMITED)


def aborted(
    row: Mapping[str, Any], reason: str, fallbacks: list[dict[str, str]] | None = None
) -> dict[str, Any]:
    """The row of an email that must not (or cannot) go out; `reason` names why, never person data."""
    return {
        **row,
        "status": "aborted",
        "last_error": reason,
        "next_attempt_at": None,
        "fallbacks": json.dumps(
            fallbacks if fallbacks is not None else json.loads(row.get("fallbacks") or "[]")
        ),
    }


def run_summary(rows: pl.DataFrame) -> dict[str, Any]:
    """Counts by status, retried and fallback use, and latency p50/p95 over the rows this run touched."""
    counts = dict(rows.group_by("status").len().iter_rows()) if rows.height else {}
    sent = rows.filter(pl.col("status") == "sent")
    latency = sent["latency_ms"].drop_nulls()
    fallbacks: dict[str, int] = {}
    for text in rows["fallbacks"].drop_nulls():
        for used in json.loads(text):
            key = f"{used['block']}:{used['reason']}"
            fallbacks[key] = fallbacks.get(key, 0) + 1
    return {
        "sent": int(counts.get("sent", 0)),
        "retried": int(rows.filter(pl.col("attempts") > 1).height),
        "failed": int(counts.get("failed_permanent", 0)),
        "aborted": int(counts.get("aborted", 0)),
        "unknown": int(counts.get("unknown", 0)),
        "waiting": int(counts.get("retrying", 0) + counts.get("pending", 0)),
        "fallbacks": fallbacks,
        "latency_p50_ms": _quantile(latency, 0.5),
        "latency_p95_ms": _quantile(latency, 0.95),
    }


def _quantile(values: pl.Series, q: float) -> int | None:
    found = values.quantile(q, "linear") if values.len() else None
    return None if found is None else round(float(found))
