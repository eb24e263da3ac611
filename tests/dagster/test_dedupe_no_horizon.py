"""Dedupe with no date horizon (#15): a retry whose event time is three days after the original's (a
producer resending with its own clock) is a duplicate in a real micro-batch, asked of the state store
(before, only partitions a day either side of the event date were looked at: it was stored twice)."""

from __future__ import annotations

import dagster as dg
import orjson
import polars as pl

from orchestration.process import process_once
from orchestration.settings import Settings
from tests.conftest import land, table


def copy(timestamp: str) -> bytes:
    message = {"messageId": "m-retried", "type": "track", "event": "Product Viewed", "userId": "u-1"}
    return orjson.dumps(message | {"timestamp": timestamp, "properties": {"product_id": "p-1"}})


def test_a_retry_received_three_days_later_is_a_duplicate(
    settings: Settings, instance: dg.DagsterInstance
) -> None:
    land(settings, "first.ndjson", [copy("2026-11-22T10:00:00.000Z")])
    assert process_once(settings, instance)["status"] == "SUCCESS"
    land(settings, "retry.ndjson", [copy("2026-11-25T10:00:00.000Z")])
    assert process_once(settings, instance)["status"] == "SUCCESS"
    events = table(settings, "events")
    assert events["event_id"].to_list() == ["m-retried"]
    log = table(settings, "ingest_log").filter(pl.col("source_file") == "events/retry.ndjson")
    assert log.select("lines", "accepted", "duplicates").row(0) == (1, 0, 1)
