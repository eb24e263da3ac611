"""`make run` again: the simulator `lakemail up` starts carries on with new events from the same shoppers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from orchestration.cli import main
from orchestration.supervisor import Plan, part_commands
from services.collector.app import CollectorConfig, create_collector_app
from services.server import ServerThread
from simulator.population import new_shopper
from simulator.shop import make_catalog

KEY = "wk-restart"
VIEWED = "Product Viewed"


def landed(events: Path, skip: set[str]) -> tuple[set[str], list[dict[str, Any]]]:
    """The names of the landed event files and the messages of those not in `skip`, in landing order."""
    names = {f.name for f in events.iterdir() if not f.name.startswith(".")}
    files = sorted(name for name in names - skip)
    return names, [orjson.loads(line) for name in files for line in (events / name).read_bytes().splitlines()]


def shaped(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The messages holding the fields this test reads (the demo's malformed lines may lack them)."""
    return [
        m
        for m in messages
        if isinstance(m.get("properties"), dict) and "messageId" in m and "anonymousId" in m
    ]


def test_a_restarted_demo_simulator_sends_new_events_from_the_same_shoppers(
    cli_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LAKEMAIL_WRITE_KEY", KEY)
    landing = cli_home / "landing"
    with ServerThread(create_collector_app(CollectorConfig(landing=landing, write_keys=(KEY,)))) as server:
        port = int(server.url.rsplit(":", 1)[1])
        plan = Plan(3000, 20, 100.0, True, 8025, True, True, False, collector_port=port)
        argv = part_commands(plan)["simulator"][1:]  # as `lakemail up` starts it, each time
        argv[argv.index("--duration") + 1] = "2"
        runs: list[list[dict[str, Any]]] = []
        seen: set[str] = set()
        for _ in range(2):  # `make run`, Ctrl-C, `make run` again: the same home
            assert main(argv) == 0
            seen, messages = landed(landing / "events", seen)
            runs.append(shaped(messages))
    first, second = runs
    assert len(first) > 150 and len(second) > 150
    first_ids = {m["messageId"] for m in first}
    again = [m["messageId"] for m in second[:50] if m["messageId"] in first_ids]
    assert again == [], f"{len(again)} of the restarted run's first 50 messages repeat the last run's"
    assert not first_ids & {m["messageId"] for m in second}
    # The same shoppers: in both runs each logged-in user has the seed's anonymous id; the same catalog.
    for run in runs:
        users = {(m["userId"], m["anonymousId"]) for m in run if m.get("userId")}
        assert users and all(a == new_shopper(0, int(u.removeprefix("u-"))).anonymous_id for u, a in users)
    products = {p["product_id"] for p in make_catalog(0)}
    viewed = [{m["properties"]["product_id"] for m in run if m.get("event") == VIEWED} for run in runs]
    assert viewed[0] and viewed[1] and viewed[0] | viewed[1] <= products
