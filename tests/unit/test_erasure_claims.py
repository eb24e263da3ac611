"""Anonymous ids a person shares with other users (`transforms.erasure.claims`, found by review): which
are theirs (claimed first: ties to the smaller user id; a link not ingested yet counts last), and which
rows and lines that hold one are theirs (`transforms.erasure.match`)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import polars as pl
import pytest

from transforms.erasure.claims import Claims, claims
from transforms.erasure.match import Lines, mentions
from transforms.erasure.person import Person, text_pattern

T1, T2 = datetime(2026, 11, 20, tzinfo=UTC), datetime(2026, 11, 21, tzinfo=UTC)


def _edges(*rows: tuple[str, str, datetime | None]) -> pl.DataFrame:
    schema: dict[str, pl.DataType] = {
        "anonymous_id": pl.String(),
        "user_id": pl.String(),
        "first_seen_at": pl.Datetime("us", "UTC"),
    }
    return pl.DataFrame(rows, schema=schema, orient="row")


@pytest.mark.parametrize(
    ("linked", "expected"),
    [
        (_edges(("a", "y", T1)), Claims(("a",), (), (), ())),
        (_edges(("a", "y", T1), ("a", "x", T2)), Claims(("a",), ("a",), (), ("x",))),
        (_edges(("a", "y", T2), ("a", "x", T1)), Claims((), (), ("a",), ("x",))),
        (_edges(("a", "y", T1), ("a", "x", T1)), Claims((), (), ("a",), ("x",))),  # a tie: the smaller id
        (_edges(("a", "y", T1), ("a", "x", None)), Claims(("a",), ("a",), (), ("x",))),  # x's not ingested
        (_edges(("a", "x", T1)), Claims((), (), ("a",), ("x",))),  # y's link is a landed line only
    ],
)
def test_who_claims_a_shared_anonymous_id(linked: pl.DataFrame, expected: Claims) -> None:
    assert claims("y", ["a"], linked) == expected


PERSON = Person("u-y", ("a-shared", "a-own"), ("y@x.com",), shared_ids=("a-shared",), others=("u-x",))


@pytest.mark.parametrize(
    ("row", "theirs"),
    [
        ({"user_id": "u-y", "anonymous_id": "a-shared"}, True),
        ({"user_id": None, "anonymous_id": "a-shared"}, True),  # claimed first by them: anonymous rows go
        ({"user_id": "u-x", "anonymous_id": "a-shared"}, False),  # another user's row stays
        ({"user_id": "u-x", "anonymous_id": "a-own"}, True),  # an id only they use
        ({"user_id": "u-x", "anonymous_id": "x", "principal": "anon:a-shared"}, False),
        ({"user_id": None, "anonymous_id": "x", "principal": "anon:a-shared"}, True),
        ({"user_id": "u-x", "anonymous_id": "x", "query": "y@x.com"}, True),  # their address in a row
    ],
)
def test_rows_and_lines_holding_a_shared_id(row: dict[str, str | None], theirs: bool) -> None:
    frame = pl.DataFrame(
        [{"principal": None, "query": None, **row}], schema_overrides={"principal": pl.String}
    )
    frame = frame.with_columns(pl.col(pl.Null).cast(pl.String))
    assert frame.select(mentions(frame.collect_schema(), PERSON)).item() is theirs
    line = pl.DataFrame([row]).write_ndjson().replace('"user_id"', '"userId"').encode()
    assert Lines.of(PERSON).theirs(line.strip()) is theirs


def test_a_line_that_is_no_message_holds_another_user_by_their_id() -> None:
    lines = Lines.of(PERSON)
    assert lines.theirs(b"u-x,a-shared,Xavier") is False  # a CRM row of the other user
    assert lines.theirs(b"u-z,a-shared,Zoe") is True
    assert Lines(re.compile(text_pattern(PERSON.own).encode())).theirs(b'{"anonymousId":"a-shared"}') is False
