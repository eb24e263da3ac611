"""Erasing a shopper an `alias` renamed left her old id behind (found by review): since 456b477 a user
renamed by an alias (previousId u-old, userId u-new) is one shopper, the store merges u-old into u-new and
drops u-old's key, but the erasure of u-new took u-old as an anonymous id only: u-old's profile partials
with her address, her product views in the store (`product_viewers`: `lakemail state check` unequal
before 456b477 too) and her address's suppression stayed, the certificate passed, and a rebuild brought
u-old's profile back (`state check` unequal). The person is now the whole shopper, whichever of her ids
is erased: every user whose claims end where hers do, in turn, an alias landed but not ingested yet
included, recorded for a rerun; a user an alias named but did not claim stays another's, with the links
the erased lake still gives them. Real Delta tables and a live state store."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import polars as pl
import pytest

from stores.erasure import requests
from stores.erasure.requests import erase_user
from stores.state.rebuild import check
from tests.lake.test_unsubscribe_anonymous import SECRET, Home
from tests.story import at, spec_message
from transforms.erasure.records import address_key, user_key
from transforms.schema import SUPPRESSIONS_SCHEMA
from transforms.state import NAMESPACES

MUG: dict[str, Any] = {"product_id": "p-mug", "sku": "M-1", "name": "Mug", "price": 12.5, "quantity": 1}
ANN_ANON, BOB = "anon-ann-phone-7f3e", "u-bob"


def _signup(user: str, when: datetime, anon: str | None = None) -> dict:
    traits: dict[str, Any] = {
        "email": f"{user}@example.com",
        "marketing_consent": True,
        "timezone": "Europe/London",
    }
    return spec_message("identify", when, user=user, anon=anon, **traits)


def _alias(minutes: float, user: str, previous: str) -> dict:
    return spec_message("alias", at(minutes), user=user, previous_id=previous)


def _shop(
    home: Home, *renames: tuple[str, str], signed_up: tuple[str, ...] = (), orderer: str = "u-new"
) -> None:
    """Ann signs up as u-old from her phone and carts a mug; Bob (and `signed_up`) sign up, each from a
    browser of theirs, and Bob views it; the `renames` (user, previous id) land a batch each; Ann orders as
    `orderer`; the engine runs between the batches."""
    users = [_signup(u, at(0), anon=f"anon-{u}") for u in (BOB, *signed_up)]
    home.batch("b1", at(1), _signup("u-old", at(0), anon=ANN_ANON), *users)
    added = spec_message("Product Added", at(2), user="u-old", **MUG)
    viewed = spec_message("Product Viewed", at(2), user=BOB, product_id="p-mug")
    home.batch("b2", at(3), added, viewed)
    home.engine(at(4))
    for n, (user, previous) in enumerate(renames):
        home.batch(f"r{n}", at(6 + n), _alias(5 + n, user, previous))
    order: dict[str, Any] = {
        "order_id": "o-1",
        "total": 12.5,
        "revenue": 12.5,
        "currency": "EUR",
        "products": [MUG],
    }
    home.batch("b3", at(20), spec_message("Order Completed", at(19), user=orderer, **order))
    home.engine(at(90))


def _holding(home: Home, *needles: str) -> dict[str, int]:
    """Rows per lake table, entries per store namespace and lines per landed file holding a needle."""
    found: dict[str, int] = {}
    for name in home.lake.table_names():
        rows = pl.read_delta(home.lake.table_uri(name)).write_ndjson().splitlines()
        found[name] = sum(1 for row in rows if any(n in row for n in needles))
    for namespace in NAMESPACES:
        entries = home.state.store().scan(namespace)
        found[f"store:{namespace}"] = sum(
            1 for k, v in entries if any(n in k or n.encode() in v for n in needles)
        )
    for path in (p for p in home.landing.root.rglob("*") if p.is_file()):
        lines = path.read_bytes().splitlines()
        found[path.name] = sum(1 for line in lines if any(n.encode() in line for n in needles))
    return {name: n for name, n in found.items() if n}


def _suppressed(home: Home) -> set[str]:
    return set(home.lake.read("suppressions", SUPPRESSIONS_SCHEMA)["user_key"])


def _erased(
    home: Home,
    user: str,
    gone: tuple[str, ...],
    stays: tuple[str, ...],
    signed_up: tuple[str, ...] = ("u-old",),
) -> None:
    """Erase `user`: nothing holds an id of `gone` or the address of one that `signed_up` (Ann's phone and
    order neither), each of `stays` keeps rows and store entries, all of them suppressed and none of
    `stays`, the store is what a rebuild from the erased lake makes."""
    assert check(home.lake, home.state).equal
    kept = {u: _holding(home, u) for u in stays}
    certificate = erase_user(home.lake, home.landing, user, secret=SECRET, state=home.state)

    report = check(home.lake, home.state)
    assert report.equal, report.summary()
    emails = [f"{u}@example.com" for u in signed_up]
    assert _holding(home, *gone, *emails, ANN_ANON, "o-1") == {}
    for other in stays:
        assert _holding(home, other).keys() >= {"events", "store:profiles"} and kept[other]
    assert certificate.passed and certificate.merged_ids == len(gone) - 1
    keys = {user_key(u, SECRET) for u in gone} | {address_key(e, SECRET) for e in emails}
    assert keys <= _suppressed(home)
    assert not {user_key(u, SECRET) for u in stays} & _suppressed(home)


@pytest.mark.parametrize("erased", ["u-new", "u-old"])
def test_erasing_either_id_of_a_renamed_shopper_erases_her_whole(tmp_path: Path, erased: str) -> None:
    home = Home(tmp_path)
    _shop(home, ("u-new", "u-old"))
    viewers = [k for k, _ in home.state.store().scan("product_viewers")]
    assert sorted(viewers) == ["5:p-mug|5:u-bob", "5:p-mug|5:u-old"]
    assert "profile_updates" in _holding(home, "u-old@example.com")
    _erased(home, erased, ("u-new", "u-old"), (BOB,))
    assert [k for k, _ in home.state.store().scan("product_viewers")] == ["5:p-mug|5:u-bob"]


@pytest.mark.parametrize("erased", ["u-old", "u-new", "u-last"])
def test_a_shopper_renamed_twice_is_erased_by_any_of_her_three_ids(tmp_path: Path, erased: str) -> None:
    home = Home(tmp_path)
    _shop(home, ("u-new", "u-old"), ("u-last", "u-new"))
    _erased(home, erased, ("u-last", "u-new", "u-old"), (BOB,))


def test_an_old_id_another_alias_claimed_first_is_that_users_and_stays(tmp_path: Path) -> None:
    """u-old is renamed u-a first, then u-new: u-old is u-a's (her address is u-a's profile's). Erasing
    u-new leaves u-old and u-a; erasing u-old then takes u-a with her."""
    home = Home(tmp_path)
    _shop(home, ("u-new", "u-old"), signed_up=("u-a",))
    home.batch("early", at(30), _alias(4, "u-a", "u-old"))  # landing late, the earlier alias: u-a's
    home.engine(at(91))
    certificate = erase_user(home.lake, home.landing, "u-new", secret=SECRET, state=home.state)
    report = check(home.lake, home.state)
    assert report.equal, report.summary()
    assert certificate.passed and (certificate.merged_ids, certificate.kept_ids) == (0, 1)
    assert _holding(home, "u-new", "o-1") == {}
    assert {"events", "store:profiles", "profile_updates"} <= _holding(home, "u-old@example.com").keys()
    assert user_key("u-old", SECRET) not in _suppressed(home)
    _erased(home, "u-old", ("u-a", "u-old"), (BOB,), signed_up=("u-a", "u-old"))


def test_a_later_alias_of_her_old_id_to_another_user_keeps_that_users_links(tmp_path: Path) -> None:
    """u-old is renamed u-new, later (a shop's mistake) u-x too: u-old is u-new's. Erasing u-new takes the
    u-x alias's edge (it names u-old); u-x keeps its browser's link in the store, as the lake has it."""
    home = Home(tmp_path)
    _shop(home, ("u-new", "u-old"), ("u-x", "u-old"), signed_up=("u-x",))
    _erased(home, "u-new", ("u-new", "u-old"), (BOB, "u-x"))
    [link] = home.state.store().get_many("identity_links", ["user:u-x"]).values()
    assert b"anon-u-x" in link


def test_an_alias_landed_but_not_ingested_renames_her_too(tmp_path: Path) -> None:
    """The alias u-new <- u-old has landed, not ingested, when u-new (known to the lake by her order) is
    erased: u-old is hers; the blanked line brings nothing back when the ingest takes the file."""
    home = Home(tmp_path)
    _shop(home)
    home.landing.land("events/late.ndjson", orjson.dumps(_alias(40, "u-new", "u-old")) + b"\n")
    _erased(home, "u-new", ("u-new", "u-old"), (BOB,))
    home.batch("after", at(50), spec_message("Product Viewed", at(49), user=BOB, product_id="p-2"))
    assert _holding(home, "u-new", "u-old", ANN_ANON) == {}
    assert check(home.lake, home.state).equal


def test_an_erasure_that_died_after_the_identities_finds_her_old_id_when_run_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed after its Delta commits (the alias's edge gone), before the landed lines and the store: the
    rerun has u-old from the erasure's record, and its certificate checks for her."""
    home = Home(tmp_path)
    _shop(home, ("u-new", "u-old"))
    with monkeypatch.context() as patched:
        patched.setattr(requests, "rewrite_landing", _dies)
        with pytest.raises(RuntimeError, match="killed"):
            erase_user(home.lake, home.landing, "u-new", secret=SECRET, request_id="e-1", state=home.state)
    assert "identities" not in _holding(home, "u-old")
    assert {"r0.ndjson", "store:profiles"} <= _holding(home, "u-old").keys()
    certificate = erase_user(
        home.lake, home.landing, "u-new", secret=SECRET, request_id="e-1", state=home.state
    )
    assert certificate.passed and certificate.merged_ids == 1
    assert _holding(home, "u-new", "u-old", "u-old@example.com", ANN_ANON) == {}
    assert check(home.lake, home.state).equal


def _dies(*args: object) -> None:
    raise RuntimeError("killed after the tables, before the landed lines and the store")
