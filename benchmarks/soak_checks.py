"""The soak's reconciliation: every landed line once in the lake, every decision once in the outbox,
every email once in the sandbox."""

from __future__ import annotations

import json
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import polars as pl

from benchmarks.common import ingest_log, lake_of, landed_files
from transforms.ingest.parse import split_lines
from transforms.ingest.trust import event_id_of
from transforms.schema import EVENTS_SCHEMA, QUARANTINE_SCHEMA, SENDS_SCHEMA, TRIGGERS_SCHEMA
from transforms.spec import KEY_KIND_FIELD

TERMINAL = ("sent", "failed_permanent", "aborted")


def sandbox_json(url: str, api_key: str, data: bytes | None = None) -> Any:
    """A call to the sandbox's /api (with its key, whether or not the sandbox asks for one)."""
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {api_key}"}
    request = urllib.request.Request(url, data=data, headers=headers)
    with urllib.request.urlopen(request, timeout=10) as reply:
        return json.loads(reply.read() or b"null")


def _landed_lines(home: Path) -> pl.DataFrame:
    """source_file, source_line, event_id (null when the line is not JSON with a messageId)."""
    rows = []
    for path in landed_files(home):
        for number, line in enumerate(split_lines(path.read_bytes()), start=1):
            if not line.strip():
                continue
            try:
                message = orjson.loads(line)
            except orjson.JSONDecodeError:
                message = None
            event_id = None
            if isinstance(message, dict) and isinstance(message.get("messageId"), str):
                # as the ingest makes it: a public write key's messages have ids of their own
                event_id = event_id_of(message["messageId"], message.get(KEY_KIND_FIELD))
            rows.append((f"events/{path.name}", number, event_id))
    schema = {"source_file": pl.String, "source_line": pl.Int64, "event_id": pl.String}
    return pl.DataFrame(rows, schema=schema, orient="row")


def reconcile_lines(home: Path) -> dict[str, int]:
    """Each landed line is an event, a quarantine row, or a duplicate of an event: once, never twice."""
    lake = lake_of(home)
    events = lake.read("events", EVENTS_SCHEMA, ["event_id", "source_file", "source_line"])
    quarantine = lake.read("quarantine", QUARANTINE_SCHEMA, ["source_file", "source_line"])
    log = ingest_log(home)
    lines = _landed_lines(home)
    keys = ["source_file", "source_line"]
    as_event = lines.join(events.select(keys), on=keys, how="semi")
    as_quarantine = lines.join(quarantine.select(keys), on=keys, how="semi")
    placed = pl.concat([as_event.select(keys), as_quarantine.select(keys)])
    rest = lines.join(placed, on=keys, how="anti")
    duplicates = rest.join(events.select("event_id"), on="event_id", how="semi")
    return {
        "landed_files": lines["source_file"].n_unique(),
        "landed_lines": lines.height,
        "as_events": as_event.height,
        "as_quarantine": as_quarantine.height,
        "as_duplicates": duplicates.height,
        "lines_lost": rest.height - duplicates.height,
        "lines_in_events_and_quarantine": placed.height - placed.unique().height,
        "event_ids_twice": events.height - events["event_id"].n_unique(),
        "quarantine_lines_twice": quarantine.height - quarantine.unique().height,
        "files_logged_twice": log.height - log["source_file"].n_unique(),
        "files_not_logged": lines.select("source_file")
        .unique()
        .join(log.select("source_file"), on="source_file", how="anti")
        .height,
    }


def reconcile_outbox(home: Path, inbox: str, api_key: str) -> dict[str, Any]:
    """The lake's outbox against the decisions and the sandbox's messages."""
    lake = lake_of(home)
    decisions = lake.read("triggers", TRIGGERS_SCHEMA).filter(pl.col("decision") == "send")
    sends = lake.read("sends", SENDS_SCHEMA)
    joined = decisions.select("trigger_id").join(sends, on="trigger_id", how="left")
    terminal_rows = joined.group_by("trigger_id").agg(pl.col("status").is_in(TERMINAL).sum().alias("n"))
    messages = sandbox_json(f"{inbox}/api/messages", api_key)
    stats = sandbox_json(f"{inbox}/api/stats", api_key)["mail_send"]
    per_send = Counter(m["custom_args"].get("send_id") for m in messages)
    per_trigger = Counter(m["custom_args"].get("trigger_id") for m in messages)
    sent = sends.filter(pl.col("status") == "sent")
    sent_ids = set(sent["send_id"])
    return {
        "send_decisions": decisions.height,
        "outbox_rows": sends.height,
        "outbox_by_status": dict(sorted(Counter(sends["status"].to_list()).items())),
        "decisions_without_exactly_one_terminal_row": int((terminal_rows["n"] != 1).sum()),
        "trigger_ids_sent_twice": sent.group_by("trigger_id").len().filter(pl.col("len") > 1).height,
        "duplicate_send_ids": sends.group_by("send_id").len().filter(pl.col("len") > 1).height,
        "sandbox_messages": len(messages),
        "send_ids_with_two_messages": sum(1 for n in per_send.values() if n > 1),
        "trigger_ids_with_two_messages": sum(1 for t, n in per_trigger.items() if t and n > 1),
        "sent_rows_without_message": len(sent_ids - set(per_send)),
        "messages_without_sent_row": len(set(per_send) - sent_ids),
        "requests_by_status": stats["by_status"],
        # a send asked again after the sandbox stored it: answered with that message, so not in
        # `send_ids_with_two_messages`, but an email the outbox would have sent twice
        "sends_asked_twice": stats["replayed"],
        "retried_sends": sends.filter(pl.col("attempts") > 1).height,
    }


def settled(home: Path) -> bool:
    """Every `send` decision in the outbox, and no outbox row still waiting."""
    lake = lake_of(home)
    if any(lake.version(name) is None for name in ("sends", "triggers")):
        return False
    decided = lake.read("triggers", TRIGGERS_SCHEMA).filter(pl.col("decision") == "send")
    sends = lake.read("sends", SENDS_SCHEMA)
    waiting = sends.filter(~pl.col("status").is_in(TERMINAL)).height
    return waiting == 0 and decided.select("trigger_id").join(sends, on="trigger_id", how="anti").height == 0


ZERO = (
    "lines_lost",
    "lines_in_events_and_quarantine",
    "event_ids_twice",
    "quarantine_lines_twice",
    "files_logged_twice",
    "files_not_logged",
    "decisions_without_exactly_one_terminal_row",
    "trigger_ids_sent_twice",
    "duplicate_send_ids",
    "send_ids_with_two_messages",
    "sends_asked_twice",
    "trigger_ids_with_two_messages",
    "sent_rows_without_message",
    "messages_without_sent_row",
    "manual_interventions",
    "drains_over_60_s",
    "leftovers_after_stop",
)
