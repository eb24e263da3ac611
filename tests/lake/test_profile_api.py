"""The profile API (#16.3) over a real lake and state store: auth, profiles, stitched carts, content with
the send stage's fallbacks, 404 for anonymous and erased shoppers, and the store equal to the lake after
an erasure."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import orjson
import polars as pl
import pytest

from orchestration.settings import Settings
from resources.lake import LakeResource
from resources.landing import LandingResource
from resources.shop import ShopResource
from resources.state import StateResource
from resources.state_lmdb import close_environment
from resources.templates import default_renderer
from services.collector.app import CollectorConfig, create_collector_app
from services.collector.profile_store import ProfileStore
from services.collector.profiles import ProfileApi
from services.server import ServerThread
from stores.erasure.requests import erase_user
from stores.ingest import ingest
from stores.profiles import customers_for, state_for
from stores.state.profiles import profile_buckets
from stores.state.rebuild import check, rebuild
from tests.profile_shop import ADA, ADA_ANON, API_KEY, GHOST, NONAME, added, build_shop, headers, message
from transforms.profiles.derive import derive
from transforms.schema import CATALOG_SCHEMA
from transforms.sends.content import build_content
from transforms.sends.rows import trigger_facts
from transforms.triggers.rules.base import RuleContext
from transforms.triggers.rules.lifecycle import post_purchase_candidates

# One built shop for the module's tests, on one worker (make test runs --dist loadgroup).
pytestmark = pytest.mark.xdist_group("profile_api")
SECRET = "test-secret"
UNSUBSCRIBE = "https://shop.example/unsubscribe/t"


@contextmanager
def api_app(settings: Settings, state: StateResource, key: str | None = API_KEY) -> Iterator[httpx.Client]:
    """The collector with the profile API on a real socket (uvicorn on an ephemeral loopback port)."""
    shop = ShopResource()
    api = ProfileApi(
        ProfileStore(state, secret=SECRET), key, shop.shop(), timedelta(hours=shop.staleness_hours)
    )
    landing = LandingResource(uri=settings.landing_uri).root
    app = create_collector_app(CollectorConfig(landing=landing, write_keys=("wk",), profiles=api))
    with ServerThread(app) as server, httpx.Client(base_url=server.url, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def shop_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shop's first batch ingested and its store rebuilt (`build_shop`), once per module; each test's
    `client` serves a copy of its lake, landing zone and store."""
    home = tmp_path_factory.mktemp("profile-shop")
    made = Settings(home=home, lake_uri=str(home / "lake"), landing_uri=str(home / "landing"))
    store = StateResource(uri=made.state_store_uri)
    build_shop(LakeResource(uri=made.lake_uri), LandingResource(uri=made.landing_uri), store)
    close_environment(store.path)
    return home


@pytest.fixture
def client(shop_home: Path, settings: Settings, state: StateResource) -> Iterator[httpx.Client]:
    for part, to in (("lake", settings.lake_uri), ("landing", settings.landing_uri)):
        shutil.copytree(shop_home / part, to, dirs_exist_ok=True)
    shutil.copytree(shop_home / "state", state.path, ignore=shutil.ignore_patterns("lock.mdb"))
    with api_app(settings, state) as test_client:
        yield test_client


def test_a_known_user_gets_traits_crm_cart_and_the_batch(client: httpx.Client, lake: LakeResource) -> None:
    answer = client.get(f"/v1/profiles/{ADA}", headers=headers())
    assert answer.status_code == 200 and answer.headers["cache-control"] == "no-store"
    profile = answer.json()
    assert (profile["user_id"], profile["email"], profile["first_name"]) == (ADA, "ada@example.com", "Ada")
    assert profile["loyalty_tier"] == "gold" and profile["marketing_consent"] is True  # CRM and traits
    # The cart she filled before signing up is hers once the identify stitched her browser to her.
    assert profile["cart_id"] == "cart-ada" and [i["product_id"] for i in profile["cart_items"]] == ["p-1"]
    assert profile["cart_value"] == 59.9 and profile["recent_views"] == ["p-1"]
    assert profile["batch"] == lake.committed_batch() == 1 and profile["as_of"]


def test_unknown_anonymous_only_and_malformed_ids_are_404(client: httpx.Client) -> None:
    for user_id in (GHOST, f"anon:{GHOST}", ADA_ANON, "u-nobody", "x" * 300, "x" * 500):
        answer = client.get(f"/v1/profiles/{user_id}", headers=headers())
        assert (answer.status_code, answer.json()["code"]) == (404, "profile_not_found"), user_id
    assert client.get(f"/v1/profiles/{GHOST}/content", headers=headers()).status_code == 404


@pytest.mark.parametrize(
    "auth",
    [None, "Bearer wrong-key-wrong-key-wrong", f"Basic {API_KEY}", f"Bearer {API_KEY}x", "Bearer", API_KEY],
)
def test_no_or_a_wrong_key_is_401_on_both_routes(client: httpx.Client, auth: str | None) -> None:
    sent = {} if auth is None else {"Authorization": auth}
    for path in (f"/v1/profiles/{ADA}", f"/v1/profiles/{ADA}/content", "/v1/profiles/u-nobody"):
        answer = client.get(path, headers=sent)
        assert answer.status_code == 401 and answer.headers["www-authenticate"] == "Bearer"
        assert "ada" not in answer.text.lower()


def test_without_a_configured_key_the_api_is_off_not_open(
    settings: Settings, lake: LakeResource, landing: LandingResource, state: StateResource
) -> None:
    build_shop(lake, landing, state)
    with api_app(settings, state, key=None) as off:
        for auth in ({}, headers()):
            answer = off.get(f"/v1/profiles/{ADA}", headers=auth)
            assert answer.status_code == 503 and answer.json()["code"] == "profile_api_disabled"
            assert "LAKEMAIL_API_KEY" in answer.json()["message"]


def test_no_store_yet_is_503_with_retry_after(settings: Settings, state: StateResource) -> None:
    with api_app(settings, state) as client:
        answer = client.get(f"/v1/profiles/{ADA}", headers=headers())
    assert answer.status_code == 503 and answer.json()["code"] == "no_state_store"
    assert answer.headers["retry-after"] == "5"


def test_content_is_the_send_stages_content_with_its_fallbacks(client: httpx.Client) -> None:
    ada = client.get(f"/v1/profiles/{ADA}/content", headers=headers()).json()
    assert ada["kind"] == "abandoned_cart" and ada["aborted"] is None and ada["first_name"] == "Ada"
    assert [(line["name"], line["price"], line["quantity"]) for line in ada["cart"]["lines"]] == [
        ("Sandal", "€59.90", 1)
    ]
    # Same category, in stock, not in the cart: the boot (the loafer is sold out).
    assert [r["name"] for r in ada["recommendations"]] == ["Boot"]
    assert ada["recommendations_source"] == "personal" and ada["fallbacks"] == []

    nameless = client.get(f"/v1/profiles/{NONAME}/content", headers=headers()).json()
    assert nameless["first_name"] == "" and nameless["cart"]["lines"][0]["price"] == ""
    assert nameless["fallbacks"] == [
        {"block": "greeting", "reason": "no_first_name"},
        {"block": "cart_line", "reason": "product_not_in_catalog"},
        {"block": "recommendations", "reason": "no_recommendations"},
    ]
    welcome = client.get(f"/v1/profiles/{ADA}/content?kind=welcome", headers=headers()).json()
    assert welcome["kind"] == "welcome" and "cart" not in welcome
    bad = client.get(f"/v1/profiles/{ADA}/content?kind=spam", headers=headers())
    assert (bad.status_code, bad.json()["code"]) == (400, "unknown_kind")
    needs = client.get(f"/v1/profiles/{ADA}/content?kind=price_drop", headers=headers())
    assert (needs.status_code, needs.json()["code"]) == (400, "product_id_required")


def test_content_equals_what_the_send_stage_makes_from_the_lake_and_renders(
    client: httpx.Client, lake: LakeResource
) -> None:
    """The send stage's own inputs (profile from the lake's partials and CRM, the lake's catalog) give
    the email the API describes from the store; the rendered email shows its lines and cards."""
    served = client.get(f"/v1/profiles/{NONAME}/content", headers=headers()).json()
    now = datetime.now(UTC)
    # The lake's merged state (`stores.profiles.state_for` once a micro-batch has written the updates).
    state = pl.concat(profile_buckets(lake)).filter(pl.col("principal") == NONAME)
    profile = derive(state, customers_for(lake, [NONAME]), now).row(0, named=True)
    catalog = lake.read("catalog", CATALOG_SCHEMA)
    shop = ShopResource()
    made = build_content(
        "abandoned_cart", profile=profile, trigger={"anchor": profile["cart_id"]}, catalog=catalog,
        bestsellers=[], now=now, shop=shop.shop(), staleness=timedelta(hours=shop.staleness_hours),
    )  # fmt: skip
    expected = {k: v for k, v in made.context.items() if k != "shop"}
    assert {k: served[k] for k in expected} == expected and served["fallbacks"] == made.fallbacks
    parts = default_renderer().render(made, kind="abandoned_cart", variant="a", unsubscribe_url=UNSUBSCRIBE)
    assert all(line["name"] in parts.html for line in served["cart"]["lines"])
    assert "Old Hat" in parts.text and parts.html.count("<img") < 3  # the unknown product: no picture


def test_after_identify_stitches_an_anonymous_cart_the_profile_has_it(
    client: httpx.Client, lake: LakeResource, landing: LandingResource, state: StateResource
) -> None:
    assert client.get("/v1/profiles/u-late", headers=headers()).status_code == 404
    later = [
        added(10, "p-2", "cart-late", anon="anon-late"),
        message("identify", 5, user="u-late", anon="anon-late", email="late@example.com", first_name="Lu"),
    ]
    landing.land("events/second.ndjson", b"\n".join(later) + b"\n")
    ingest(lake, landing)
    rebuild(lake, state)  # a new store in place of the open one: the API reopens it
    profile = client.get("/v1/profiles/u-late", headers=headers()).json()
    assert profile["cart_id"] == "cart-late" and profile["cart_items"][0]["product_id"] == "p-2"
    assert profile["batch"] == 2


@pytest.mark.parametrize("length", [300, 450])  # over 400 bytes, the store keeps the id as its hash
def test_a_user_with_a_long_id_the_ingest_took_gets_their_profile(
    client: httpx.Client, lake: LakeResource, landing: LandingResource, state: StateResource, length: int
) -> None:
    """Found by review: the API answered 404 for any id over 256 characters, which the ingest takes."""
    user = "u-" + "x" * (length - 2)
    line = message("identify", 5, user=user, email="long@example.com", first_name="Lo")
    landing.land("events/long.ndjson", line + b"\n")
    ingest(lake, landing)
    rebuild(lake, state)
    answer = client.get(f"/v1/profiles/{user}", headers=headers())
    assert answer.status_code == 200 and answer.json()["user_id"] == user
    assert answer.json()["email"] == "long@example.com"


def test_a_post_purchase_preview_is_the_email_of_the_latest_order(
    client: httpx.Client, lake: LakeResource, landing: LandingResource, state: StateResource
) -> None:
    """Ada bought a belt two months ago (`p-0`: her purchases' first, alphabetically) and sandals now:
    the preview cross-sells shoes, as the email of the sandals' order will (its decision's facts)."""
    belt = {"product_id": "p-0", "name": "Belt", "category": "accessories", "price": 30.0, "stock": 4}
    landing.land("catalog/more.ndjson", orjson.dumps(belt) + b"\n")
    orders = [
        message(
            "Order Completed", 60 * 24 * 60, user=ADA, order_id="o-old", products=[{"product_id": "p-0"}]
        ),
        message("Order Completed", 10, user=ADA, order_id="o-new", products=[{"product_id": "p-1"}]),
    ]
    landing.land("events/orders.ndjson", b"\n".join(orders) + b"\n")
    ingest(lake, landing)
    rebuild(lake, state)
    served = client.get(f"/v1/profiles/{ADA}/content?kind=post_purchase", headers=headers()).json()
    assert served["aborted"] is None and [r["name"] for r in served["recommendations"]] == ["Boot"]

    now = datetime.now(UTC)
    merged, _ = state_for(lake, [ADA])
    catalog = lake.read("catalog", CATALOG_SCHEMA)
    rule = RuleContext(merged, now, timedelta(days=3), catalog, pl.DataFrame(), pl.DataFrame())
    [decision] = post_purchase_candidates(rule).to_dicts()  # the old order is past its email
    assert decision["anchor"] == "o-new"
    shop = ShopResource()
    made = build_content(
        "post_purchase", profile=derive(merged, customers_for(lake, [ADA]), now).row(0, named=True),
        trigger=trigger_facts(decision), catalog=catalog, bestsellers=[], now=now, shop=shop.shop(),
        staleness=timedelta(hours=shop.staleness_hours),
    )  # fmt: skip
    assert served["recommendations"] == made.context["recommendations"]


def test_after_erasure_the_api_says_404_and_the_store_equals_the_lake(
    client: httpx.Client, lake: LakeResource, landing: LandingResource, state: StateResource
) -> None:
    assert client.get(f"/v1/profiles/{ADA}", headers=headers()).status_code == 200
    before = state.store().counts()
    certificate = erase_user(lake, landing, ADA, secret=SECRET, state=state)
    assert certificate.passed
    for path in (f"/v1/profiles/{ADA}", f"/v1/profiles/{ADA}/content"):
        assert client.get(path, headers=headers()).status_code == 404
    store = state.store()
    assert store.get_many("profiles", [ADA, f"anon:{ADA_ANON}"]) == {}
    assert store.get_many("identity_links", [f"user:{ADA}", f"anon:{ADA_ANON}"]) == {}
    assert store.get_many("customers", [ADA]) == {}
    assert not [k for k, _ in store.scan("product_viewers") if ADA in k or ADA_ANON in k]
    after = store.counts()
    assert after["suppressions"] == before["suppressions"] + 2  # the id and the address, hashed
    assert after["event_ids"] == before["event_ids"] - 3 and store.stamps()["ingest"] == 1
    report = check(lake, state)
    assert report.equal, report.summary()
    assert client.get(f"/v1/profiles/{NONAME}", headers=headers()).status_code == 200  # others stay
