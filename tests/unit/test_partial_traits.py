"""A batch's partial state holds each trait as its latest statement, a tie in time going to the greatest
value, whether the trait comes from `traits` or from `context` (#17 takes them from one sort of the
stating rows: `transforms.profiles.partials._stated`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from transforms.ingest.files import process_file
from transforms.profiles.merge import merge_partials
from transforms.profiles.partials import partials
from transforms.profiles.state import STATED

BASE = datetime(2026, 3, 1, 10, tzinfo=UTC)
LANDED = BASE + timedelta(hours=1)
NAMES = st.one_of(st.none(), st.sampled_from(["a", "b", "C", "dé"]))
STATEMENTS = st.lists(st.tuples(st.sampled_from(["u1", "u2"]), st.integers(0, 2), NAMES, NAMES), max_size=10)


def identify(number: int, user: str, minute: int, name: str | None, locale: str | None) -> bytes:
    at = (BASE + timedelta(minutes=minute)).isoformat().replace("+00:00", "Z")
    message: dict[str, object] = {
        "messageId": f"m{number}",
        "type": "identify",
        "userId": user,
        "timestamp": at,
    }
    message |= {"traits": {"first_name": name}} if name is not None else {}
    message |= {"context": {"locale": locale}} if locale is not None else {}
    return orjson.dumps(message)


def latest(statements: list[tuple[str, int, str | None]], user: str) -> tuple[str | None, datetime | None]:
    said = [(minute, value) for who, minute, value in statements if who == user and value is not None]
    if not said:
        return None, None
    minute, value = max(said)
    return value, BASE + timedelta(minutes=minute)


@pytest.mark.deep  # 2 s: `make test` runs it, the fast tier leaves it
@settings(max_examples=60, deadline=None)
@given(STATEMENTS)
def test_a_trait_is_its_latest_statement_and_a_tie_goes_to_the_greatest_value(
    statements: list[tuple[str, int, str | None, str | None]],
) -> None:
    data = b"\n".join(identify(n, *s) for n, s in enumerate(statements))
    result = process_file(
        data, source_file="events/f.ndjson", landed_at=LANDED, ingested_at=LANDED, batch_id=1
    )
    assert result.quarantine.height == 0
    rows = {r["principal"]: r for r in partials(result.events).iter_rows(named=True)}
    assert set(rows) == {user for user, *_ in statements}
    for user, row in rows.items():
        names = [(who, minute, name) for who, minute, name, _ in statements]
        locales = [(who, minute, locale) for who, minute, _, locale in statements]
        assert (row["first_name"], row["first_name_ts"]) == latest(names, user)
        assert (row["locale"], row["locale_ts"]) == latest(locales, user)


@pytest.mark.deep  # 11 s on two busy cores: `make test` runs it, the fast tier leaves it
@settings(max_examples=60, deadline=None)
@given(STATEMENTS, st.integers(0, 10))
def test_merged_partials_state_the_traits_the_whole_batch_states(
    statements: list[tuple[str, int, str | None, str | None]], cut: int
) -> None:
    """Two batches' partials merged (`transforms.profiles.merge`) hold the traits one batch of all the
    statements holds: the merge breaks ties as the partials do."""
    frames = [events(statements[:cut]), events(statements[cut:])]
    merged = merge_partials(pl.concat([partials(f) for f in frames]).sort("principal", "first_ts"))
    whole = partials(events(statements))
    columns = ["principal", *(c for t in STATED for c in (t, f"{t}_ts"))]
    assert merged.select(columns).sort("principal").equals(whole.select(columns).sort("principal"))


def events(statements: list[tuple[str, int, str | None, str | None]]) -> pl.DataFrame:
    data = b"\n".join(identify(n, *s) for n, s in enumerate(statements))
    return process_file(
        data, source_file="events/f.ndjson", landed_at=LANDED, ingested_at=LANDED, batch_id=1
    ).events
