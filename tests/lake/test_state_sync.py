"""Catch-up and trust (#15): whatever happened to the state store or the lake between two runs, the next
ingest starts from a store that equals the lake, and ends where a clean run ends."""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from deltalake import DeltaTable

from resources.lake import LakeResource
from resources.landing import LandingResource
from resources.state import StateResource
from resources.state_lmdb import close_environment
from stores.ingest import ingest
from stores.state.rebuild import check
from stores.state.sync import ready
from stores.state.view import current_profiles
from tests.lake.test_state_live import SECRET, at, ingest_namespaces_equal, land
from transforms.schema import EVENTS_SCHEMA
from transforms.state import StateChanges

AS_OF = datetime(2026, 11, 25, tzinfo=UTC)


class Crash(RuntimeError):
    """The injected crash."""


class CrashingLake(LakeResource):
    """Raises right after committing table `after` (a process dying there)."""

    after: str

    def append(
        self, name: str, frame: pl.DataFrame, *, batch_id: int, partition_by: list[str] | None = None
    ) -> None:
        super().append(name, frame, batch_id=batch_id, partition_by=partition_by)
        if name == self.after:
            raise Crash(name)

    def write_tagged(self, name: str, frame: pl.DataFrame, tags: dict[str, int], **kwargs: Any) -> None:
        super().write_tagged(name, frame, tags, **kwargs)
        if name == self.after:
            raise Crash(name)


def batches() -> list[list[dict[str, Any]]]:
    def track(n: int, event: str, minutes: int, **who: str) -> dict[str, Any]:
        props = {"product_id": f"p{n % 2}", "cart_id": "c1", "price": 5.0}
        return {"type": "track", "event": event, "messageId": f"m{n}", "timestamp": at(minutes), **who} | {
            "properties": props
        }

    ident: dict[str, Any] = {
        "type": "identify",
        "userId": "u1",
        "anonymousId": "a1",
        "messageId": "m-id",
        "timestamp": at(30),
    }
    ident["traits"] = {"email": "u1@example.com"}
    unsubscribe = track(9, "Unsubscribed", 50, userId="u2")
    return [
        [track(1, "Product Viewed", 0, anonymousId="a1"), track(2, "Product Added", 5, anonymousId="a1")],
        [ident, track(3, "Product Added", 40, userId="u1"), track(4, "Product Viewed", 41, userId="u2")],
        [
            unsubscribe,
            track(5, "Product Added", 60, anonymousId="a2"),
            track(2, "Product Added", 5, anonymousId="a1"),
        ],
    ]


class Home:
    def __init__(self, root: Path, lake: LakeResource | None = None) -> None:
        self.root = root
        self.lake = lake or LakeResource(uri=str(root / "lake"))
        self.landing = LandingResource(uri=str(root / "landing"))
        self.state = StateResource(uri=str(root / "state"))

    def run(self, lake: LakeResource | None = None) -> None:
        ingest(lake or self.lake, self.landing, state=self.state, secret=SECRET)

    def outcome(self) -> tuple[list[str], pl.DataFrame]:
        assert ingest_namespaces_equal(self.lake, self.state) == {}
        events = sorted(self.lake.read("events", EVENTS_SCHEMA)["event_id"])
        store = self.state.existing()
        assert store is not None
        return events, current_profiles(store, AS_OF)[0]


@pytest.fixture
def clean(tmp_path: Path) -> tuple[list[str], pl.DataFrame]:
    home = Home(tmp_path / "clean")
    for n, batch in enumerate(batches()):
        land(home.landing, f"b{n}", batch)
        home.run()
    return home.outcome()


@pytest.mark.parametrize("after", ["ingest_log", "profile_updates"])
def test_a_crash_around_the_store_commit_ends_as_a_clean_run(
    tmp_path: Path, clean: tuple[list[str], pl.DataFrame], after: str
) -> None:
    """`ingest_log`: after the Delta commit, before the store's; `profile_updates`: after the store's."""
    home = Home(tmp_path / "home")
    crashing = CrashingLake(uri=str(home.root / "lake"), after=after)
    for n, batch in enumerate(batches()):
        land(home.landing, f"b{n}", batch)
        if n == 1:
            with pytest.raises(Crash):
                home.run(crashing)
            stamp = home.state.store().stamps()["ingest"]
            assert stamp == (1 if after == "ingest_log" else 2) and home.lake.committed_batch() == 2
        else:
            home.run()
    events, profiles = home.outcome()
    assert events == clean[0]
    assert profiles.equals(clean[1])


def _interrupted(home: Home, disturb: str, tmp_path: Path) -> None:
    saved = tmp_path / "saved"
    for n, batch in enumerate(batches()):
        land(home.landing, f"b{n}", batch)
        home.run()
        if n == 0:
            shutil.copytree(home.root / disturb, saved)
        if n == 1:
            close_environment(home.state.path)
            shutil.rmtree(home.root / disturb)
            shutil.copytree(saved, home.root / disturb)


@pytest.mark.parametrize("disturb", ["state", "lake"])
def test_a_store_or_lake_restored_from_an_older_copy_ends_as_a_clean_run(
    tmp_path: Path, clean: tuple[list[str], pl.DataFrame], disturb: str
) -> None:
    """An older store is caught up batch by batch; a store ahead of an older lake is rebuilt (the lake
    takes the later files again, as they are still landed)."""
    home = Home(tmp_path / "home")
    _interrupted(home, disturb, tmp_path)
    events, profiles = home.outcome()
    assert events == clean[0]
    assert profiles.equals(clean[1])


def test_what_ready_does_in_each_case(tmp_path: Path) -> None:
    home = Home(tmp_path / "home")
    assert ready(home.lake, home.state).action == "rebuilt: no state store"
    for n, batch in enumerate(batches()[:2]):
        land(home.landing, f"b{n}", batch)
        home.run()
    assert ready(home.lake, home.state).action == "current"
    close_environment(home.state.path)
    shutil.rmtree(home.state.path)
    assert ready(home.lake, home.state).action == "rebuilt: no state store"
    home.state.commit(3, StateChanges())  # as a store copied from a lake that went further
    assert ready(home.lake, home.state).action.startswith("rebuilt: the store is ahead of the lake")
    assert ingest_namespaces_equal(home.lake, home.state) == {}


def test_a_store_behind_by_a_crm_batch_whose_version_was_vacuumed_is_rebuilt(tmp_path: Path) -> None:
    """Catching up a CRM batch reads `customers` as that batch left it; an erasure since (its delete, then
    its vacuum at retention 0) removed that version's files. The store is rebuilt from the lake as it is
    (before: FileNotFoundError, in every ingest run from then on)."""
    home, saved = Home(tmp_path / "home"), tmp_path / "saved"
    for n, users in enumerate([("u1", "u2"), ("u1",)]):
        rows = "".join(f"{u},{u}@example.com,true,2026-11-20T12:0{n}:00+00:00\n" for u in users)
        home.landing.land(
            f"customers/c{n}.csv", ("user_id,email,marketing_consent,updated_at\n" + rows).encode()
        )
        home.run()
        if n == 0:
            shutil.copytree(home.state.path, saved)
    close_environment(home.state.path)  # the store, restored from the copy: behind by batch 2
    shutil.rmtree(home.state.path)
    shutil.copytree(saved, home.state.path)
    customers = home.lake.table_uri("customers")  # erasing u1 (stores.erasure.lake): delete, then vacuum
    DeltaTable(customers).delete("user_id = 'u1'")
    DeltaTable(customers).vacuum(
        retention_hours=0, dry_run=False, enforce_retention_duration=False, full=True
    )
    assert ready(home.lake, home.state).action == (
        "rebuilt: a missing batch needs the lake as it was: customers as of batch 2 was vacuumed"
    )
    assert ingest_namespaces_equal(home.lake, home.state) == {}


def test_a_batch_committing_during_a_state_check_does_not_make_the_store_look_ahead(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`lakemail state check` holds no lock: a batch commits (Delta, then the store) right after the
    check's lake snapshot. The store is not judged AHEAD of the lake (`lakemail state rebuild` would
    stop both lanes for nothing): the check says the store moved, and the next one finds them equal."""
    home = Home(tmp_path / "home")
    land(home.landing, "b0", batches()[0])
    home.run()
    snapshot, committed = LakeResource.snapshot, list[str]()

    def then_a_batch(lake: LakeResource, names: Iterable[str]) -> LakeResource:
        seen = snapshot(lake, names)
        if not committed:
            committed.append("b1")
            land(home.landing, "b1", batches()[1])
            home.run()
        return seen

    monkeypatch.setattr(LakeResource, "snapshot", then_a_batch)
    report = check(home.lake, home.state)
    assert committed and report.ahead == []
    assert report.summary()[0] == "the store took a commit while it was compared: run the check again"
    assert check(home.lake, home.state).equal
