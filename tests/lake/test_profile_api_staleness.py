"""The profile API's `/content` is stale exactly when the email sent then would be: when the store is
behind a file landed longer ago than the staleness bound (72 h), not when the store has merely not
committed for that long (a quiet shop), over the collector's own wiring (`orchestration.collector`)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import timedelta
from typing import Any

import httpx
import pytest

from orchestration.collector import profile_api
from orchestration.settings import SECRET_VARIABLE, Settings
from resources.lake import LakeResource
from resources.landing import LandingResource
from resources.state import StateResource
from services.collector.app import CollectorConfig, create_collector_app
from services.server import ServerThread
from tests.profile_shop import ADA, API_KEY, build_shop, headers

STALE = {"block": "profile", "reason": "stale_profile"}
DAYS_AGO = time.time() - 4 * 86400


@contextmanager
def collector(
    settings: Settings, landing: LandingResource, staleness: timedelta | None = None
) -> Iterator[httpx.Client]:
    """The collector as `lakemail serve collector` wires it (the shop's staleness bound, or `staleness`)."""
    api = profile_api(settings, API_KEY)
    api = api if staleness is None else replace(api, staleness=staleness)
    app = create_collector_app(CollectorConfig(landing=landing.root, write_keys=("wk",), profiles=api))
    with ServerThread(app) as server, httpx.Client(base_url=server.url, timeout=30) as client:
        yield client


def content(client: httpx.Client) -> dict[str, Any]:
    answer = client.get(f"/v1/profiles/{ADA}/content", headers=headers())
    assert answer.status_code == 200
    return dict(answer.json())


@pytest.fixture
def shop(
    settings: Settings, lake: LakeResource, landing: LandingResource, monkeypatch: pytest.MonkeyPatch
) -> StateResource:
    monkeypatch.setenv(SECRET_VARIABLE, "test-secret")
    state = StateResource(uri=settings.state_store_uri)
    build_shop(lake, landing, state)
    return state


def test_a_store_quiet_for_days_with_nothing_landed_since_is_current(
    settings: Settings, landing: LandingResource, shop: StateResource
) -> None:
    os.utime(shop.path / "data.mdb", (DAYS_AGO, DAYS_AGO))  # its last commit, four days ago
    with collector(settings, landing) as client:
        ada = content(client)
    assert STALE not in ada["fallbacks"] and ada["recommendations_source"] == "personal"


def test_a_store_behind_a_file_landed_longer_ago_than_the_bound_gives_generic_content(
    settings: Settings, landing: LandingResource, shop: StateResource
) -> None:
    # A file lands when it appears in the zone (its ctime; an old mtime says nothing): a bound of a
    # second, not 72 h, lets it be older than the bound without a clock to turn.
    late = landing.land("events/late.ndjson", b'{"type": "track"}\n')  # never taken by an ingest
    os.utime(late, (DAYS_AGO, DAYS_AGO))  # its producer's date: not when it landed
    with collector(settings, landing) as client:
        assert STALE not in content(client)["fallbacks"]
    time.sleep(1.5)
    with collector(settings, landing, staleness=timedelta(seconds=1)) as client:
        ada = content(client)
    assert STALE in ada["fallbacks"] and ada["generic"] is True
