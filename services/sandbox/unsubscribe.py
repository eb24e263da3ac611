"""RFC 8058 unsubscribes: find the send's user in the lake, land an `Unsubscribed` event for the pipeline."""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import polars as pl

from resources.lake import LakeResource
from resources.landing import LandingResource
from transforms.schema import SENDS_SCHEMA

ONE_CLICK_FIELD = "List-Unsubscribe"
ONE_CLICK_VALUE = "One-Click"


def is_one_click(body: bytes) -> bool:
    """Whether a form-encoded POST body is RFC 8058's `List-Unsubscribe=One-Click`."""
    fields = parse_qs(body.decode("utf-8", errors="replace"), keep_blank_values=True)
    return ONE_CLICK_VALUE in fields.get(ONE_CLICK_FIELD, [])


def user_for_send(lake_uri: str, send_id: str) -> str | None:
    """The `user_id` of a send in the lake's `sends` table; None when the table or the send is unknown."""
    sends = LakeResource(uri=lake_uri).scan("sends", SENDS_SCHEMA)
    # send_id is a hash, not person data, so it may be a scan predicate (and end in file statistics)
    found = sends.filter(pl.col("send_id") == send_id).select("user_id").drop_nulls().head(1)
    users = found.collect()["user_id"].to_list()
    return users[0] if users else None


def unsubscribe_event(user_id: str, send_id: str, method: str, now: datetime) -> dict[str, Any]:
    """The Segment `track` message; its messageId is fixed per send, so a second POST is a duplicate."""
    return {
        "type": "track",
        "event": "Unsubscribed",
        "userId": user_id,
        "messageId": f"unsubscribe-{send_id}",
        "timestamp": now.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "properties": {"send_id": send_id, "method": method},
    }


def land_event(landing_uri: str, event: dict[str, Any], now: datetime) -> Path:
    """Land one event as a new NDJSON file in `<landing>/events/`."""
    name = f"unsubscribe-{now.astimezone(UTC):%Y%m%dT%H%M%S%fZ}-{secrets.token_hex(4)}.ndjson"
    data = json.dumps(event, separators=(",", ":")).encode() + b"\n"
    return LandingResource(uri=landing_uri).land(f"events/{name}", data)
