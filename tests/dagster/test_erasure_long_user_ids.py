"""A shopper whose user id is longer than 256 characters could not be erased (found by review): the ingest
takes any id a landed line holds (32 KB), but a request for one was moved to `erasure/rejected/` and
`lakemail erase` refused it. Such a request now goes through `erasure_job` like any other; the state
store keeps that id's keys as their hashes (over 400 bytes), and those go too, the `user:` identity link
included when nothing in its value names the person (their one anonymous id is another shopper's)."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import orjson
import polars as pl
import pytest

from assets.erasure import run_config_for
from orchestration.definitions import build_defs
from orchestration.jobs import ERASURE_JOB
from orchestration.settings import Settings
from resources.lake import LakeResource
from resources.landing import LandingResource
from resources.state import StateResource
from stores.ingest import ingest
from stores.state.rebuild import check
from tests.story import at, message
from transforms.erasure.records import user_key
from transforms.schema import EVENTS_SCHEMA
from transforms.state import NAMESPACES, store_key

SECRET = "test-secret"
LONG = "ü" * 150 + "-" + "x" * 300  # 451 characters, 601 bytes: over a store key's 400
OLGA = "u-olga"


def _land(landing: LandingResource, anon: str) -> None:
    olga = message("identify", at(0), user=OLGA, anon="anon-olga", email="olga@example.com")
    theirs = [
        message("identify", at(1), user=LONG, anon=anon, email="long@example.com", marketing_consent=True),
        message("Product Added", at(2), user=LONG, anon=anon, cart_id="c-l", product_id="p1", price=5.0),
    ]
    landing.land("events/a.ndjson", b"".join(orjson.dumps(m) + b"\n" for m in [olga, *theirs]))


def _held(state: StateResource) -> set[str]:
    """The keys of the person's user id (as itself and as its `user:` link) the store holds, as the lake
    names them (the store keeps them as their hashes; asked for by a hash, it finds nothing)."""
    store = state.store()
    keys = [LONG, f"user:{LONG}"]
    assert all(store_key(k).startswith("#sha256:") for k in keys)
    return {key for ns in NAMESPACES for key in store.get_many(ns, keys)}


@pytest.mark.parametrize("anon", ["anon-long", "anon-olga"], ids=["own-anonymous-id", "olga-claimed-first"])
def test_a_request_for_a_user_id_over_256_characters_erases_them_and_their_hashed_store_keys(
    settings: Settings,
    lake: LakeResource,
    landing: LandingResource,
    instance: dg.DagsterInstance,
    monkeypatch: pytest.MonkeyPatch,
    anon: str,
) -> None:
    monkeypatch.setenv("LAKEMAIL_SECRET", SECRET)
    state = StateResource(uri=settings.state_store_uri)
    _land(landing, anon)
    ingest(lake, landing, now=at(3), state=state, secret=SECRET)
    assert _held(state) == {LONG, f"user:{LONG}"}
    request = Path(settings.landing_uri) / "erasure/req-long.json"
    request.parent.mkdir()
    request.write_bytes(orjson.dumps({"user_id": LONG}))  # as a producer drops one

    job = build_defs(settings).resolve_job_def(ERASURE_JOB)
    result = job.execute_in_process(instance=instance, run_config=run_config_for("erasure/req-long.json"))

    assert result.success
    [text] = result.output_for_node("erase_requests")  # none: the request was set aside, unerased
    certificate = orjson.loads(text)
    assert certificate["passed"] is True and certificate["user_key"] == user_key(LONG, SECRET)
    events = lake.read("events", EVENTS_SCHEMA)
    assert events.filter(pl.col("user_id") == LONG).is_empty()
    assert events.filter(pl.col("user_id") == OLGA).height == 1
    assert not (Path(settings.landing_uri) / "erasure/rejected").exists()
    assert _held(state) == set()
    assert check(lake, state).equal
