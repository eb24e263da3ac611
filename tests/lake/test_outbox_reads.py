"""A delivery run reads the outbox's open rows once (`stores.sends.open_rows`, #17): its due rows and the
rate-limit window an earlier run heard both come from that one scan of `sends` (before: two scans of
every file of the table on the way of every email)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl

from resources.lake import LakeResource
from stores.sends import due_rows, open_rows, rate_limit_window
from transforms.schema import SENDS_SCHEMA
from transforms.sends.rows import RATE_LIMITED

NOW = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)


def row(send_id: str, status: str, next_attempt_in: int | None, error: str | None = None) -> dict[str, Any]:
    at = None if next_attempt_in is None else NOW + timedelta(seconds=next_attempt_in)
    return {
        "send_id": send_id,
        "trigger_id": f"t-{send_id}",
        "status": status,
        "attempts": 1,
        "last_error": error,
        "created_at": NOW - timedelta(minutes=len(send_id)),
        "next_attempt_at": at,
    }


def test_the_due_rows_and_the_rate_limit_window_come_from_one_read_of_the_open_rows(
    lake: LakeResource,
) -> None:
    rows = [
        row("a", "pending", -5),
        row("bb", "retrying", 30, f"{RATE_LIMITED}: HTTP 429"),  # holds the window until NOW + 30 s
        row("ccc", "unknown", -1, "ReadTimeout"),
        row("dddd", "sent", None),
        row("eeeee", "retrying", 60, f"{RATE_LIMITED}: HTTP 429"),
        row("ffffff", "aborted", None),
    ]
    lake.upsert("sends", pl.DataFrame(rows, schema=SENDS_SCHEMA), key="send_id")
    still = open_rows(lake)
    assert sorted(still["send_id"]) == ["a", "bb", "ccc", "eeeee"]
    assert due_rows(still, NOW, lookups=False)["send_id"].to_list() == ["a"]
    assert due_rows(still, NOW, lookups=True)["send_id"].to_list() == ["ccc", "a"]  # oldest first
    assert rate_limit_window(still, NOW) == NOW + timedelta(seconds=60)
    assert rate_limit_window(still, NOW + timedelta(seconds=60)) is None  # the window is over
