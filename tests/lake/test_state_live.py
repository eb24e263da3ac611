"""The state store kept live by the ingest (#15): after any sequence of batches, a live store equals one
rebuilt from the lake alone (`stores.state.rebuild.check`), and the store answers the dedupe with no
date horizon."""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from resources.lake import LakeResource
from resources.landing import LandingResource
from resources.state import StateResource
from resources.state_lmdb import LmdbStore
from stores.ingest import ingest
from stores.state.rebuild import check
from stores.state.refresh import fold
from transforms.schema import EVENTS_SCHEMA

SECRET = "test-secret"
T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
INGEST_NAMESPACES = (
    "landed_files",
    "event_ids",
    "identity_links",
    "profiles",
    "suppressions",
    "catalog",
    "product_viewers",
    "customers",
)
USERS, ANONS, PRODUCTS = ["u1", "u2"], ["a1", "a2", "a3"], ["p1", "p2"]


def at(minutes: int) -> str:
    return (T0 + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")


@st.composite
def messages(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["identify", "alias", "Product Viewed", "Product Added", "Unsubscribed"]))
    body: dict[str, Any] = {
        "messageId": f"m{draw(st.integers(0, 40))}",  # a small pool: retries across batches happen
        "timestamp": at(draw(st.integers(0, 3 * 24 * 60))),  # out of order over three days
    }
    user, anon = draw(st.sampled_from([None, *USERS])), draw(st.sampled_from([None, *ANONS]))
    if kind == "identify":
        body |= {"type": "identify", "userId": user or "u1", "anonymousId": anon or "a1"}
        body["traits"] = {"email": f"{body['userId']}@example.com", "first_name": draw(st.sampled_from("AB"))}
    elif kind == "alias":
        body |= {"type": "alias", "userId": user or "u2", "previousId": anon or "a2"}
    else:
        body |= {"type": "track", "event": kind, **({"userId": user} if user else {})}
        body |= {"anonymousId": anon} if anon or not user else {}
        body["properties"] = {"product_id": draw(st.sampled_from(PRODUCTS)), "cart_id": "c1", "price": 5.0}
    if "userId" not in body and "anonymousId" not in body:
        body["anonymousId"] = "a1"
    return body


def resources(home: Path) -> tuple[LakeResource, LandingResource, StateResource]:
    """The lake, landing zone and state store under `home`."""
    lake, landing = LakeResource(uri=str(home / "lake")), LandingResource(uri=str(home / "landing"))
    return lake, landing, StateResource(uri=str(home / "state"))


def land(landing: LandingResource, name: str, batch: list[dict[str, Any]]) -> None:
    landing.land(f"events/{name}.ndjson", b"".join(orjson.dumps(m) + b"\n" for m in batch))


def ingest_namespaces_equal(lake: LakeResource, state: StateResource) -> dict[str, str]:
    """Namespaces (and the ingest stamp) where the live store differs from a rebuilt one."""
    report = check(lake, state)
    assert report.store_stamps is not None
    diffs = {n: str(report.namespaces[n]) for n in INGEST_NAMESPACES if not report.namespaces[n].equal}
    if report.store_stamps["ingest"] != report.lake_stamps["ingest"]:
        diffs["stamp"] = f"{report.store_stamps['ingest']} != {report.lake_stamps['ingest']}"
    return diffs


def ingest_cut(
    home: tuple[LakeResource, LandingResource, StateResource],
    rows: list[dict[str, Any]],
    cuts: list[int],
) -> None:
    """`rows` landed and ingested in batches cut at `cuts` (those within them), the live store equal to a
    rebuilt one after each batch and after folding every batch into the lake's profiles."""
    lake, landing, state = home
    edges = sorted({c for c in cuts if c < len(rows)})
    for n, (a, b) in enumerate(zip([0, *edges], [*edges, len(rows)], strict=True)):
        land(landing, f"b{n}", rows[a:b])
        ingest(lake, landing, state=state, secret=SECRET)
        assert ingest_namespaces_equal(lake, state) == {}, f"after batch {n + 1}"
    assert fold(lake, every=1) == lake.committed_batch()
    assert ingest_namespaces_equal(lake, state) == {}


@settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(st.lists(messages(), min_size=1, max_size=8), min_size=2, max_size=4))
def test_a_live_store_equals_a_rebuilt_one_after_any_batches(batches: list[list[dict[str, Any]]]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        lake, landing, state = resources(Path(folder))
        for n, batch in enumerate(batches):
            land(landing, f"b{n}", batch)
            ingest(lake, landing, state=state, secret=SECRET)
            assert ingest_namespaces_equal(lake, state) == {}, f"after batch {n + 1}"


def test_an_anonymous_shopper_claimed_earlier_by_another_user_moves_to_them(tmp_path: Path) -> None:
    lake, landing, state = resources(tmp_path)
    cart: dict[str, Any] = {"type": "track", "event": "Product Added", "anonymousId": "a1", "messageId": "m1"}
    cart |= {"timestamp": at(10), "properties": {"product_id": "p1", "cart_id": "c1", "price": 5.0}}
    later = {"type": "identify", "userId": "u1", "anonymousId": "a1", "messageId": "m2", "timestamp": at(60)}
    earlier = {"type": "alias", "userId": "u2", "previousId": "a1", "messageId": "m3", "timestamp": at(5)}
    for n, batch in enumerate([[cart], [later], [earlier]]):
        land(landing, f"b{n}", batch)
        ingest(lake, landing, state=state, secret=SECRET)
        assert ingest_namespaces_equal(lake, state) == {}
    held = {k for k, _ in state.store().scan("profiles")}
    assert "u2" in held and "anon:a1" not in held


def test_a_retry_received_three_days_later_is_a_duplicate(tmp_path: Path) -> None:
    lake, landing, state = resources(tmp_path)
    original: dict[str, Any] = {
        "type": "track",
        "event": "Product Viewed",
        "userId": "u1",
        "messageId": "m-retried",
    }
    land(landing, "first", [original | {"timestamp": at(0), "properties": {"product_id": "p1"}}])
    ingest(lake, landing, state=state, secret=SECRET)
    # The producer retries three days later with its own clock: the event date moves with it.
    retry = original | {"timestamp": at(3 * 24 * 60), "properties": {"product_id": "p1"}}
    land(landing, "retry", [retry])
    report = ingest(lake, landing, state=state, secret=SECRET)
    events = lake.read("events", EVENTS_SCHEMA)
    assert events.filter(pl.col("event_id") == "m-retried").height == 1
    assert (report.accepted, report.duplicates) == (0, 1)


@settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(st.lists(messages(), min_size=1, max_size=8), min_size=2, max_size=4))
def test_one_ingest_of_many_commit_groups_equals_a_rebuilt_store(batches: list[list[dict[str, Any]]]) -> None:
    # One run, a commit group per file: each group reads the profile states the group before it put
    # from memory (`live_profiles.HeldProfiles`, #17), not from the store; the store ends the same.
    with tempfile.TemporaryDirectory() as folder:
        lake, landing, state = resources(Path(folder))
        for n, batch in enumerate(batches):
            land(landing, f"b{n}", batch)
        report = ingest(lake, landing, state=state, secret=SECRET, max_batch_bytes=1)
        assert len(report.batches) == len(batches)
        assert ingest_namespaces_equal(lake, state) == {}


def test_a_commit_group_reads_the_profiles_the_group_before_it_put_from_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lake, landing, state = resources(tmp_path)
    for n in range(3):
        views = [
            {"type": "track", "event": "Product Viewed", "userId": user, "messageId": f"m{n}-{user}"}
            | {"timestamp": at(n), "properties": {"product_id": "p1"}}
            for user in USERS
        ]
        land(landing, f"b{n}", views)
    read: list[list[str]] = []
    get_frame = LmdbStore.get_frame

    def recorded(store: LmdbStore, namespace: str, keys: pl.Series) -> pl.DataFrame:
        if namespace == "profiles":
            read.append(keys.to_list())
        return get_frame(store, namespace, keys)

    monkeypatch.setattr(LmdbStore, "get_frame", recorded)
    report = ingest(lake, landing, state=state, secret=SECRET, max_batch_bytes=1)
    assert len(report.batches) == 3
    assert read == [USERS]  # the first group asks the store; the next two find both shoppers held
    assert ingest_namespaces_equal(lake, state) == {}
