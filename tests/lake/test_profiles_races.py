"""The profiles refresh against erasure and itself: a fold or a `profiles` rewrite that overlaps an erasure
never brings the erased person back, and an older fold never undoes a newer one (the lake's profiles
lock, held from what they read to their commit; found by a read-only review).

The overlapping work runs for real in a thread of its own, let go at the instant the refresh has read
and not yet committed, and held by the test until it waits on a lake lock or is done: no timing window.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import nullcontext
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest

import stores.state.refresh as refresh
from resources.lake import LakeResource
from stores.erasure.requests import erase_user
from stores.profiles import folded_batch, profiles_view
from stores.state.rebuild import rebuild
from tests.lake.decide_harness import SECRET, Shop
from tests.lake.overlap import Overlapping
from tests.story import at, message
from transforms.profiles.state import PARTIAL_SCHEMA
from transforms.schema import PROFILES_SCHEMA

AS_OF = datetime(2026, 11, 21, tzinfo=UTC)


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[Shop]:
    """Ann and Bob identified in batch 1; a state store as the ingest lane keeps it."""
    shop = Shop(tmp_path)
    shop.batch(
        "b1",
        [
            message("identify", at(-60), user="u-ann", email="ann@example.com", marketing_consent=True),
            message("identify", at(-50), user="u-bob", email="bob@example.com", marketing_consent=True),
        ],
        at(0),
    )
    rebuild(shop.lake, shop.state)
    yield shop


def erasing_ann(shop: Shop, monkeypatch: pytest.MonkeyPatch) -> Overlapping:
    return Overlapping(
        monkeypatch, lambda: erase_user(shop.lake, shop.landing, "u-ann", secret=SECRET, state=shop.state)
    )


def principals(lake: LakeResource) -> list[str]:
    return sorted(lake.read("profile_state", PARTIAL_SCHEMA, ["principal"])["principal"])


def profile_rows(lake: LakeResource) -> list[tuple[str, str | None]]:
    return sorted(lake.read("profiles", PROFILES_SCHEMA, ["user_id", "email"]).rows())


def test_a_fold_overlapping_an_erasure_does_not_bring_the_person_back(
    shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    erasure = erasing_ann(shop, monkeypatch)
    real = refresh.profile_buckets

    def buckets_then_erasure(seen: LakeResource) -> Iterator[pl.DataFrame]:
        read = list(real(seen))  # the fold has read the lake's partials, not yet committed
        erasure.start()
        yield from read

    monkeypatch.setattr(refresh, "profile_buckets", buckets_then_erasure)
    assert refresh.fold(shop.lake, every=1) == 1
    assert erasure.join().passed
    assert principals(shop.lake) == ["u-bob"]  # the erasure went after the fold's commit, not before
    with shop.lake.writer_lock():
        rebuild(shop.lake, shop.state)  # `lakemail state rebuild`: from the lake alone
    assert shop.state.store().get_many("profiles", ["u-ann", "u-bob"]).keys() == {"u-bob"}


def test_a_profiles_refresh_overlapping_an_erasure_does_not_bring_the_row_back(
    shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert refresh.write_profiles(shop.lake, shop.state.store(), AS_OF) == (1, 2)
    shop.batch("b2", [message("identify", at(10), user="u-bob", first_name="Bob")], at(11))
    erasure = erasing_ann(shop, monkeypatch)
    real = refresh.with_retries

    def read_then_erasure(store: Any, as_of: datetime) -> tuple[int, Iterator[pl.DataFrame]]:
        batch, chunks = real(store, as_of)
        first = next(chunks)  # the refresh has read the store (before the erasure), not yet committed
        erasure.start()
        return batch, iter([first, *chunks])

    monkeypatch.setattr(refresh, "with_retries", read_then_erasure)
    assert refresh.write_profiles(shop.lake, shop.state.store(), AS_OF)[0] == 2
    assert erasure.join().passed
    assert profile_rows(shop.lake) == [("u-bob", "bob@example.com")]
    monkeypatch.setattr(refresh, "with_retries", real)
    assert refresh.write_profiles(shop.lake, shop.state.store(), AS_OF) == (2, 1)  # once after an erasure
    assert refresh.write_profiles(shop.lake, shop.state.store(), AS_OF) == (2, -1)  # then unchanged
    assert profile_rows(shop.lake) == [("u-bob", "bob@example.com")]


def test_without_locks_the_next_refresh_redoes_one_that_read_before_an_erasure(
    shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a lake with no lock (an object store), a refresh that read the store before an erasure and
    committed after it is rewritten by the next one, though no batch committed since."""
    monkeypatch.setattr(LakeResource, "profiles_lock", lambda self: nullcontext())
    real = refresh.with_retries

    def read_then_erasure(store: Any, as_of: datetime) -> tuple[int, Iterator[pl.DataFrame]]:
        batch, chunks = real(store, as_of)
        first = next(chunks)
        assert erase_user(shop.lake, shop.landing, "u-ann", secret=SECRET, state=shop.state).passed
        return batch, iter([first, *chunks])

    monkeypatch.setattr(refresh, "with_retries", read_then_erasure)
    assert refresh.write_profiles(shop.lake, shop.state.store(), AS_OF) == (1, 2)
    assert [user for user, _ in profile_rows(shop.lake)] == ["u-ann", "u-bob"]  # the race, unlocked
    monkeypatch.setattr(refresh, "with_retries", real)
    assert refresh.write_profiles(shop.lake, shop.state.store(), AS_OF) == (1, 1)  # not skipped
    assert profile_rows(shop.lake) == [("u-bob", "bob@example.com")]


def later_batch(shop: Shop) -> None:
    shop.batch("b2", [message("identify", at(10), user="u-ann", first_name="Ann")], at(11))


def test_an_older_fold_never_overwrites_a_newer_one(shop: Shop, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two profiles_job runs overlap (a fold longer than the refresh interval): the newer fold waits for
    the older one, and the micro-batch meanwhile waits for neither."""
    real = refresh.profile_buckets
    overlapping: dict[str, Overlapping] = {}

    def slow_fold(seen: LakeResource) -> Iterator[pl.DataFrame]:
        read = list(real(seen))  # fold A has read up to batch 1 ...
        monkeypatch.setattr(refresh, "profile_buckets", real)
        # ... and while it runs, batch 2 commits and the next scheduled run's fold B starts
        overlapping["batch"] = Overlapping(monkeypatch, lambda: later_batch(shop)).start()
        overlapping["fold"] = Overlapping(monkeypatch, lambda: refresh.fold(shop.lake, every=1)).start()
        yield from read

    monkeypatch.setattr(refresh, "profile_buckets", slow_fold)
    assert refresh.fold(shop.lake, every=1) == 1
    overlapping["batch"].join()
    assert not overlapping["batch"].waited  # the ingest lane never waits for a fold
    assert overlapping["fold"].join() == 2
    assert folded_batch(shop.lake) == 2 == shop.lake.committed_batch()
    view = profiles_view(shop.lake, AS_OF).sort("user_id")
    assert view.select("user_id", "first_name").rows()[0] == ("u-ann", "Ann")


def test_without_locks_an_older_fold_does_not_commit_over_a_newer_one(
    shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(LakeResource, "profiles_lock", lambda self: nullcontext())
    real = refresh.profile_buckets

    def slow_fold(seen: LakeResource) -> Iterator[pl.DataFrame]:
        read = list(real(seen))
        monkeypatch.setattr(refresh, "profile_buckets", real)
        later_batch(shop)
        assert refresh.fold(shop.lake, every=1) == 2  # fold B, unlocked, commits first
        yield from read

    monkeypatch.setattr(refresh, "profile_buckets", slow_fold)
    assert refresh.fold(shop.lake, every=1) is None  # fold A finds a newer fold and leaves it
    assert folded_batch(shop.lake) == 2
    view = profiles_view(shop.lake, AS_OF).sort("user_id")
    assert view.select("user_id", "first_name").rows()[0] == ("u-ann", "Ann")
