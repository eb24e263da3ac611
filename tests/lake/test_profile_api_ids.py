"""The profile API reaches any user id, as Segment's are arbitrary strings (emails, URLs, ids with `/`):
the id is one path segment percent-encoded (`%2F` for `/`), routed as sent, so `x%2Fcontent` is the
profile of `x/content`, not the content of `x`; the metrics name the route templates, never an id."""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import quote

import httpx
import orjson
import pytest

from orchestration.collector import profile_api
from orchestration.settings import SECRET_VARIABLE, Settings
from resources.lake import LakeResource
from resources.landing import LandingResource
from resources.state import StateResource
from services.collector.app import CollectorConfig, create_collector_app
from services.server import ServerThread
from stores.ingest import ingest
from stores.state.rebuild import rebuild
from tests.profile_shop import API_KEY, PRODUCTS, headers, message

# user id -> first name; every id holds a `/`, which no route reached before
USERS = {
    "x": "Xavier",
    "x/content": "Cora",  # its last segment is the content route's
    "https://shop.example/u/42?ref=mail#top": "Uri",
    "ann marie/50% off": "Ann",  # a space, a `%` that is no escape
    "zoë/ünï 東京": "Zoë",  # outside ASCII
    "a%2Fb/c": "Abe",  # a literal `%2F` beside a `/`
    "/": "Solo",
}
SLASHED = [user for user in USERS if "/" in user]


def segment(user_id: str) -> str:
    return quote(user_id, safe="")


@pytest.fixture
def client(
    settings: Settings, lake: LakeResource, landing: LandingResource, monkeypatch: pytest.MonkeyPatch
) -> Iterator[httpx.Client]:
    """The collector as `lakemail serve collector` wires the profile API, on an ephemeral loopback port,
    over a lake and a store holding USERS (each signed up with an email and a first name)."""
    monkeypatch.setenv(SECRET_VARIABLE, "test-secret")
    landing.land("catalog/products.ndjson", b"\n".join(orjson.dumps(p) for p in PRODUCTS) + b"\n")
    signups = [
        message(
            "identify", 10, user=user, email=f"user{n}@example.com", first_name=name, marketing_consent=True
        )
        for n, (user, name) in enumerate(USERS.items())
    ]
    landing.land("events/signups.ndjson", b"\n".join(signups) + b"\n")
    ingest(lake, landing)
    rebuild(lake, StateResource(uri=settings.state_store_uri))
    app = create_collector_app(
        CollectorConfig(landing=landing.root, write_keys=("wk",), profiles=profile_api(settings, API_KEY))
    )
    with ServerThread(app) as server, httpx.Client(base_url=server.url, timeout=30) as http:
        yield http


@pytest.mark.parametrize("user_id", SLASHED)
def test_a_user_id_holding_a_slash_has_its_profile_and_content(client: httpx.Client, user_id: str) -> None:
    profile = client.get(f"/v1/profiles/{segment(user_id)}", headers=headers())
    assert profile.status_code == 200, profile.text
    assert (profile.json()["user_id"], profile.json()["first_name"]) == (user_id, USERS[user_id])
    content = client.get(f"/v1/profiles/{segment(user_id)}/content", headers=headers())
    assert content.status_code == 200, content.text
    assert (content.json()["kind"], content.json()["first_name"]) == ("welcome", USERS[user_id])


def test_an_encoded_slash_is_part_of_the_id_and_a_plain_one_is_the_path(client: httpx.Client) -> None:
    cora = client.get("/v1/profiles/x%2Fcontent", headers=headers()).json()
    assert (cora["user_id"], cora["first_name"]) == ("x/content", "Cora") and "kind" not in cora
    coras_email = client.get("/v1/profiles/x%2Fcontent/content", headers=headers()).json()
    assert (coras_email["kind"], coras_email["first_name"]) == ("welcome", "Cora")
    xaviers_email = client.get("/v1/profiles/x/content", headers=headers()).json()
    assert (xaviers_email["kind"], xaviers_email["first_name"]) == ("welcome", "Xavier")
    assert client.get("/v1/profiles/x", headers=headers()).json()["first_name"] == "Xavier"
    # a `/` sent plainly is a path separator: no route has three segments after /v1/profiles
    assert client.get("/v1/profiles/x/content/content", headers=headers()).status_code == 404
    unknown = client.get(f"/v1/profiles/{segment('x/nobody')}", headers=headers())
    assert (unknown.status_code, unknown.json()["code"]) == (404, "profile_not_found")


def test_the_metrics_name_route_templates_never_an_id(client: httpx.Client) -> None:
    for user_id in SLASHED:
        client.get(f"/v1/profiles/{segment(user_id)}", headers=headers())
        client.get(f"/v1/profiles/{segment(user_id)}/content", headers=headers())
    metrics = client.get("/metrics").text
    templates = {"/v1/profiles/{user_id}", "/v1/profiles/{user_id}/content"}
    assert {route for route in re.findall(r'route="([^"]*)"', metrics) if "profiles" in route} == templates
    for template in templates:
        found = f'lakemail_profile_lookups_total{{outcome="found",route="{template}"}} {len(SLASHED)}.0'
        assert found in metrics
    for user_id in (u for u in SLASHED if u != "/"):  # "/" is in every route
        assert user_id not in metrics and segment(user_id) not in metrics
    assert "Cora" not in metrics and "ann marie" not in metrics.lower()
