"""Attribution (#19): each order credited to at most one send, by the last click in the window, else the
last send in it; clicks by bots and link scanners do not count."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from transforms.measure.attribution import EVENT_COLUMNS, attribute, clicks_of, delivered, orders_of
from transforms.schema import EVENTS_SCHEMA, IDENTITIES_SCHEMA, SENDS_SCHEMA

T0 = datetime(2026, 3, 2, 9, tzinfo=UTC)
WINDOW = timedelta(days=5)


def hours(h: float) -> datetime:
    return T0 + timedelta(hours=h)


def send(send_id: str, at: float, user: str = "u-1", kind: str = "abandoned_cart") -> dict[str, object]:
    row = dict.fromkeys(SENDS_SCHEMA)
    trigger = "t-" + send_id
    ids = {"send_id": send_id, "trigger_id": trigger, "user_id": user, "kind": kind, "variant": "a"}
    return row | ids | {"status": "sent", "sent_at": hours(at)}


def event(event_id: str, name: str, at: float, **fields: object) -> dict[str, object]:
    return (
        dict.fromkeys(EVENT_COLUMNS)
        | {"event_id": event_id, "event_name": name, "event_ts": hours(at)}
        | fields
    )


def order(event_id: str, at: float, user: str | None = "u-1", **fields: object) -> dict[str, object]:
    return event(event_id, "Order Completed", at, user_id=user, revenue=40.0, currency="EUR", **fields)


def click(event_id: str, send_id: str, at: float, bot: bool = False) -> dict[str, object]:
    props = json.dumps({"send_id": send_id, "bot": bot})
    return event(event_id, "Email Link Clicked", at, anonymous_id=send_id, properties=props)


def credit(
    sends: list[dict[str, object]],
    events: list[dict[str, object]],
    identities: list[dict[str, object]] | None = None,
) -> pl.DataFrame:
    frame = pl.DataFrame(events, schema={c: EVENTS_SCHEMA[c] for c in EVENT_COLUMNS})
    ids = pl.DataFrame(identities or [], schema=IDENTITIES_SCHEMA)
    outbox = pl.DataFrame(sends, schema=SENDS_SCHEMA)
    clicks = clicks_of(frame, outbox)
    sent = delivered(outbox, clicks)
    return attribute(orders_of(frame, ids), sent, clicks, WINDOW)


CASES = {
    "click then order: the clicked send": (
        [send("s-a", 0), send("s-b", 10)],
        [click("c1", "s-a", 1), order("o1", 20)],
        [("o1", "s-a", "click")],
    ),
    "a send, no click, then an order: the send rule": (
        [send("s-a", 0)],
        [order("o1", 30)],
        [("o1", "s-a", "send")],
    ),
    "an order after the window: not credited": (
        [send("s-a", 0)],
        [click("c1", "s-a", 1), order("o1", 5 * 24 + 1)],
        [],
    ),
    "two sends then an order: one credit, the last send": (
        [send("s-a", 0), send("s-b", 10, kind="browse_abandonment")],
        [order("o1", 20)],
        [("o1", "s-b", "send")],
    ),
    "a bot's click does not count": (
        [send("s-a", 0), send("s-b", 10)],
        [click("c1", "s-a", 1, bot=True), order("o1", 20)],
        [("o1", "s-b", "send")],
    ),
    "a click seconds after the provider took the send is a scanner's; one 11 s after counts": (
        [send("s-b", 10), send("s-c", 11)],
        [click("c2", "s-c", 11 + 9 / 3600), click("c3", "s-b", 10 + 11 / 3600), order("o1", 20)],
        [("o1", "s-b", "click")],
    ),
    "a click outside the window does not count, the send in it does": (
        [send("s-a", 0), send("s-b", 100)],
        [click("c1", "s-a", 1), order("o1", 125)],
        [("o1", "s-b", "send")],
    ),
    "another shopper's send: not credited; an order before the send: not credited": (
        [send("s-a", 10, user="u-2")],
        [order("o1", 20), order("o2", 5, user="u-2")],
        [],
    ),
    "an anonymous order of a stitched shopper; the same order_id twice counts once": (
        [send("s-a", 0)],
        [order("o1", 20, user=None, anonymous_id="anon-1", order_id="A1"), order("o2", 21, order_id="A1")],
        [("o1", "s-a", "send")],
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_attribution_rule(case: str) -> None:
    sends, events, expected = CASES[case]
    identities = [{"anonymous_id": "anon-1", "user_id": "u-1", "first_seen_at": T0}]
    got = credit(sends, events, identities)
    assert list(got.select("order_event_id", "send_id", "rule").iter_rows()) == expected
    assert got["order_event_id"].is_unique().all()


def test_a_credit_carries_the_send_and_the_order() -> None:
    got = credit([send("s-a", 0)], [click("c1", "s-a", 2), order("o1", 3)]).row(0, named=True)
    assert got["trigger_id"] == "t-s-a" and got["kind"] == "abandoned_cart" and got["variant"] == "a"
    assert (got["revenue"], got["currency"], got["user_id"]) == (40.0, "EUR", "u-1")
    assert (got["sent_at"], got["clicked_at"], got["converted_at"]) == (hours(0), hours(2), hours(3))
