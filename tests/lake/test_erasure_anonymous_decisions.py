"""Erasing a shopper left the decisions of their anonymous candidates in the state store (found by review):
a cart of the anonymous id A, from before the login, decided `exited` (no email: no made id), kept its
`decided_triggers` entry, whose value holds no principal and a null user id, so nothing in it named the
person; `lakemail state check` then found the store unequal to a rebuild from the erased lake. Now the
entries the person's erased `triggers` and `trigger_state` rows made go with them (recorded for a rerun
like the event ids), and A's candidates stay when another user claimed A first
(`transforms.erasure.claims`)."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from stores.erasure import requests
from stores.erasure.requests import erase_user
from stores.state.rebuild import check
from tests.lake.test_unsubscribe_anonymous import SECRET, Home, _signup
from tests.story import at, message
from transforms.schema import TRIGGERS_SCHEMA
from transforms.state import NAMESPACES

A, X, Y = "anon-cart-5d1e", "u-stays", "u-leaves"


def _world(home: Home, other: str) -> None:
    """A carts c-1 and c-2 and orders (both carts exit; a post-purchase candidate waits); Y logs in with A
    (`other`: X too, after Y or before); A carts c-3 with no user id (a candidate of A's first claimant)."""
    home.batch(
        "b1",
        at(1),
        message("Product Added", at(0), anon=A, cart_id="c-1", product_id="p1", price=5.0),
        message("Product Added", at(0.2), anon=A, cart_id="c-2", product_id="p2", price=5.0),
        message(
            "Order Completed", at(0.5), anon=A, order_id="o-1", total=5.0, products=[{"product_id": "p2"}]
        ),
    )
    home.engine(at(200))
    logins = [_signup(Y, at(299), anon=A)]
    logins = {"none": logins, "after": [*logins, _signup(X, at(299.5), anon=A)]}.get(
        other, [_signup(X, at(298), anon=A), *logins]
    )
    home.batch("b2", at(300), *logins)
    home.engine(at(301))
    home.batch("b3", at(310), message("Product Added", at(309), anon=A, cart_id="c-3", product_id="p1"))
    home.engine(at(311))


def _anonymous_exits(home: Home) -> list[str]:
    """The trigger ids of A's candidates decided `exited` (under `anon:A`, no user id) in the lake."""
    log = home.lake.read("triggers", TRIGGERS_SCHEMA)
    exited = log.filter((pl.col("principal") == f"anon:{A}") & (pl.col("decision") == "exited"))
    return sorted(exited["trigger_id"])


def _naming(home: Home, *values: str) -> list[tuple[str, str]]:
    """(namespace, key) of every store entry whose key or value holds one of `values`."""
    found = []
    for namespace in NAMESPACES:
        for key, value in home.state.store().scan(namespace):
            if any(v in key or v.encode() in value for v in values):
                found.append((namespace, key))
    return found


@pytest.mark.parametrize("dies", [False, True], ids=["at-once", "rerun-after-a-crash"])
@pytest.mark.parametrize(
    "other", ["none", "after", "before"], ids=["alone", "y-claimed-first", "x-claimed-first"]
)
def test_erasing_a_shopper_takes_their_anonymous_decisions_from_the_store(
    tmp_path: Path, other: str, dies: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = Home(tmp_path)
    _world(home, other)
    exits = _anonymous_exits(home)
    assert len(exits) == 2 and check(home.lake, home.state).equal
    assert {k for _, k in _naming(home, *exits)} == set(exits)  # their decided_triggers entries
    made = sorted(set(home.lake.read("triggers", TRIGGERS_SCHEMA)["trigger_id"]))

    if dies:  # an erasure killed after its Delta commits, before the store's: the rerun has no rows left
        with monkeypatch.context() as patched:
            patched.setattr(requests, "rewrite_landing", _dies)
            with pytest.raises(RuntimeError, match="killed"):
                erase_user(
                    home.lake, home.landing, Y, secret=SECRET, request_id="erasure-1", state=home.state
                )
        assert _anonymous_exits(home) == ([] if other != "before" else exits)
    certificate = erase_user(
        home.lake, home.landing, Y, secret=SECRET, request_id="erasure-1", state=home.state
    )

    report = check(home.lake, home.state)
    assert report.equal, report.summary()  # the store is what a rebuild from the erased lake makes
    assert certificate.passed
    left = set(home.lake.read("triggers", TRIGGERS_SCHEMA)["trigger_id"])
    assert _naming(home, Y, *(set(made) - left)) == []  # no entry of the erased person's left
    if other == "before":  # X claimed A first: A's candidates are X's, in the lake and in the store
        assert _anonymous_exits(home) == exits
        assert sorted(k for _, k in _naming(home, *exits)) == exits
    else:
        assert _anonymous_exits(home) == [] and _naming(home, *exits) == []
    if other != "none":
        assert _naming(home, X) != []  # X's own entries stay


def _dies(*args: object) -> None:
    raise RuntimeError("killed after the tables, before the landed lines and the store")
