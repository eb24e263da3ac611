"""An `Unsubscribed` that carries only an anonymous id suppresses the user who claims that id (found by a
code review, 2026-12-05: a preference centre's unsubscribe from a browser that had logged in suppressed
nobody, and the pending cart email went out), whether the claim came before, in the same batch or in any
later one (found by review: linked a batch later, the user was still mailed)."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import orjson
import polars as pl
import pytest

from resources.lake import LakeResource
from resources.landing import LandingResource
from resources.state import StateResource
from stores.decide import reads
from stores.decide.engine import run_engine
from stores.ingest import ingest
from stores.state.sync import ready
from stores.triggers import EngineReport
from tests.lake.decide_harness import POLICY
from tests.lake.test_state_live import ingest_namespaces_equal
from tests.lake.test_state_sync import Crash, CrashingLake
from tests.story import at, message, spec_message
from transforms.erasure.records import anonymous_key, suppressed, user_key
from transforms.schema import SUPPRESSIONS_SCHEMA, TRIGGERS_SCHEMA

SECRET = "test-secret"


def _message(mid: str, kind: str, **fields: object) -> bytes:
    body = {"messageId": mid, "type": kind, "timestamp": "2026-11-20T10:00:00Z", **fields}
    return orjson.dumps(body) + b"\n"


def _suppressed(lake: LakeResource) -> set[str]:
    return set(lake.read("suppressions", SUPPRESSIONS_SCHEMA)["user_key"])


def _users(lake: LakeResource, *users: str) -> frozenset[str]:
    """Who of `users` (no addresses) the table suppresses."""
    profiles = pl.DataFrame(
        {"user_id": users, "email": [None] * len(users)}, schema_overrides={"email": pl.String}
    )
    return suppressed(profiles, _suppressed(lake), SECRET)


def test_an_anonymous_unsubscribe_suppresses_the_user_who_claims_the_id(tmp_path: Path) -> None:
    lake, landing = LakeResource(uri=str(tmp_path / "lake")), LandingResource(uri=str(tmp_path / "landing"))
    identify = _message("i-1", "identify", userId="u-1", anonymousId="a-1", traits={"email": "a@example.com"})
    landing.land("events/1.ndjson", identify)
    ingest(lake, landing, secret=SECRET)
    unsubscribe = _message("x-1", "track", event="Unsubscribed", anonymousId="a-1")
    stranger = _message("x-2", "track", event="Unsubscribed", anonymousId="a-nobody")  # no user to suppress
    landing.land("events/2.ndjson", unsubscribe + stranger)
    ingest(lake, landing, secret=SECRET)
    remembered = {anonymous_key("a-1", SECRET), anonymous_key("a-nobody", SECRET)}
    assert _suppressed(lake) == {user_key("u-1", SECRET), *remembered}
    assert _users(lake, "u-1", "a-nobody", "u-other") == {"u-1"}  # an anonymous key is no user's key


def test_an_identify_and_an_anonymous_unsubscribe_in_one_batch(tmp_path: Path) -> None:
    lake, landing = LakeResource(uri=str(tmp_path / "lake")), LandingResource(uri=str(tmp_path / "landing"))
    lines = _message("i-2", "identify", userId="u-2", anonymousId="a-2", traits={"email": "b@example.com"})
    lines += _message("x-3", "track", event="Unsubscribed", anonymousId="a-2")
    landing.land("events/1.ndjson", lines)
    ingest(lake, landing, secret=SECRET)
    rows = lake.read("suppressions", SUPPRESSIONS_SCHEMA).sort("user_key")
    keys = sorted([user_key("u-2", SECRET), anonymous_key("a-2", SECRET)])
    assert rows.select("user_key", "reason").rows() == [(k, "unsubscribed") for k in keys]
    assert rows["since"].dt.year().to_list() == [2026] * 2 and rows.schema == pl.Schema(SUPPRESSIONS_SCHEMA)


class Home:
    """A lake, a landing zone and a live state store: the ingest lane commits each batch to the store."""

    def __init__(self, root: Path) -> None:
        self.lake = LakeResource(uri=str(root / "lake"))
        self.landing = LandingResource(uri=str(root / "landing"))
        self.state = StateResource(uri=str(root / "state"))

    def batch(self, name: str, now: datetime, *messages: dict, lake: LakeResource | None = None) -> None:
        self.landing.land(f"events/{name}.ndjson", b"".join(orjson.dumps(m) + b"\n" for m in messages))
        ingest(lake or self.lake, self.landing, now=now, state=self.state, secret=SECRET)

    def engine(self, now: datetime) -> EngineReport:
        with self.lake.writer_lock():
            return run_engine(self.lake, self.state, now=now, secret=SECRET, policy=POLICY)

    def decisions(self, user: str) -> list[tuple[str, str]]:
        """(kind, decision) of `user`'s decided rows, pending ones aside, by decision time, then kind."""
        log = self.lake.read("triggers", TRIGGERS_SCHEMA).filter(pl.col("user_id") == user)
        final = log.filter(~pl.col("decision").is_in(["held", "quiet_hours_deferred"]))
        return final.sort("decided_at", "kind").select("kind", "decision").rows()

    def store_suppresses(self, *users: str) -> frozenset[str]:
        """Who of `users` the state store's suppressions hold (as the engine and the sender ask it)."""
        profiles = pl.DataFrame(
            {"user_id": users, "email": [None] * len(users)}, schema_overrides={"email": pl.String}
        )
        with self.state.reader() as reader:
            return reads.suppressed_users(reader, profiles, SECRET)


def _signup(user: str, when: datetime, anon: str | None = None) -> dict:
    traits = {"email": f"{user}@example.com", "marketing_consent": True, "timezone": "Europe/London"}
    return message("identify", when, user=user, anon=anon, **traits)


def _cart(user: str, when: datetime) -> dict:
    return message(
        "Product Added", when, user=user, cart_id=f"c-{user}", product_id="p1", name="Mug", price=9.5
    )


def test_an_anonymous_unsubscribe_suppresses_the_user_who_claims_the_id_a_batch_later(tmp_path: Path) -> None:
    """Batch 1: a browser unsubscribes, nobody claims it. Batch 2: the shopper logs in from it (identify)
    and carts. Neither the welcome nor the cart email is sent: both are `suppressed`."""
    home = Home(tmp_path)
    home.batch("1", at(1), message("Unsubscribed", at(0), anon="a-later"))
    assert home.store_suppresses("u-later") == frozenset() and _users(home.lake, "u-later") == frozenset()
    home.batch("2", at(12), _signup("u-later", at(10), anon="a-later"), _cart("u-later", at(11)))
    assert _users(home.lake, "u-later") == {"u-later"}  # the table, as `lakemail sql` reads it
    assert home.store_suppresses("u-later") == {"u-later"}  # the store, as the engine and sender read it
    home.engine(at(11 + 61))
    assert home.decisions("u-later") == [("abandoned_cart", "suppressed"), ("welcome", "suppressed")]
    assert ingest_namespaces_equal(home.lake, home.state) == {}  # `lakemail state check`


def test_a_waiting_cart_email_is_suppressed_when_an_alias_claims_an_unsubscribed_id(tmp_path: Path) -> None:
    """The cart email is pending (held until its delay passes) when an alias in a later batch links the
    unsubscribed browser to the shopper: it is `suppressed`, not sent; a cart after that too."""
    home = Home(tmp_path)
    signed_up = at(-3 * 24 * 60)
    home.batch("0", signed_up, _signup("u-wait", signed_up))
    home.engine(signed_up + timedelta(minutes=1))
    assert home.decisions("u-wait") == [("welcome", "send")]
    home.batch("1", at(2), message("Unsubscribed", at(0), anon="a-wait"), _cart("u-wait", at(1)))
    home.engine(at(5))
    assert home.decisions("u-wait") == [("welcome", "send")]  # the cart email waits for its delay
    home.batch("2", at(11), spec_message("alias", at(10), user="u-wait", previous_id="a-wait"))
    home.engine(at(62))
    assert home.decisions("u-wait")[1:] == [("abandoned_cart", "suppressed")]
    assert ingest_namespaces_equal(home.lake, home.state) == {}


def test_an_anonymous_id_nobody_claims_suppresses_no_one(tmp_path: Path) -> None:
    home = Home(tmp_path)
    home.batch("1", at(1), message("Unsubscribed", at(0), anon="a-stray"))
    home.batch("2", at(12), _signup("u-other", at(10), anon="a-mine"), _cart("u-other", at(11)))
    home.engine(at(11 + 61))
    assert home.decisions("u-other") == [("abandoned_cart", "capped"), ("welcome", "send")]
    assert home.store_suppresses("u-other", "a-stray") == frozenset()
    assert ingest_namespaces_equal(home.lake, home.state) == {}


@pytest.mark.parametrize("crash", [True, False])
def test_a_store_caught_up_past_the_claiming_batch_suppresses_the_user(tmp_path: Path, crash: bool) -> None:
    """The claiming batch's store commit is lost (a crash after its `ingest_log` commit): the next run's
    catch-up from the lake suppresses the user as the live commit would have."""
    home = Home(tmp_path)
    home.batch("1", at(1), message("Unsubscribed", at(0), anon="a-crash"))
    claim = _signup("u-crash", at(10), anon="a-crash")
    if crash:
        with pytest.raises(Crash):
            home.batch("2", at(11), claim, lake=CrashingLake(uri=home.lake.uri, after="ingest_log"))
        assert home.state.store().stamps()["ingest"] == 1 and home.lake.committed_batch() == 2
        assert ready(home.lake, home.state).action == "caught up 1"
    else:
        home.batch("2", at(11), claim)
    assert home.store_suppresses("u-crash") == {"u-crash"}
    assert ingest_namespaces_equal(home.lake, home.state) == {}
