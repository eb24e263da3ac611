"""`lakemail sql` answers one read-only query over the lake's tables: what the guard lets through (#13)."""

from __future__ import annotations

import polars as pl
import pytest

from orchestration.sql import ONLY_QUERIES, SqlError, guarded, render

SECRET = "/home/lakemail/.secret"


@pytest.mark.parametrize(
    "query",
    [
        f"select * from read_csv('{SECRET}')",
        f"SELECT * FROM READ_CSV('{SECRET}')",
        f"select * from \"read_csv\"('{SECRET}')",
        f"select * from read_csv /* a comment */ ('{SECRET}')",
        "select * from read_parquet('http://203.0.113.9/x.parquet')",
        "select * from read_json('https://example.com/a.json')",
        "select * from read_ipc('/etc/hosts')",
        f"select * from events e join read_csv('{SECRET}') s on true",
        f"select * from events where event_id in (select column_1 from read_csv('{SECRET}'))",
        f"select (select count(*) from read_csv('{SECRET}')) as n",
        f"select * from events where exists (select 1 from read_csv('{SECRET}'))",
        f"with s as (select * from read_csv('{SECRET}')) select * from s",
        f"select event_id from events union all select column_1 from read_csv('{SECRET}')",
        f"with read_csv as (select 1 as a) select * from read_csv('{SECRET}')",
    ],
)
def test_table_functions_are_refused_before_anything_is_read(query: str) -> None:
    with pytest.raises(SqlError, match=r"reads files or URLs; lakemail sql reads only the lake's tables"):
        guarded(query)


@pytest.mark.parametrize(
    "query",
    [
        "create table x as select 1",
        "drop table events",
        "truncate events",
        "explain select * from events",
        "show tables",
        "select 1; drop table events",
        "select 1; select 2",
        "copy events to '/tmp/out.csv'",
    ],
)
def test_anything_but_one_query_is_refused(query: str) -> None:
    """The engine's parser says what it is (DML that parses as a query body is refused when it runs)."""
    with pytest.raises(SqlError) as refused:
        guarded(query)
    assert str(refused.value) == ONLY_QUERIES


@pytest.mark.parametrize(
    "query",
    [
        "select count(*) as n from events",
        "select count(*) as n from events;",
        "select count(*) as n from events -- a trailing comment",
        "with q as (select event_id from events) select * from q join events using (event_id)",
        "select * from events where event_id in (select event_id from quarantine)",
        "values (1, 'a')",
        "(select 1 as a)",
    ],
)
def test_queries_over_tables_by_name_pass(query: str) -> None:
    assert guarded(query).startswith("SELECT * FROM (\n")


def test_a_syntax_error_is_one_line_at_the_users_own_position() -> None:
    with pytest.raises(SqlError) as bad:
        guarded("selec 1")
    assert "Line: 1, Column: 1" in str(bad.value) and "\n" not in str(bad.value)


def test_csv_of_nested_columns_is_a_clear_error() -> None:
    frame = pl.DataFrame({"n": [1], "items": [[1, 2]], "cart": [{"id": "c-1"}]})
    with pytest.raises(SqlError, match=r"--format csv cannot hold the nested column\(s\) items, cart"):
        render(frame, "csv")
    assert render(frame, "json").strip() == '[{"n":1,"items":[1,2],"cart":{"id":"c-1"}}]'
