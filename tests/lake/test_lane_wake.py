"""An idle lane of `lakemail runner` polls at once when its signal moves (`orchestration.lane_wake`, #17):
the ingest lane when a file lands in `events/`, the decide lane when the store commits a batch; before,
each waited out its quarter-second poll."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path

import orjson

from orchestration.lane_wake import idle, landing_signal, store_signal
from resources.landing import LandingResource
from stores.ingest import ingest
from tests.lake.decide_harness import SECRET, Shop
from tests.story import message

START = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
LONG = 60.0  # an idle wait that only a missed signal sits out


def test_an_idle_wait_ends_when_its_signal_moves() -> None:
    values, asked = iter([0, 0, 0, 1]), []

    def signal() -> int:
        asked.append(1)
        return next(values)

    assert idle(threading.Event(), LONG, signal) is True
    assert len(asked) == 4  # read before the wait, then until it moved


def test_an_idle_wait_without_a_signal_or_once_stopped_does_not_wait() -> None:
    stop = threading.Event()
    stop.set()
    assert idle(stop, LONG, None) is False
    assert idle(stop, LONG, lambda: 0) is False


def test_a_file_landing_moves_the_ingest_lanes_signal(tmp_path: Path) -> None:
    landing = LandingResource(uri=str(tmp_path / "landing"))
    signal = landing_signal(landing)
    assert signal is not None
    assert signal() is None  # no events/ folder yet
    landing.land("events/a.ndjson", b"{}\n")
    first = signal()
    assert first is not None and signal() == first
    landing.land("events/b.ndjson", b"{}\n")
    assert signal() != first
    assert landing_signal(LandingResource(uri="s3://bucket/landing")) is None  # no folder: polls only


def test_a_batch_the_store_commits_moves_the_decide_lanes_signal(tmp_path: Path) -> None:
    shop = Shop(tmp_path)
    signal = store_signal(shop.state)
    assert signal() is None  # no store yet
    for number in (1, 2):
        viewed = message("Product Viewed", START, user="u-1", product_id=f"p{number}")
        shop.landing.land(f"events/b{number}.ndjson", orjson.dumps(viewed) + b"\n")
        ingest(shop.lake, shop.landing, now=START, state=shop.state, secret=SECRET)
        assert signal() == number
