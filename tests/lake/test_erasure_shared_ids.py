"""Erasing a shopper who identified with someone else's anonymous id deleted the victim's data (found by
review): X browsed and logged in with anonymous id A, then Y identified with A too, and the erasure of Y
took A as Y's key and deleted X's events, identity edge, profile partials, candidate and state-store
profile, took X's address for Y's (suppressing X), and blanked X's landed lines. Now the rows that carry
X's id stay, and A's anonymous rows go with whoever claimed A first (`transforms.erasure.claims`); the
certificate counts what was left and why."""

from __future__ import annotations

from pathlib import Path

import orjson
import polars as pl
import pytest

from stores.erasure.requests import erase_user
from stores.state.rebuild import check
from tests.lake.test_unsubscribe_anonymous import SECRET, Home, _signup
from tests.story import at, message
from transforms.erasure.records import address_key, certificate_summary, user_key
from transforms.profiles.tables import PROFILE_UPDATES_SCHEMA
from transforms.schema import EVENTS_SCHEMA, IDENTITIES_SCHEMA, SUPPRESSIONS_SCHEMA, TRIGGERS_SCHEMA

A, X, Y = "anon-shared-7f3e", "u-victim", "u-asker"


def _world(home: Home, y_first: bool) -> None:
    """A browses anonymously; X logs in with A and carts; Y identifies with A and browses; A browses on.
    `y_first`: Y's identify is the earlier one (Y claims A), else X's."""
    x_at, y_at = (20, 10) if y_first else (10, 20)
    home.batch("b1", at(1), message("Product Viewed", at(0), anon=A, product_id="p1"))
    home.batch(
        "b2",
        at(30),
        _signup(X, at(x_at), anon=A),
        message("Product Added", at(x_at + 1), user=X, anon=A, cart_id="c-x", product_id="p1", price=5.0),
    )
    home.batch(
        "b3",
        at(31),
        _signup(Y, at(y_at), anon=A),
        message("Product Viewed", at(y_at + 1), user=Y, anon=A, product_id="p2"),
        message("Product Viewed", at(25), anon=A, product_id="p3"),
    )
    home.engine(at(32))


def _of_x(home: Home) -> dict[str, object]:
    """X's rows in the lake and X's entries in the state store."""
    lake, store = home.lake, home.state.store()
    events = lake.read("events", EVENTS_SCHEMA).filter(pl.col("user_id") == X)
    partials = lake.read("profile_updates", PROFILE_UPDATES_SCHEMA).filter(pl.col("principal") == X)
    return {
        "events": sorted(events["event_id"]),
        "identities": lake.read("identities", IDENTITIES_SCHEMA).filter(pl.col("user_id") == X).rows(),
        "partials": partials.height,
        "triggers": lake.read("triggers", TRIGGERS_SCHEMA).filter(pl.col("user_id") == X).height,
        "store": {
            ns: store.get_many(ns, [k]) for ns, k in (("profiles", X), ("identity_links", f"user:{X}"))
        },
    }


def _lines(home: Home, name: str) -> list[dict]:
    data = (home.landing.root / f"events/{name}.ndjson").read_bytes()
    return [orjson.loads(line) for line in data.splitlines() if line]


@pytest.mark.parametrize("y_first", [False, True], ids=["x-claimed-first", "y-claimed-first"])
def test_erasing_a_shopper_keeps_the_user_who_shares_their_anonymous_id(
    tmp_path: Path, y_first: bool
) -> None:
    home = Home(tmp_path)
    _world(home, y_first)
    x_before = _of_x(home)
    assert x_before["events"] != [] and x_before["partials"] == 1 and x_before["triggers"] != 0

    certificate = erase_user(home.lake, home.landing, Y, secret=SECRET, state=home.state)

    assert _of_x(home) == x_before  # X's rows, edge, partials, decisions and store entries untouched
    assert check(home.lake, home.state).equal  # the store is what a rebuild from the erased lake makes
    events = home.lake.read("events", EVENTS_SCHEMA)
    assert events.filter(pl.col("user_id") == Y).is_empty()
    anonymous = events.filter(pl.col("user_id").is_null())["event_id"]
    assert anonymous.len() == (0 if y_first else 2)  # A's anonymous rows go with its first claimant
    suppressed = set(home.lake.read("suppressions", SUPPRESSIONS_SCHEMA)["user_key"])
    assert address_key(f"{Y}@example.com", SECRET) in suppressed
    assert address_key(f"{X}@example.com", SECRET) not in suppressed  # X's address is not Y's
    assert [m.get("userId") for m in _lines(home, "b2")] == [X, X]  # X's landed lines stay
    assert [m.get("userId") for m in _lines(home, "b3")] == ([] if y_first else [None])
    assert len(_lines(home, "b1")) == (0 if y_first else 1)

    assert certificate.passed
    claimed = 1 if y_first else 0
    assert (certificate.anonymous_ids, certificate.shared_ids, certificate.kept_ids) == (
        claimed,
        claimed,
        1 - claimed,
    )
    assert certificate.emails == 1 and certificate.user_key == user_key(Y, SECRET)
    deleted = {t.table: t.rows_deleted for t in certificate.tables if t.rows_deleted}
    assert deleted["events"] == 2 + 2 * claimed and deleted["identities"] == 1
    assert deleted["profile_updates"] == 1 + 2 * claimed  # Y's partial, and A's two when Y claimed it
    assert certificate.kept_rows["events"] == 2 + 2 * (1 - claimed)  # exactly what holds A now
    assert certificate.kept_rows["identities"] == 1
    assert certificate.kept_lines == 2 + 2 * (1 - claimed)
    summary = certificate_summary(certificate)
    assert (
        "kept because: they hold an anonymous id the person shares with another user" in summary
        and A not in summary
        and X not in summary
    )
    assert A not in certificate.to_json() and X not in certificate.to_json()


def test_a_link_not_ingested_yet_makes_an_anonymous_id_shared(tmp_path: Path) -> None:
    """X's identify with A has landed but is not ingested when Y (who alone holds A in the lake) is erased:
    X's line carries X's id and is not blanked; Y claimed A first, so A's anonymous row goes with Y."""
    home = Home(tmp_path)
    home.batch(
        "b1", at(2), _signup(Y, at(0), anon=A), message("Product Viewed", at(1), anon=A, product_id="p1")
    )
    home.landing.land("events/b2.ndjson", orjson.dumps(_signup(X, at(5), anon=A)) + b"\n")

    certificate = erase_user(home.lake, home.landing, Y, secret=SECRET, state=home.state)

    assert [m.get("userId") for m in _lines(home, "b2")] == [X]
    assert certificate.passed and certificate.shared_ids == 1 and certificate.kept_lines == 1
    events = home.lake.read("events", EVENTS_SCHEMA)
    assert events["user_id"].to_list() == []  # Y claimed A first: its anonymous row went with Y
