"""The identity edges a batch holds already, from the state store (#17): the ingest with a store asks its
`identity_links` for the batch's anonymous ids instead of scanning the lake's `identities` (every edge ever
seen, each micro-batch), and writes the same table as the ingest without one, over edges seen before,
earlier sightings, aliases, and a batch that died after its `identities` commit and whose files a later
batch took (rolled back: `stores.identities.roll_back_identities`; the store rebuilt when it holds what
the lake no longer does, or the lake keeps what no store commit brought)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from deltalake import DeltaTable

from resources.lake import LakeResource
from resources.landing import LandingResource
from resources.state import StateResource
from stores.ingest import ingest
from stores.state.rebuild import rebuild
from tests.lake.test_state_live import SECRET, at, ingest_namespaces_equal, land
from transforms.schema import IDENTITIES_SCHEMA


class Crash(RuntimeError):
    """The injected crash."""


class DiesAfterIdentities(LakeResource):
    """The real lake, raising right after a commit to `identities` (a process dying there)."""

    def append(
        self, name: str, frame: pl.DataFrame, *, batch_id: int, partition_by: list[str] | None = None
    ) -> None:
        super().append(name, frame, batch_id=batch_id, partition_by=partition_by)
        if name == "identities" and frame.height:
            raise Crash(name)

    def overwrite(self, name: str, frame: pl.DataFrame, *, batch_id: int) -> None:
        super().overwrite(name, frame, batch_id=batch_id)
        if name == "identities":
            raise Crash(name)


def identify(n: str, anon: str, user: str, minutes: int) -> dict[str, Any]:
    return {"type": "identify", "messageId": n, "anonymousId": anon, "userId": user, "timestamp": at(minutes)}


def alias(n: str, previous: str, user: str, minutes: int) -> dict[str, Any]:
    return {"type": "alias", "messageId": n, "previousId": previous, "userId": user, "timestamp": at(minutes)}


def viewed(n: str, anon: str, minutes: int) -> dict[str, Any]:
    props = {"product_id": "p1", "price": 5.0}
    return {"type": "track", "event": "Product Viewed", "messageId": n, "anonymousId": anon} | {
        "timestamp": at(minutes),
        "properties": props,
    }


BATCHES = [
    [viewed("v1", "a1", 10), identify("i1", "a1", "u1", 30), identify("i2", "a2", "u2", 40)],
    [identify("i3", "a1", "u1", 100), identify("i4", "a3", "u1", 110), viewed("v2", "a3", 111)],  # a1 again
    [alias("l1", "a1", "u1", 120), identify("i5", "a2", "u2", 5), alias("l2", "u2", "u3", 130)],  # moves back
]
# The batch that dies after its `identities` commit: new edges only (an append), or an earlier sighting
# of a known one too (the table rewritten); b3 lands after it, sorts before it, and is taken alone first.
DYING = {
    "append": [identify("i6", "a4", "u4", 200), identify("i7", "a1", "u1", 210)],
    "rewrite": [identify("i6", "a4", "u4", 200), identify("i7", "a1", "u1", 2)],
}
LATER = [identify("i8", "a5", "u5", 220), identify("i9", "a4", "u9", 230)]


class Home:
    """A lake and landing zone, with a state store or without."""

    def __init__(self, root: Path, with_store: bool) -> None:
        self.lake = LakeResource(uri=str(root / "lake"))
        self.landing = LandingResource(uri=str(root / "landing"))
        self.state = StateResource(uri=str(root / "state")) if with_store else None

    def run(self, *manifest: str, lake: LakeResource | None = None) -> None:
        files = list(manifest) or None
        ingest(lake or self.lake, self.landing, files, state=self.state, secret=SECRET)

    def identities(self) -> list[tuple[Any, ...]]:
        return sorted(self.lake.read("identities", IDENTITIES_SCHEMA).rows())

    def store_equals_lake(self) -> None:
        if self.state is not None:
            assert ingest_namespaces_equal(self.lake, self.state) == {}


def both(homes: list[Home], step: Callable[[Home], None], *, ran: bool = True) -> None:
    """`step` in each home: the same `identities` after it, and after an ingest that `ran` to its end,
    each store equal to a rebuilt one."""
    for home in homes:
        step(home)
        if ran:
            home.store_equals_lake()
    assert homes[0].identities() == homes[1].identities()


def _batch(name: str, batch: list[dict[str, Any]]) -> Callable[[Home], None]:
    def step(home: Home) -> None:
        land(home.landing, name, batch)
        home.run()

    return step


def _crash(home: Home) -> None:
    with pytest.raises(Crash):
        home.run(lake=DiesAfterIdentities(uri=home.lake.uri))


def _land_later(home: Home) -> None:
    land(home.landing, "b3", LATER)
    home.run("events/b3.ndjson")  # the next batch, without the files of the one that died


def _rebuild(home: Home) -> None:
    """The store rebuilt from the lake as it is (`lakemail state rebuild`, or the decide lane's)."""
    if home.state is not None:
        rebuild(home.lake, home.state)


def _vacuum(home: Home) -> None:
    """The versions before gone (an erasure vacuums at retention 0)."""
    DeltaTable(f"{home.lake.uri}/identities").vacuum(0, enforce_retention_duration=False, dry_run=False)


@pytest.mark.parametrize("dying", ["append", "rewrite", "rewrite-vacuumed", "append-rebuilt"])
def test_the_store_answered_edges_write_what_the_lake_scan_writes(tmp_path: Path, dying: str) -> None:
    homes = [Home(tmp_path / "store", with_store=True), Home(tmp_path / "lake", with_store=False)]
    dies = DYING[dying.split("-")[0]]
    for n, batch in enumerate(BATCHES):
        both(homes, _batch(f"b{n}", batch))
    both(homes, lambda home: land(home.landing, "b4", dies))
    both(homes, _crash, ran=False)
    if dying.endswith("vacuumed"):  # its edges stay: the store is rebuilt to hold them too
        both(homes, _vacuum, ran=False)
    if dying.endswith("rebuilt"):  # the store holds its edges: rebuilt again once they are rolled back
        both(homes, _rebuild, ran=False)
    both(homes, _land_later)
    both(homes, Home.run)  # b4 taken again
    clean = Home(tmp_path / "clean", with_store=True)
    for n, batch in enumerate([*BATCHES, LATER, dies]):
        land(clean.landing, f"b{n}", batch)
        clean.run()
    assert homes[0].identities() == clean.identities()
    assert [(a, u) for a, u, *_ in clean.identities()] == [
        ("a1", "u1"),
        ("a2", "u2"),
        ("a3", "u1"),
        ("a4", "u4"),
        ("a4", "u9"),
        ("a5", "u5"),
        ("u2", "u3"),
    ]


def test_a_batch_with_a_store_reads_no_data_file_of_identities(tmp_path: Path) -> None:
    home = Home(tmp_path / "store", with_store=True)
    for n, batch in enumerate(BATCHES):
        land(home.landing, f"b{n}", batch)
        home.run()
    before = home.identities()
    table = tmp_path / "store" / "lake" / "identities"
    aside = tmp_path / "aside"
    aside.mkdir()
    for data in table.glob("*.parquet"):  # every edge held so far: a read of any of them fails
        shutil.move(data, aside / data.name)
    land(home.landing, "b3", [identify("i8", "a1", "u1", 300), identify("i9", "a9", "u9", 310)])
    home.run()  # a1's edge held (not added again), a9's new
    for data in aside.iterdir():
        shutil.move(data, table / data.name)
    added = sorted(set(home.identities()) - set(before))
    assert [(a, u) for a, u, *_ in added] == [("a9", "u9")]
    assert len(home.identities()) == len(before) + 1
    home.store_equals_lake()
