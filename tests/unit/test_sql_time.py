"""`lakemail sql` on one clock, in UTC: the query's clock and its timestamps without a zone (found by review:
`decided_at >= now() - interval '1 day'` failed, and `now()` / `current_date` were the host's local time)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import polars as pl
import pytest

from orchestration.sql_time import on_utc, tokens

NOW = datetime(2026, 12, 5, 10, 44, 0, 123456, tzinfo=UTC)
STAMP = "TIMESTAMPTZ '2026-12-05 10:44:00.123456'"


@pytest.mark.parametrize(
    ("query", "rewritten"),
    [
        ("select now()", f"select {STAMP}"),
        ("select NOW ( ) - interval '1 day'", f"select {STAMP}   - interval '1 day'"),
        ("select current_timestamp, current_timestamp()", f"select {STAMP}, {STAMP}"),
        ("select localtimestamp", f"select {STAMP}"),
        ("select current_date, current_date()", "select DATE '2026-12-05', DATE '2026-12-05'"),
        ("select current_time, localtime", "select TIME '10:44:00.123456', TIME '10:44:00.123456'"),
        ("select timestamp '2026-12-04 00:00:00'", "select TIMESTAMPTZ '2026-12-04 00:00:00'"),
        ("select DateTime '2026-12-04'", "select TIMESTAMPTZ '2026-12-04'"),
        (
            "select cast(s as timestamp), try_cast(s AS datetime)",
            "select cast(s as TIMESTAMPTZ), try_cast(s AS TIMESTAMPTZ)",
        ),
        ("select cast(s as timestamp(3))", "select cast(s as TIMESTAMPTZ(3))"),
        ("select s::timestamp", "select s::TIMESTAMPTZ"),
        ("select cast(s as timestamp without time zone)", "select cast(s as TIMESTAMPTZ   )"),
        ("select strptime(s, '%Y')", "select CAST(strptime(s, '%Y') AS TIMESTAMPTZ)"),
        ("select timestamp(concat(s, 'x'))", "select CAST(timestamp(concat(s, 'x')) AS TIMESTAMPTZ)"),
    ],
)
def test_the_clock_is_utc_now_and_a_timestamp_without_a_zone_is_utc(query: str, rewritten: str) -> None:
    assert on_utc(query, NOW) == rewritten


@pytest.mark.parametrize(
    "query",
    [
        "select 'now()', 'current_date', $$timestamp '1'$$, $t$now()$t$ as a",
        'select "current_date", `now`, "timestamp" from t',
        "select 1 as current_date, 2 as now, 3 as timestamp, t.current_date from t",
        "select now from t -- now(), current_date\n/* now() /* current_date */ timestamp '1' */",
        "select cast(s as timestamp with time zone), timestamp with time zone '2026-12-04'",
        "select max(ts) as timestamp, ts at time zone 'Europe/Paris' from t where timestamp > 1",
    ],
)
def test_strings_names_comments_and_zoned_types_are_left_alone(query: str) -> None:
    assert on_utc(query, NOW) == query
    assert "".join(text for _, text in tokens(query)) == query


def test_the_clock_is_read_in_utc_whatever_zone_now_is_given_in() -> None:
    from zoneinfo import ZoneInfo

    kiritimati = NOW.astimezone(ZoneInfo("Pacific/Kiritimati"))  # 2026-12-06 00:44 there
    assert on_utc("select current_date, now()", kiritimati) == f"select DATE '2026-12-05', {STAMP}"


TS = [
    datetime(2026, 12, 4, 9, tzinfo=UTC),
    datetime(2026, 12, 4, 23, 30, tzinfo=UTC),
    datetime(2026, 12, 5, 9, tzinfo=UTC),
]
LAKE_LIKE = pl.DataFrame(
    {"ts": TS, "day": [t.date() for t in TS], "s": ["2026-12-04 12:00", "x", "y"]},
    schema={"ts": pl.Datetime("us", "UTC"), "day": pl.Date(), "s": pl.String()},
)


@pytest.mark.parametrize(
    ("where", "count"),
    [
        ("ts >= now() - interval '1 day'", 2),
        ("ts > current_timestamp - interval '24 hours'", 2),
        ("ts >= timestamp '2026-12-05 00:00:00'", 1),
        ("ts >= timestamp '2026-12-05T01:00:00+02:00'", 2),  # an offset is honoured: 2026-12-04 23:00 UTC
        ("ts >= cast('2026-12-04 12:00' as timestamp)", 2),
        ("ts >= strptime('2026-12-04 12:00', '%Y-%m-%d %H:%M')", 2),
        ("day = current_date", 1),
        ("day = current_date - interval '1 day'", 2),
        ("ts >= date_trunc('day', now())", 1),
    ],
)
def test_in_the_last_day_questions_compare_with_utc_columns(where: str, count: int) -> None:
    """Each of these failed ("could not evaluate '>=' comparison ... Datetime('μs', 'UTC') and ...
    Datetime('μs')") or, for current_date, read the host's date."""
    query = on_utc(f"select count(*) as n from t where {where}", NOW)
    assert pl.SQLContext(t=LAKE_LIKE).execute(query, eager=True).item() == count


def test_now_is_a_utc_timestamp_and_today_the_utc_date() -> None:
    row = pl.SQLContext().execute(on_utc("select now() as n, current_date as d", NOW), eager=True)
    assert row.rows() == [(NOW, date(2026, 12, 5))]
    assert row.schema["n"] == pl.Datetime("us", "UTC")
