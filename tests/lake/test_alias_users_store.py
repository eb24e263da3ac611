"""An `alias` whose `previousId` is a former user id merges that user into the new one over a real lake and
state store (found by review: the old id kept its own profile, cart, consent and address). The live store,
the lake's profiles and a rebuilt store (`lakemail state rebuild`) hold one shopper under the new id
whatever batches the events land in, an earlier alias landing late included (the old id changes hands:
merged again from the lake); `state check` finds them equal; the engine decides from the store as the
lake's readers do; the profile API serves the new id and no longer the old one; the old id's unsubscribe
suppresses the new id. A lake and store from before `aliased_at` take a rename landing after the upgrade.
Any batches of such stories keep the live store equal to a rebuilt one."""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import polars as pl
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from resources.state import StateResource
from stores.profiles import profiles_view
from stores.state.rebuild import check, rebuild
from stores.state.refresh import fold
from stores.state.view import open_profiles
from tests.lake.decide_harness import Shop, lake_decides, minutes, sorted_rows
from tests.lake.test_checkout_cart_store import profile_api
from tests.lake.test_state_live import ingest_cut, resources
from tests.story import spec_message
from transforms.schema import IDENTITIES_SCHEMA
from transforms.state import StateChanges

START = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)  # a Tuesday, noon UTC
DAY = 24 * 60
API_KEY = "profile-api-key"
MUG: dict[str, Any] = {"product_id": "mug", "name": "Mug", "price": 10.0, "quantity": 1}
# (user_id, email, marketing_consent, order_count, cart product ids) of every profile
Shoppers = list[tuple[str, str | None, bool | None, int, list[str]]]


def _signed_up(home: Path, *users: str) -> Shop:
    shop = Shop(home)
    traits: dict[str, Any] = {"marketing_consent": True, "timezone": "Europe/London"}
    signup = [
        spec_message("identify", minutes(START, -3 * DAY), user=u, email=f"{u}@example.com", **traits)
        for u in users
    ]
    shop.batch("b-signup", signup, minutes(START, -3 * DAY))
    shop.engine(minutes(START, -3 * DAY))  # the welcomes go out days before the carts (the 16 h cap)
    return shop


def _added(at: float, user: str) -> dict:
    return spec_message("Product Added", minutes(START, at), user=user, **MUG)


def _alias(at: float, user: str, previous: str) -> dict:
    return spec_message("alias", minutes(START, at), user=user, previous_id=previous)


def _ordered(at: float, user: str) -> dict:
    fields: dict[str, Any] = {"order_id": f"o-{user}-{at}", "revenue": 10.0, "currency": "EUR"}
    return spec_message("Order Completed", minutes(START, at), user=user, products=[MUG], **fields)


def _shoppers(profiles: pl.DataFrame) -> Shoppers:
    rows = profiles.sort("user_id").select(
        "user_id", "email", "marketing_consent", "order_count", "cart_items"
    )
    return [(u, e, c, n, [i["product_id"] for i in items]) for u, e, c, n, items in rows.iter_rows()]


def _stored(state: StateResource, at: datetime) -> Shoppers:
    _, chunks = open_profiles(state.store(), at)
    return _shoppers(pl.concat(list(chunks)))


def _everywhere(shop: Shop, at: datetime, expected: Shoppers, home: Path) -> None:
    """The live store, the lake's profiles and a rebuilt store serve `expected`; the store checks equal."""
    report = check(shop.lake, shop.state)
    assert report.equal, report.summary()
    assert _stored(shop.state, at) == expected
    assert _shoppers(profiles_view(shop.lake, at)) == expected
    rebuilt = StateResource(uri=str(home / f"rebuilt-{len(list(home.glob('rebuilt-*')))}"))
    rebuild(shop.lake, rebuilt)
    assert _stored(rebuilt, at) == expected


def test_a_renamed_user_is_one_shopper_in_the_store_the_lake_a_rebuild_the_engine_and_the_profile_api(
    tmp_path: Path,
) -> None:
    """Ann signs up as u-old and carts as u-old; the shop renames her u-new, and she orders as u-new a
    batch later; Bob (u-b) carts and leaves."""
    shop = _signed_up(tmp_path / "shop", "u-old", "u-b")
    shop.batch("b0", [_added(0, "u-old"), _added(0, "u-b")], minutes(START, 1))
    shop.batch("b1", [_alias(2, "u-new", "u-old")], minutes(START, 3))
    carting: Shoppers = [
        ("u-b", "u-b@example.com", True, 0, ["mug"]),
        ("u-new", "u-old@example.com", True, 0, ["mug"]),
    ]
    _everywhere(shop, minutes(START, 3), carting, tmp_path)
    shop.batch("b2", [_ordered(4, "u-new")], minutes(START, 5))
    ordered: Shoppers = [carting[0], ("u-new", "u-old@example.com", True, 1, [])]
    _everywhere(shop, minutes(START, 5), ordered, tmp_path)
    assert fold(shop.lake, every=1) == shop.lake.committed_batch()
    _everywhere(shop, minutes(START, 5), ordered, tmp_path)

    for at in (5, 61, 90):
        live = sorted_rows(shop.decide(minutes(START, at)).rows)
        assert lake_decides(shop, minutes(START, at)).equals(live)
        shop.engine(minutes(START, at))
    sent = shop.log().filter(pl.col("decision") == "send").sort("kind", "user_id")
    assert sent.select("kind", "user_id").rows() == [
        ("abandoned_cart", "u-b"),
        ("welcome", "u-b"),
        ("welcome", "u-old"),
    ]

    with profile_api(shop) as client:
        auth = {"Authorization": f"Bearer {API_KEY}"}
        ann = client.get("/v1/profiles/u-new", headers=auth).json()
        assert (ann["email"], ann["marketing_consent"], ann["order_count"], ann["cart_items"]) == (
            "u-old@example.com",
            True,
            1,
            [],
        )
        assert client.get("/v1/profiles/u-old", headers=auth).status_code == 404


def test_an_earlier_alias_landing_late_moves_the_old_id_and_a_chain_of_renames_follows(
    tmp_path: Path,
) -> None:
    """u-old is renamed u-x (landing first), then an earlier rename to u-new lands: u-old is u-new's (its
    first alias), merged again from the lake; u-new is renamed u-last, and u-old's cart follows."""
    shop = _signed_up(tmp_path / "shop", "u-old", "u-x")
    shop.batch("b0", [_added(0, "u-old"), _alias(10, "u-x", "u-old")], minutes(START, 11))
    _everywhere(shop, minutes(START, 11), [("u-x", "u-x@example.com", True, 0, ["mug"])], tmp_path)
    shop.batch("b1", [_alias(5, "u-new", "u-old")], minutes(START, 12))
    both: Shoppers = [
        ("u-new", "u-old@example.com", True, 0, ["mug"]),
        ("u-x", "u-x@example.com", True, 0, []),
    ]
    _everywhere(shop, minutes(START, 12), both, tmp_path)
    shop.batch("b2", [_alias(13, "u-last", "u-new"), _added(14, "u-old")], minutes(START, 15))
    last: Shoppers = [("u-last", "u-old@example.com", True, 0, ["mug"]), both[1]]
    _everywhere(shop, minutes(START, 15), last, tmp_path)


def test_the_old_ids_unsubscribe_suppresses_the_new_id(tmp_path: Path) -> None:
    """Ann unsubscribes as u-old, is renamed u-new a batch later and carts as u-new: no cart email."""
    shop = _signed_up(tmp_path / "shop", "u-old")
    shop.batch("b0", [spec_message("Unsubscribed", minutes(START, 0), user="u-old")], minutes(START, 1))
    shop.batch("b1", [_alias(2, "u-new", "u-old"), _added(3, "u-new")], minutes(START, 4))
    for at in (4, 64):
        shop.engine(minutes(START, at))
    cart = shop.log().filter(pl.col("kind") == "abandoned_cart").sort("evaluation")
    assert cart.select("user_id", "decision").rows()[-1] == ("u-new", "suppressed")


def _as_written_before(shop: Shop) -> None:
    """The lake and store as the release before `aliased_at` wrote them: no column, no field."""
    lake = shop.lake
    edges = lake.read("identities", IDENTITIES_SCHEMA).drop("aliased_at")
    lake.overwrite("identities", edges, batch_id=lake.committed_batch())
    assert "aliased_at" not in pl.scan_delta(lake.table_uri("identities")).collect_schema()
    old_way = StateChanges()
    for key, value in shop.state.store().scan("identity_links"):
        links = [
            {k: v for k, v in link.items() if k != "aliased_at"} for link in orjson.loads(value)["links"]
        ]
        old_way.put("identity_links", key, orjson.dumps({"links": links}))
    shop.state.commit(lake.committed_batch(), old_way)


def test_a_lake_and_store_from_before_aliased_at_merge_a_user_renamed_after_the_upgrade(
    tmp_path: Path,
) -> None:
    """u-old carts and identifies with an anonymous id before the upgrade; the rename lands after it."""
    shop = _signed_up(tmp_path / "shop", "u-old")
    shop.batch("b0", [_added(0, "u-old"), _alias(1, "u-old", "a-1")], minutes(START, 2))
    _as_written_before(shop)
    shop.batch("b1", [_alias(3, "u-new", "u-old"), _ordered(4, "u-new")], minutes(START, 5))
    ordered: Shoppers = [("u-new", "u-old@example.com", True, 1, [])]
    _everywhere(shop, minutes(START, 5), ordered, tmp_path)
    assert fold(shop.lake, every=1) == shop.lake.committed_batch()
    _everywhere(shop, minutes(START, 5), ordered, tmp_path)


USERS = ("u1", "u2", "u3")
stories = st.lists(
    st.tuples(
        st.sampled_from(["alias", "identify", "Product Added", "Order Completed"]),
        st.sampled_from(USERS),
        st.sampled_from([*USERS, "a1"]),  # the previous id of an alias: a user's, or an anonymous id
        st.integers(0, 30),
    ),
    min_size=2,
    max_size=8,
)


def _story_message(n: int, kind: str, user: str, other: str, at: int) -> dict:
    when = minutes(START, at)
    if kind == "alias":
        message = spec_message("alias", when, user=user, previous_id=other)
    elif kind == "identify":
        message = spec_message("identify", when, user=user, anon="a1", email=f"{user}@example.com")
    elif kind == "Product Added":
        message = spec_message(kind, when, user=user, **MUG)
    else:
        message = spec_message(kind, when, user=user, order_id=f"o{n}", revenue=10.0, products=[MUG])
    return {**message, "messageId": f"m{n}"}


@settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck))
@given(story=stories, cuts=st.lists(st.integers(1, 7), max_size=3))
@example(
    story=[("Product Added", "u1", "u1", 0), ("alias", "u2", "u1", 5), ("alias", "u3", "u2", 2)], cuts=[1, 2]
)
def test_a_live_store_equals_a_rebuilt_one_after_any_batches_of_renames(
    story: list[tuple[str, str, str, int]], cuts: list[int]
) -> None:
    """... and holds no profile under a user id an alias renamed and no alias names as its new id."""
    rows = [_story_message(n, *step) for n, step in enumerate(story)]
    renamed = {
        other for kind, user, other, _ in story if kind == "alias" and other in USERS and other != user
    }
    renamed -= {user for kind, user, *_ in story if kind == "alias"}
    with tempfile.TemporaryDirectory() as folder:
        lake, landing, state = resources(Path(folder))
        ingest_cut((lake, landing, state), rows, cuts)
        assert not {key for key, _ in state.store().scan("profiles")} & renamed
