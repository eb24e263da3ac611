"""A link scanner's click seconds after delivery is not a person's, however long the provider took to say
yes. The click token is made when the email is rendered, before the provider call; a 429 asking for 30 s
(or a slow answer) puts delivery well after it, so the collector, which only knows the token, sees a
scan 3 s after delivery as 33 s after the email was made and lets it through. Measurement judges it again
by the send's `sent_at`: not counted, while a person's click minutes later is."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import polars as pl

from resources.lake import LakeResource
from services.collector.app import create_collector_app
from stores.measure import ATTRIBUTIONS, run_attribution, run_experiments
from stores.sends_delivery import AttemptMarkers, Delivery, SendsReport
from tests.lake.measure_world import BROWSER, WINDOW, write
from tests.story import message
from tests.unit.test_collector import config, landed
from tests.unit.test_delivery import accepted
from tests.unit.test_plan import RUN_NOW, planned_rows, sender_for
from tests.unit.test_sending import decision
from transforms.measure.tables import ATTRIBUTIONS_SCHEMA

CLICK_URL = "https://click.example/c/"


def deliver_after_a_wait(tmp_path: Path) -> tuple[dict[str, Any], str]:
    """One welcome email through the real send path: a 429 asking for 30 s, then accepted. Its row and
    one of its click tokens."""
    wall = [RUN_NOW]
    bodies: list[str] = []

    def sandbox(request: httpx.Request) -> httpx.Response:
        bodies.append(request.content.decode())
        return httpx.Response(429, headers={"Retry-After": "30"}) if len(bodies) == 1 else accepted("m-1")

    def sleep(seconds: float) -> None:
        wall[0] += timedelta(seconds=seconds)

    with httpx.Client(transport=httpx.MockTransport(sandbox)) as client:
        sender = sender_for(
            client, click_link=lambda token: CLICK_URL + token, sleep=sleep, wall_clock=lambda: wall[0]
        )
        delivery = Delivery(sender, AttemptMarkers(tmp_path / "marks"), RUN_NOW, timedelta(0), SendsReport())
        delivery.run(planned_rows("t-1"))
    [row] = delivery.changed
    html = json.loads(bodies[-1])["content"][-1]["value"]
    token = re.findall(re.escape(CLICK_URL) + r"([\w.\-]+)", html)[0]
    return row, token


def click(landing: Path, token: str, at: datetime) -> dict[str, Any]:
    """A browser's GET of the redirect at `at`, as the collector lands it."""

    async def main() -> None:
        app = create_collector_app(config(landing, click_secret="s", clock=lambda: at))
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://collector") as client:
                answer = await client.get("/c/" + token, headers={"User-Agent": BROWSER})
                assert answer.status_code == 302

    asyncio.run(main())
    return landed(landing)[-1]


def test_a_scan_seconds_after_a_late_delivery_is_not_counted(tmp_path: Path, lake: LakeResource) -> None:
    row, token = deliver_after_a_wait(tmp_path)
    assert row["status"] == "sent" and row["sent_at"] == RUN_NOW + timedelta(seconds=30)
    scan = click(tmp_path / "landing", token, row["sent_at"] + timedelta(seconds=3))
    assert scan["properties"]["bot"] is False  # the collector cannot know when the provider said yes
    triggers = [decision("t-1", decided_at=RUN_NOW)]
    bought = message("Order Completed", RUN_NOW + timedelta(hours=2), user="u1", order_id="o-1", revenue=30.0)
    write(lake, triggers, [row], [scan, bought])

    report = run_attribution(lake, WINDOW)
    assert report.by_rule == {"send": 1}  # the scan is not the shopper's click
    [arm] = run_experiments(lake, WINDOW, RUN_NOW + timedelta(days=6)).to_dicts()
    assert (arm["exposed"], arm["sent"], arm["clicked"], arm["converted"]) == (1, 1, 0, 1)

    person = click(tmp_path / "landing", token, row["sent_at"] + timedelta(minutes=5))
    write(lake, triggers, [row], [scan, person, bought])
    assert run_attribution(lake, WINDOW).by_rule == {"click": 1}
    credit = lake.read(ATTRIBUTIONS, ATTRIBUTIONS_SCHEMA).row(0, named=True)
    assert credit["clicked_at"] == row["sent_at"] + timedelta(minutes=5)
    clicked = run_experiments(lake, WINDOW, RUN_NOW + timedelta(days=6)).filter(pl.col("arm") == "b")
    assert clicked["clicked"].to_list() == [1]
