"""The cooldown flag (one join for the whole batch) agrees with its definition, row by row: a per-anchor
cooldown (browse re-entry) counts back from the row's due time (event time), the others from now."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from transforms.schema import UTC_TS
from transforms.triggers.decide import World, _cooldown
from transforms.triggers.rules import RULES

NOW = datetime(2026, 11, 22, 12, tzinfo=UTC)
KINDS = sorted(RULES)
USERS = st.sampled_from(["u1", "u2", "u3", None])
ANCHORS = st.sampled_from(["p1", "p2", None])


def by_definition(history: pl.DataFrame, live: pl.DataFrame) -> list[bool]:
    """A `send` of the kind to the user (and anchor, where the rule keys on it) within the cooldown before
    now (before the row's due time, if earlier, where the rule keys on the anchor)."""
    flags = []
    for kind, user, anchor, due in live.iter_rows():
        rule = RULES[kind]
        if rule.cooldown is None or user is None or (rule.cooldown_by_anchor and anchor is None):
            flags.append(False)
            continue
        flags.append(
            any(
                k == kind
                and u == user
                and at > (min(due, NOW) if rule.cooldown_by_anchor else NOW) - rule.cooldown
                and (not rule.cooldown_by_anchor or a == anchor)
                for u, k, a, at in history.iter_rows()
            )
        )
    return flags


def world(history: pl.DataFrame) -> World:
    empty = pl.DataFrame()
    return World(
        NOW, empty, empty, empty, pl.Series(dtype=pl.String), history, frozenset(), empty, empty, empty, empty
    )


@settings(max_examples=60, deadline=None)
@given(
    sent=st.lists(st.tuples(USERS, st.sampled_from(KINDS), ANCHORS, st.floats(0, 20)), max_size=40),
    live=st.lists(st.tuples(st.sampled_from(KINDS), USERS, ANCHORS, st.floats(-3, 1)), max_size=40),
)
def test_cooldown_flags_match_the_definition(
    sent: list[tuple[str | None, str, str | None, float]],
    live: list[tuple[str, str | None, str | None, float]],
) -> None:
    history = pl.DataFrame(
        [(u, k, a, NOW - timedelta(days=d)) for u, k, a, d in sent],
        schema={"user_id": pl.String, "kind": pl.String, "anchor": pl.String, "decided_at": UTC_TS},
        orient="row",
    )
    rows = pl.DataFrame(
        [(k, u, a, NOW + timedelta(days=d)) for k, u, a, d in live],
        schema={"kind": pl.String, "user_id": pl.String, "anchor": pl.String, "due_at": UTC_TS},
        orient="row",
    )
    flags = _cooldown(world(history), rows)
    assert flags.to_list() == by_definition(history, rows)
    assert flags.len() == rows.height


def test_a_recent_send_of_the_kind_cools_the_user_down() -> None:
    cart, browse = RULES["abandoned_cart"], next(r for r in RULES.values() if r.cooldown_by_anchor)
    assert cart.cooldown is not None and browse.cooldown is not None
    history = pl.DataFrame(
        {
            "user_id": ["u1", "u2"],
            "kind": [cart.kind, browse.kind],
            "anchor": [None, "p1"],
            "decided_at": [NOW - cart.cooldown + timedelta(hours=1), NOW - timedelta(days=1)],
        },
        schema={"user_id": pl.String, "kind": pl.String, "anchor": pl.String, "decided_at": UTC_TS},
    )
    rows = pl.DataFrame(
        {
            "kind": [cart.kind, cart.kind, browse.kind, browse.kind],
            "user_id": ["u1", "u2", "u2", "u2"],
            "anchor": ["c-9", None, "p1", "p2"],
            "due_at": [NOW] * 4,
        },
        schema_overrides={"due_at": UTC_TS},
    )
    assert _cooldown(world(history), rows).to_list() == [True, False, True, False]
