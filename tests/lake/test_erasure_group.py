"""An erasure takes the person's own addresses, not their company's: a `group` call's traits describe the
group (Segment's reserved group traits include its `email`), so a colleague's rows naming the company's
billing address are not the person's (found by review, after d66c222 stopped reading them as the user's)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import polars as pl

from stores.erasure.requests import erase_user, find_person
from tests.lake.decide_harness import SECRET, Shop
from tests.story import message, spec_message
from transforms.schema import EVENTS_SCHEMA

START = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
BILLING = "billing@initech.example"


def at(minutes: float) -> datetime:
    return START + timedelta(minutes=minutes)


def test_a_group_address_is_not_the_persons(tmp_path: Path) -> None:
    shop = Shop(tmp_path / "shop")
    company: dict[str, Any] = {"group_id": "initech", "name": "Initech", "email": BILLING}
    ann = [
        message("identify", at(0), user="u-ann", email="ann@example.com", marketing_consent=True),
        spec_message("group", at(1), user="u-ann", **company),
    ]
    bob = [
        message("identify", at(0), user="u-bob", email="bob@example.com", marketing_consent=True),
        spec_message("group", at(2), user="u-bob", **company),
    ]
    landed_later = [spec_message("group", at(3), user="u-ann", **company)]
    shop.batch("b1", [*ann, *bob], at(5))
    shop.landing.land(
        "events/b2.ndjson", b"".join(orjson.dumps(m) + b"\n" for m in landed_later)
    )  # not taken

    person = find_person(shop.lake, shop.landing, "u-ann")
    assert person.emails == ("ann@example.com",)

    certificate = erase_user(shop.lake, shop.landing, "u-ann", secret=SECRET, state=shop.state)
    assert certificate.passed
    events = shop.lake.read("events", EVENTS_SCHEMA, ["user_id", "event_type"])
    assert sorted(events.filter(pl.col("user_id") == "u-bob")["event_type"].to_list()) == [
        "group",
        "identify",
    ]
    assert events.filter(pl.col("user_id") == "u-ann").height == 0
