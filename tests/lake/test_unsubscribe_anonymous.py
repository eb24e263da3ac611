"""An `Unsubscribed` that carries only an anonymous id suppresses the user who claims that id (found by a
code review, 2026-12-05: a preference centre's unsubscribe from a browser that had logged in suppressed
nobody, and the pending cart email went out)."""

from __future__ import annotations

from pathlib import Path

import orjson
import polars as pl

from resources.lake import LakeResource
from resources.landing import LandingResource
from stores.ingest import ingest
from transforms.erasure.records import user_key
from transforms.schema import SUPPRESSIONS_SCHEMA

SECRET = "test-secret"


def _message(mid: str, kind: str, **fields: object) -> bytes:
    body = {"messageId": mid, "type": kind, "timestamp": "2026-11-20T10:00:00Z", **fields}
    return orjson.dumps(body) + b"\n"


def _suppressed(lake: LakeResource) -> set[str]:
    return set(lake.read("suppressions", SUPPRESSIONS_SCHEMA)["user_key"])


def test_an_anonymous_unsubscribe_suppresses_the_user_who_claims_the_id(tmp_path: Path) -> None:
    lake, landing = LakeResource(uri=str(tmp_path / "lake")), LandingResource(uri=str(tmp_path / "landing"))
    identify = _message("i-1", "identify", userId="u-1", anonymousId="a-1", traits={"email": "a@example.com"})
    landing.land("events/1.ndjson", identify)
    ingest(lake, landing, secret=SECRET)
    unsubscribe = _message("x-1", "track", event="Unsubscribed", anonymousId="a-1")
    stranger = _message("x-2", "track", event="Unsubscribed", anonymousId="a-nobody")  # no user to suppress
    landing.land("events/2.ndjson", unsubscribe + stranger)
    ingest(lake, landing, secret=SECRET)
    assert _suppressed(lake) == {user_key("u-1", SECRET)}


def test_an_identify_and_an_anonymous_unsubscribe_in_one_batch(tmp_path: Path) -> None:
    lake, landing = LakeResource(uri=str(tmp_path / "lake")), LandingResource(uri=str(tmp_path / "landing"))
    lines = _message("i-2", "identify", userId="u-2", anonymousId="a-2", traits={"email": "b@example.com"})
    lines += _message("x-3", "track", event="Unsubscribed", anonymousId="a-2")
    landing.land("events/1.ndjson", lines)
    ingest(lake, landing, secret=SECRET)
    rows = lake.read("suppressions", SUPPRESSIONS_SCHEMA)
    assert rows.select("user_key", "reason").rows() == [(user_key("u-2", SECRET), "unsubscribed")]
    assert rows["since"].dt.year().to_list() == [2026] and rows.schema == pl.Schema(SUPPRESSIONS_SCHEMA)
