"""GDPR erasure of a person who clicked an email (found by a review): the collector lands the click under
`anonymousId` = the send id with the browser's user agent, and nothing but `sends` and `triggers` ties
that id to the person. The erasure takes their trigger and send ids as keys of theirs: the click's
event, landed line, `anon:` partial and profile state, their credit and the store's entries go, the
certificate checks for them, and an erasure that died after deleting `sends` still finds them."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import dagster as dg
import httpx
import orjson
import polars as pl
import pytest

import stores.erasure.requests as requests
from orchestration.process import erase_once, process_once
from orchestration.settings import Settings
from resources.lake import LakeResource
from resources.landing import LandingResource
from resources.state import StateResource
from services.collector.app import CollectorConfig, create_collector_app
from stores.erasure.requests import erase_user
from stores.measure import run_attribution
from stores.state.rebuild import check
from tests.conftest import land
from tests.dagster.sends_harness import SHOPPERS, signups
from tests.story import at, message
from transforms.sends.clicks import ClickLink, click_token
from transforms.state import NAMESPACES

SECRET = "test-secret"
ERIN, OLGA = SHOPPERS[0], SHOPPERS[1]
PHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) Version/18.1 Mobile Safari (erin-phone)"
DESKTOP = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0 (olga-desktop)"


def run(settings: Settings, instance: dg.DagsterInstance, minutes: float) -> None:
    assert process_once(settings, instance, now=at(minutes).isoformat())["status"] == "SUCCESS"


def welcome(lake: LakeResource, user: str) -> tuple[str, str]:
    """The send id and trigger id of `user`'s welcome email, sent by the micro-batch."""
    sends = pl.read_delta(lake.table_uri("sends")).filter(pl.col("user_id") == user)
    [row] = sends.filter(pl.col("kind") == "welcome").to_dicts()
    assert row["status"] == "sent"
    return row["send_id"], row["trigger_id"]


def click(landing: LandingResource, lake: LakeResource, user: str, agent: str, when: datetime) -> None:
    """A click on the welcome email of `user`, through the collector's `GET /c/{token}`."""
    [row] = pl.read_delta(lake.table_uri("sends")).filter(pl.col("user_id") == user).to_dicts()
    issued = (when - timedelta(minutes=20)).timestamp()
    link = ClickLink(
        row["send_id"], row["trigger_id"], "welcome", row["variant"], "home", "https://shop.example/", issued
    )
    config = CollectorConfig(
        landing=landing.root, write_keys=("k",), linger=0.01, click_secret=SECRET, clock=lambda: when
    )

    async def main() -> httpx.Response:
        app = create_collector_app(config)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://collector") as client:
                return await client.get("/c/" + click_token(link, SECRET), headers={"User-Agent": agent})

    assert asyncio.run(main()).status_code == 302


def store_holding(state: StateResource, *needles: str) -> list[tuple[str, str]]:
    """(namespace, key) of every store entry whose key or value holds one of `needles`."""
    store = state.existing()
    assert store is not None
    return [
        (namespace, key)
        for namespace in NAMESPACES
        for key, value in store.scan(namespace)
        if any(n in key or n.encode() in value for n in needles)
    ]


def tables_holding(lake: LakeResource, *needles: str) -> dict[str, int]:
    """Rows per table (every column, nested ones as JSON) holding one of `needles`."""
    found = {}
    for name in lake.table_names():
        rows = pl.read_delta(lake.table_uri(name)).write_ndjson().splitlines()
        found[name] = sum(1 for row in rows if any(n in row for n in needles))
    return {name: count for name, count in found.items() if count}


def landing_holding(landing: LandingResource, *needles: str) -> dict[str, int]:
    found = {}
    for path in sorted(p for p in landing.root.rglob("*") if p.is_file()):
        lines = path.read_bytes().splitlines()
        found[path.relative_to(landing.root).as_posix()] = sum(
            1 for line in lines if any(n.encode() in line for n in needles)
        )
    return {path: count for path, count in found.items() if count}


@pytest.fixture
def clicked(
    settings: Settings, instance: dg.DagsterInstance, lake: LakeResource, landing: LandingResource
) -> tuple[str, str]:
    """Erin and Olga sign up and get their welcome email; both click it (Erin on her phone), and Erin
    orders. Erin's (send id, trigger id)."""
    signups(settings, [ERIN, OLGA])
    run(settings, instance, 1)
    click(landing, lake, ERIN, PHONE, at(30))
    click(landing, lake, OLGA, DESKTOP, at(31))
    order = message("Order Completed", at(40), user=ERIN, order_id="o-1", revenue=30.0, currency="EUR")
    land(settings, "orders.ndjson", [orjson.dumps(order)])
    run(settings, instance, 45)
    run_attribution(lake, settings.attribution_window)
    send_id, trigger_id = welcome(lake, ERIN)
    events = pl.read_delta(lake.table_uri("events")).filter(pl.col("anonymous_id") == send_id)
    assert events["event_name"].to_list() == ["Email Link Clicked"] and events["user_id"].is_null().all()
    assert events["context_user_agent"].to_list() == [PHONE]
    # The click made an anonymous shopper of the send: its partials and the store's profile key it.
    assert {"events", "profile_updates", "sends", "attributions"} <= set(tables_holding(lake, send_id))
    assert pl.read_delta(lake.table_uri("attributions"))["rule"].to_list() == ["click"]
    state = StateResource(uri=settings.state_store_uri)
    assert ("profiles", f"anon:{send_id}") in store_holding(state, send_id)
    return send_id, trigger_id


def assert_gone(
    settings: Settings, lake: LakeResource, landing: LandingResource, ids: tuple[str, str]
) -> None:
    """Nothing of Erin's click anywhere; Olga's click and send untouched; the store equals the lake."""
    needles = (*ids, "erin-phone")
    assert tables_holding(lake, *needles) == {}
    assert landing_holding(landing, *needles) == {}
    state = StateResource(uri=settings.state_store_uri)
    assert store_holding(state, *needles) == []
    report = check(lake, state)
    assert report.equal, report.summary()
    olga = welcome(lake, OLGA)[0]
    assert set(tables_holding(lake, olga, "olga-desktop")) >= {"events", "sends", "profile_updates"}
    assert len(landing_holding(landing, olga)) == 1
    assert ("profiles", f"anon:{olga}") in store_holding(state, olga)


def test_an_erased_person_who_clicked_an_email_leaves_no_click_behind(
    settings: Settings,
    instance: dg.DagsterInstance,
    lake: LakeResource,
    landing: LandingResource,
    clicked: tuple[str, str],
) -> None:
    passed, text = erase_once(settings, ERIN, instance)
    certificate = orjson.loads(text)
    assert passed and not any(i in text for i in clicked)
    assert_gone(settings, lake, landing, clicked)
    assert certificate["made_ids"] >= 2  # the welcome's trigger and send ids at least
    assert not (landing.root / "erasure" / "progress").exists()
    # Later micro-batches bring nothing of it back.
    run(settings, instance, 24 * 60)
    run_attribution(lake, settings.attribution_window)
    assert_gone(settings, lake, landing, clicked)


def test_an_erasure_that_died_after_deleting_sends_still_finds_the_click_when_run_again(
    settings: Settings,
    lake: LakeResource,
    landing: LandingResource,
    clicked: tuple[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    state = StateResource(uri=settings.state_store_uri)

    def dies(*args: object) -> None:
        raise RuntimeError("killed after the tables, before the landed lines and the store")

    with monkeypatch.context() as patched:
        patched.setattr(requests, "rewrite_landing", dies)
        with pytest.raises(RuntimeError, match="killed"):
            erase_user(lake, landing, ERIN, secret=SECRET, request_id="erasure-retry", state=state)
    assert tables_holding(lake, *clicked) == {}  # sends, triggers and the click's rows are gone
    assert landing_holding(landing, *clicked)  # the click's landed line is not, nor the store's entries
    assert len(list((landing.root / "erasure" / "progress").iterdir())) == 1  # what the rerun reads
    certificate = erase_user(lake, landing, ERIN, secret=SECRET, request_id="erasure-retry", state=state)
    assert certificate.passed and certificate.made_ids >= 2
    assert_gone(settings, lake, landing, clicked)
    assert not (landing.root / "erasure" / "progress").exists()
