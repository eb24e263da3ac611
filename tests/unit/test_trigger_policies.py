"""Holdout, variants and quiet hours computed once per distinct value (#17) give, row for row, what the
per-row rule gives; and the engine's rules run once per evaluation with the same proposals."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.story import Shop, at, message
from transforms.triggers.decide import propose, with_decided
from transforms.triggers.exits import no_renewable
from transforms.triggers.policies import (
    Policy,
    _zone,
    in_holdout,
    per_distinct,
    quiet_until,
    unit_hash,
    variants,
)
from transforms.triggers.rules import RULES, RuleContext
from transforms.triggers.rules.base import trigger_id, trigger_ids

USERS = st.lists(st.one_of(st.none(), st.sampled_from(["u1", "u2", "u3", "ü-4", ""]), st.text(max_size=6)))
ZONES = [None, "UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata", "Not/AZone", "", "Pacific/Chatham"]


def _quiet_end(now: datetime, name: str | None, policy: Policy) -> datetime | None:
    """The rule row by row, as it was written before it ran per distinct zone."""
    zone = _zone(name)
    local = now.astimezone(zone)
    if policy.quiet_end <= local.time() < policy.quiet_start:
        return None
    day = local.date() if local.time() < policy.quiet_end else local.date() + timedelta(days=1)
    return datetime.combine(day, policy.quiet_end, tzinfo=zone).astimezone(now.tzinfo)


@settings(max_examples=60, deadline=None)
@given(users=USERS, rate=st.floats(0, 1))
def test_holdout_per_distinct_user_is_the_per_row_rule(users: list[str | None], rate: float) -> None:
    expected = [u is not None and unit_hash(f"holdout:{u}") < rate for u in users]
    assert in_holdout(pl.Series(users, dtype=pl.String), rate).to_list() == expected


@settings(max_examples=60, deadline=None)
@given(users=USERS, data=st.data())
def test_variants_per_distinct_pair_are_the_per_row_rule(
    users: list[str | None], data: st.DataObject
) -> None:
    kinds = data.draw(
        st.lists(st.sampled_from(["welcome", "abandoned_cart"]), min_size=len(users), max_size=len(users))
    )
    names = ("a", "b", "c")
    expected = [
        names[int(unit_hash(f"variant:{k}:{u}") * len(names))] if u is not None else None
        for k, u in zip(kinds, users, strict=True)
    ]
    got = variants(pl.Series(kinds, dtype=pl.String), pl.Series(users, dtype=pl.String), names)
    assert got.to_list() == expected


@settings(max_examples=60, deadline=None)
@given(zones=st.lists(st.sampled_from(ZONES)), minute=st.integers(0, 24 * 60 - 1))
def test_quiet_until_per_distinct_zone_is_the_per_row_rule(zones: list[str | None], minute: int) -> None:
    now = datetime(2026, 3, 29, tzinfo=UTC) + timedelta(minutes=minute)  # a DST change in Europe
    policy = Policy()
    got = quiet_until(now, pl.Series(zones, dtype=pl.String), policy)
    assert got.dtype == pl.Datetime("us", "UTC")
    assert got.to_list() == [_quiet_end(now, z, policy) for z in zones]


def test_quiet_until_keeps_the_order_of_the_rows() -> None:
    night_in_berlin = datetime(2026, 1, 10, 22, 30, tzinfo=UTC)  # 23:30 in Berlin, 17:30 in New York
    zones = pl.Series(["America/New_York", "Europe/Berlin", None, "America/New_York", "Europe/Berlin"])
    ends = quiet_until(night_in_berlin, zones, Policy()).to_list()
    berlin_8am = datetime(2026, 1, 11, 8, tzinfo=ZoneInfo("Europe/Berlin")).astimezone(UTC)
    utc_8am = datetime(2026, 1, 11, 8, tzinfo=UTC)
    assert ends == [None, berlin_8am, utc_8am, None, berlin_8am]


def test_per_distinct_calls_once_per_distinct_row_and_matches_nulls() -> None:
    calls: list[tuple[object, ...]] = []

    def of(*row: object) -> str:
        calls.append(row)
        return repr(row)

    a = pl.Series(["x", None, "x", "y", None, "x"])
    b = pl.Series([1, 1, 1, 2, 1, 2])
    got = per_distinct([a, b], of, pl.String()).to_list()
    assert got == [repr(r) for r in zip(a, b, strict=True)]
    assert sorted(calls, key=repr) == sorted({("x", 1), (None, 1), ("y", 2), ("x", 2)}, key=repr)


def test_with_decided_runs_the_rules_once_and_proposes_what_propose_does(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    shop = Shop()
    for user, cart in (("u1", "c1"), ("u2", "c2"), ("u3", "c3")):
        shop.land(
            message("identify", at(-60), user=user, email=f"{user}@example.com", marketing_consent=True)
        )
        shop.land(message("Product Added", at(0), user=user, cart_id=cart, product_id="p1", price=40.0))
    world = shop.world(at(90))
    fresh = propose(world)
    assert fresh.height >= 6  # three welcomes and three carts
    first = fresh["trigger_id"][0]
    calls = {"n": 0}
    for kind, rule in list(RULES.items()):

        def counted(
            context: RuleContext, original: Callable[..., pl.DataFrame] = rule.candidates
        ) -> pl.DataFrame:
            calls["n"] += 1
            return original(context)

        monkeypatch.setitem(RULES, kind, replace(rule, candidates=counted))
    looked_up: list[list[str]] = []

    def decided_of(ids: pl.Series) -> pl.Series:
        looked_up.append(sorted(ids.to_list()))
        return ids.filter(ids == first)

    def renewable_of(ids: pl.Series) -> pl.DataFrame:  # none renewable: no instance follows another
        return no_renewable()

    cached = with_decided(world, decided_of, renewable_of)
    assert calls["n"] == len(RULES)
    assert looked_up == [sorted(fresh["trigger_id"].to_list())]
    assert cached.decided.to_list() == [first]
    assert propose(cached).equals(fresh.filter(pl.col("trigger_id") != first))
    assert calls["n"] == len(RULES)  # proposed from the kept candidates: the rules did not run again
    assert propose(cached).equals(propose(replace(world, decided=cached.decided)))
    assert calls["n"] == 2 * len(RULES)


@settings(max_examples=60, deadline=None)
@given(rows=st.lists(st.tuples(st.none() | st.text(max_size=8), st.none() | st.text(max_size=8))))
def test_trigger_ids_joined_by_polars_are_the_per_row_ids(rows: list[tuple[str | None, str | None]]) -> None:
    """Ids are kept in the lake and the store: the Polars join of the parts (#17) must give the same ones."""
    first = pl.Series([a for a, _ in rows], dtype=pl.String)
    second = pl.Series([b for _, b in rows], dtype=pl.String)
    expected = [trigger_id("browse_abandonment", str(a), str(b)) for a, b in rows]
    assert trigger_ids("browse_abandonment", first, second).to_list() == expected
    when = pl.Series([datetime(2026, 1, 1, tzinfo=UTC)] * len(rows))
    assert trigger_ids("price_drop", first, when).to_list() == [
        trigger_id("price_drop", str(a), str(w)) for a, w in zip(first, when, strict=True)
    ]


@pytest.mark.parametrize("name", ["America", "Etc", "America/Argentina", "x" * 300, "Mars/Olympus", "../.."])
def test_a_time_zone_that_names_no_zone_is_utc_whatever_the_error(name: str) -> None:
    """A shopper's `timezone` naming a folder of the tz database, or too long for a file name, made
    ZoneInfo raise an OSError that stopped the run (found by review); like any unknown zone it is UTC."""
    night = datetime(2026, 1, 10, 22, 30, tzinfo=UTC)
    ends = quiet_until(night, pl.Series([name, "Europe/Berlin"]), Policy()).to_list()
    assert ends == [datetime(2026, 1, 11, 8, tzinfo=UTC), datetime(2026, 1, 11, 7, tzinfo=UTC)]
