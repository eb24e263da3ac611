"""Soak: `lakemail up` (as `make run` starts it) under simulated shoppers and scripted provider faults,
then the outbox reconciliation: every `send` decision has exactly one terminal outbox row, no
trigger_id was sent twice, and the sandbox holds exactly one message per `sent` row.

    python -m benchmarks.soak --minutes 10

Everything listens on 127.0.0.1; the run stops by itself and prints its figures as JSON.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import polars as pl

from benchmarks.common import env_for, lake_of, lakemail, temp_home
from benchmarks.steady import free_port, system_up
from resources.providers import SANDBOX_API_KEY
from transforms.schema import SENDS_SCHEMA, TRIGGERS_SCHEMA

# One cycle of faults, one every FAULT_EVERY seconds: overload, rate limit, slowness, an ambiguous
# timeout (the sandbox holds the answer past the client's 10 s read timeout), refused credentials
# (the circuit opens), and a permanent rejection.
FAULTS: list[dict[str, Any]] = [
    {"kind": "status", "status": 503, "times": 3},
    {"kind": "rate_limit", "reset_seconds": 3},
    {"kind": "slow", "seconds": 2},
    {"kind": "accept_then_hang", "seconds": 15},
    {"kind": "status", "status": 401, "times": 1},
    {"kind": "status", "status": 500, "times": 2},
    {"kind": "status", "status": 400, "times": 1},
]
FAULT_EVERY = 20.0
TERMINAL = ("sent", "failed_permanent", "aborted")


def _json(url: str, data: bytes | None = None) -> Any:
    """The sandbox's API, with the key `lakemail up` gives it (`env_for` drops LAKEMAIL_ESP_API_KEY)."""
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {SANDBOX_API_KEY}"}
    request = urllib.request.Request(url, data=data, headers=headers)
    with urllib.request.urlopen(request, timeout=10) as reply:
        return json.loads(reply.read() or b"null")


def _outbox(home: Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(the `send` decisions, the `sends` rows) of the lake."""
    lake = lake_of(home)
    decided = lake.read("triggers", TRIGGERS_SCHEMA).filter(pl.col("decision") == "send")
    return decided, lake.read("sends", SENDS_SCHEMA)


def reconcile(home: Path, inbox: str) -> dict[str, Any]:
    """The reconciliation figures of the lake's outbox against the decisions and the sandbox."""
    decisions, sends = _outbox(home)
    joined = decisions.select("trigger_id").join(sends, on="trigger_id", how="left")
    terminal_rows = joined.group_by("trigger_id").agg(pl.col("status").is_in(TERMINAL).sum().alias("n"))
    messages = _json(f"{inbox}/api/messages")
    per_send = Counter(m["custom_args"].get("send_id") for m in messages)
    sent_ids = set(sends.filter(pl.col("status") == "sent")["send_id"])
    return {
        "send_decisions": decisions.height,
        "outbox_rows": sends.height,
        "outbox_by_status": dict(sorted(Counter(sends["status"].to_list()).items())),
        "decisions_without_exactly_one_terminal_row": int((terminal_rows["n"] != 1).sum()),
        "trigger_ids_sent_twice": int(
            sends.filter(pl.col("status") == "sent")
            .group_by("trigger_id")
            .len()
            .filter(pl.col("len") > 1)
            .height
        ),
        "duplicate_send_ids": int(sends.group_by("send_id").len().filter(pl.col("len") > 1).height),
        "sandbox_messages": len(messages),
        "send_ids_with_two_messages": sum(1 for n in per_send.values() if n > 1),
        "sent_rows_without_message": len(sent_ids - set(per_send)),
        "messages_without_sent_row": len(set(per_send) - sent_ids),
        "requests_by_status": _json(f"{inbox}/api/stats")["mail_send"]["by_status"],
        "retried_sends": int(sends.filter(pl.col("attempts") > 1).height),
        "latency_ms_p50_p95": [sends["latency_ms"].drop_nulls().quantile(q, "linear") for q in (0.5, 0.95)],
    }


def _settled(home: Path) -> bool:
    if any(lake_of(home).version(name) is None for name in ("sends", "triggers")):
        return False
    decided, sends = _outbox(home)
    waiting = sends.filter(~pl.col("status").is_in(TERMINAL)).height
    return waiting == 0 and decided.select("trigger_id").join(sends, on="trigger_id", how="anti").height == 0


def soak(minutes: float, users: int, rate: float, settle_minutes: float = 5.0) -> dict[str, Any]:
    with temp_home("soak") as tmp:
        home = Path(tmp)
        sandbox_port = free_port()
        inbox = f"http://127.0.0.1:{sandbox_port}"
        env = env_for(home)
        with system_up(home, sandbox_port):
            seconds = minutes * 60
            sim = [
                lakemail(),
                "simulate",
                "--users",
                str(users),
                "--rate",
                str(rate),
                "--duration",
                f"{seconds:g}",
            ]
            simulator = subprocess.Popen(sim, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
            started, scripted = time.monotonic(), 0
            while simulator.poll() is None:
                if time.monotonic() - started >= (scripted + 1) * FAULT_EVERY:
                    _json(f"{inbox}/api/faults", json.dumps(FAULTS[scripted % len(FAULTS)]).encode())
                    scripted += 1
                time.sleep(1)
            deadline = time.monotonic() + settle_minutes * 60
            while time.monotonic() < deadline and not _settled(home):
                time.sleep(5)
            figures = reconcile(home, inbox)
            figures |= {"minutes": minutes, "faults_scripted": scripted, "settled": _settled(home)}
            return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--rate", type=float, default=20.0)
    args = parser.parse_args(argv)
    figures = soak(args.minutes, args.users, args.rate)
    print(json.dumps(figures, indent=2, default=str))
    clean = (
        figures["settled"]
        and figures["decisions_without_exactly_one_terminal_row"] == 0
        and figures["trigger_ids_sent_twice"] == 0
        and figures["duplicate_send_ids"] == 0
        and figures["send_ids_with_two_messages"] == 0
        and figures["sent_rows_without_message"] == 0
        and figures["messages_without_sent_row"] == 0
    )
    return 0 if clean else 1


if __name__ == "__main__":
    sys.exit(main())
