"""The trigger engine over a real lake through the real micro-batch job: reruns never send twice."""

from __future__ import annotations

from datetime import timedelta

import dagster as dg
import orjson
import polars as pl

from orchestration.process import process_once
from orchestration.settings import Settings
from resources.lake import LakeResource
from stores.triggers_pending import pending_rows
from tests.conftest import land, table
from tests.story import at, message
from transforms.triggers.policies import unit_hash


def test_reruns_and_later_runs_never_decide_send_twice(
    settings: Settings, instance: dg.DagsterInstance
) -> None:
    signup = at(-60)
    user = next(u for u in (f"u{i}" for i in range(1, 50)) if unit_hash(f"holdout:{u}") >= 0.05)
    lines = [
        message(
            "identify",
            signup,
            user=user,
            email="a@example.com",
            marketing_consent=True,
            timezone="Asia/Tokyo",
        ),
        message(
            "Product Added", at(16 * 60), user=user, cart_id="c1", product_id="p1", name="Mug", price=9.5
        ),
    ]
    land(settings, "a.ndjson", [orjson.dumps(m) for m in lines])
    for minutes in (
        16 * 60 + 5,
        16 * 60 + 5,
        16 * 60 + 61,
        16 * 60 + 61,
        48 * 60,
        5 * 24 * 60,
    ):  # the same instant twice, then later runs
        summary = process_once(settings, instance, now=(at(0) + timedelta(minutes=minutes)).isoformat())
        assert summary["status"] == "SUCCESS"
    log = table(settings, "triggers")
    sends = log.filter(pl.col("decision") == "send")
    assert sorted(sends["kind"]) == ["welcome"]  # the cart email falls within the welcome's 16 h cap
    cart = log.filter((pl.col("kind") == "abandoned_cart") & (pl.col("decision") != "held"))
    assert cart["decision"].to_list() == ["capped"]
    assert sends["trigger_id"].n_unique() == sends.height
    terminal = log.filter(~pl.col("decision").is_in(["held", "quiet_hours_deferred"]))
    assert terminal["trigger_id"].n_unique() == terminal.height
    assert pending_rows(LakeResource(uri=settings.lake_uri)).height == 0  # nothing left pending
