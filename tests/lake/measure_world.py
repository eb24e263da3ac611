"""A small shop for the measurement tests, built as lakemail builds it: outbox rows from `send` decisions
and the rows a delivery attempt leaves (transforms.sends.rows), clicks as the collector's redirect lands
them (services.collector.clicks), orders as Segment messages, all read by the real ingest parser and
written to a real lake."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import polars as pl

from resources.lake import LakeResource
from services.collector.clicks import click_message
from tests.story import message
from transforms.ingest.files import process_file
from transforms.schema import SENDS_SCHEMA, TRIGGERS_SCHEMA
from transforms.sends.clicks import ClickLink, bot_reason
from transforms.sends.rows import Attempt, after_attempt, outbox_rows

T0 = datetime(2026, 11, 20, 12, tzinfo=UTC)
WINDOW = timedelta(days=5)
BROWSER = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 Version/17.5 Safari/605.1.15"


def hours(h: float) -> datetime:
    return T0 + timedelta(hours=h)


def decided(user: str, decision: str = "send", kind: str = "abandoned_cart") -> dict[str, Any]:
    """A decision of `kind` for `user` at T0 (arm a, or the holdout)."""
    row: dict[str, Any] = dict.fromkeys(TRIGGERS_SCHEMA)
    fields = {"trigger_id": f"t-{user}-{kind}", "kind": kind, "user_id": user, "principal": user}
    times = {"first_event_at": T0, "due_at": T0, "decided_at": T0}
    return row | fields | times | {"decision": decision, "variant": "a"}


def outbox(decisions: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The `pending` outbox rows of the `send` decisions, committed at T0, by user."""
    triggers = pl.DataFrame(decisions, schema=TRIGGERS_SCHEMA)
    landed = pl.DataFrame(
        schema={
            "principal": pl.String,
            "event_ts": TRIGGERS_SCHEMA["first_event_at"],
            "landed_at": pl.Datetime,
        }
    )
    rows = outbox_rows(triggers, landed, provider="sandbox", now=T0).to_dicts()
    return {row["user_id"]: row for row in rows}


def accepted(row: dict[str, Any], at: datetime) -> dict[str, Any]:
    """The row after the provider said yes at `at`."""
    return after_attempt(
        row, Attempt(status="sent", attempts=1, provider_message_id="m", answered_at=at), now=at
    )


def timed_out(row: dict[str, Any], at: datetime) -> dict[str, Any]:
    """The row after the provider call timed out once the request was sent: `unknown`, never resent."""
    return after_attempt(row, Attempt(status="unknown", attempts=1, last_error="timeout"), now=at)


def clicked(row: dict[str, Any], at: datetime, issued: datetime, agent: str = BROWSER) -> dict[str, Any]:
    """The collector's event of a click at `at` on a link of `row`'s email made at `issued`."""
    url, made = "https://shop.example/cart", issued.timestamp()
    link = ClickLink(row["send_id"], row["trigger_id"], row["kind"], "a", "cart", url, made)
    reason = bot_reason("GET", agent, link.issued_at, at)
    return {**click_message(link, user_agent=agent, reason=reason, at=at), "receivedAt": at.isoformat()}


def ordered(user: str, at: datetime, revenue: float, currency: str | None = "EUR") -> dict[str, Any]:
    fields: dict[str, Any] = {"order_id": f"o-{user}-{at:%H%M}", "revenue": revenue}
    return message("Order Completed", at, user=user, **fields, **({"currency": currency} if currency else {}))


def write(
    lake: LakeResource,
    decisions: list[dict[str, Any]],
    sends: list[dict[str, Any]],
    messages: list[dict[str, Any]],
) -> None:
    """The lake's `triggers`, `sends` and `events` (the messages through the ingest parser), rewritten."""
    lake.write("triggers", pl.DataFrame(decisions, schema=TRIGGERS_SCHEMA), mode="overwrite")
    lake.write("sends", pl.DataFrame(sends, schema=SENDS_SCHEMA), mode="overwrite")
    data = b"\n".join(orjson.dumps(m) for m in messages)
    landed = max(datetime.fromisoformat(m.get("receivedAt") or m["timestamp"]) for m in messages)
    result = process_file(data, source_file="b1", landed_at=landed, ingested_at=landed, batch_id=1)
    assert result.quarantine.height == 0, result.quarantine
    lake.write("events", result.events, mode="overwrite")
