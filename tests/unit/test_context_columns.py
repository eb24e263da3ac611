"""`context_columns` gives the columns a read of the joined texts gives, or, where a nested object has
another shape, what a lookup of each path in each text gives, whatever the values (#17: the read is the
first path again, as bytes: `str.json_decode` took twice its time on Polars 2.1)."""

from __future__ import annotations

import io

import orjson
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from transforms.ingest.context import context_columns
from transforms.ingest.numbers import readable_numbers
from transforms.ingest.parse import parse_lines
from transforms.spec import CONTEXT_COLUMNS

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
)
VALUES = st.one_of(
    SCALARS, st.lists(SCALARS, max_size=2), st.dictionaries(st.text(max_size=3), SCALARS, max_size=2)
)
PAGE = st.one_of(st.none(), st.dictionaries(st.sampled_from(["url", "path", "referrer", "title"]), VALUES))
CONTEXTS = st.fixed_dictionaries(
    {},
    optional={
        "locale": VALUES,
        "ip": VALUES,
        "userAgent": VALUES,
        "page": PAGE,
        "campaign": st.one_of(PAGE, st.text(max_size=5)),
        "library": st.dictionaries(st.just("name"), VALUES),
    },
)


def _as_polars_writes(context: dict[str, object]) -> str:
    """The object's text as `to_events` gives it to `context_columns`: read by Polars, repaired where
    Polars' text is no JSON, long numbers written again."""
    parsed = parse_lines(orjson.dumps({"context": context}))
    assert parsed.rejects.is_empty()
    return readable_numbers(parsed.messages, ["context"])["context"].item()


def _read_joined(texts: pl.Series) -> pl.DataFrame:
    """The columns as a read of the joined texts gives them (the path before the decode)."""
    schema = {
        "locale": pl.String(),
        "timezone": pl.String(),
        "ip": pl.String(),
        "userAgent": pl.String(),
        "library": pl.Struct({"name": pl.String()}),
        "campaign": pl.Struct({"source": pl.String(), "medium": pl.String(), "name": pl.String()}),
        "page": pl.Struct({"url": pl.String(), "path": pl.String(), "referrer": pl.String()}),
    }
    joined = texts.fill_null("{}").str.join("\n").item().encode()
    read = pl.read_ndjson(io.BytesIO(joined), schema=schema)
    fields = {path: path.partition(".") for path in CONTEXT_COLUMNS}
    return read.select(
        (pl.col(head).struct.field(tail) if tail else pl.col(head)).alias(CONTEXT_COLUMNS[path][0])
        for path, (head, _, tail) in fields.items()
    )


def test_clean_texts_decode_to_what_a_read_gives() -> None:
    contexts: list[dict[str, object]] = [
        {"locale": "de-DE", "ip": "203.0.113.0", "page": {"url": "https://shop.example/p/1", "path": "/p/1"}},
        {"library": {"name": "analytics.js"}, "campaign": {"source": "news", "medium": "email", "name": "n"}},
        {"locale": 5, "userAgent": True, "page": {"referrer": 1.5e-7}},
        {},
    ]
    texts = pl.Series("context", [*(_as_polars_writes(c) for c in contexts), None])
    assert context_columns(texts, CONTEXT_COLUMNS).equals(_read_joined(texts))


def test_an_object_where_a_string_belongs_reads_as_its_text() -> None:
    """The read takes the object's text, the other rows as before."""
    texts = pl.Series("context", [_as_polars_writes({"locale": {"a": [1, 2]}}), '{"locale": "fr-FR"}'])
    columns = context_columns(texts, CONTEXT_COLUMNS)
    assert columns["locale"].to_list() == ['{"a": [1, 2]}', "fr-FR"]
    assert columns.equals(_read_joined(texts))


def _looked_up(texts: pl.Series) -> pl.DataFrame:
    """The columns as the path lookup in each text gives them (when a nested path has another shape)."""
    joined = texts.fill_null("{}").str.join("\n").item().encode()
    heads = dict.fromkeys(path.partition(".")[0] for path in CONTEXT_COLUMNS)
    read = pl.read_ndjson(io.BytesIO(joined), schema={head: pl.String() for head in heads})
    return read.select(
        (pl.col(head).str.json_path_match(f"$.{tail}") if tail else pl.col(head)).alias(name)
        for path, (name, _) in CONTEXT_COLUMNS.items()
        for head, _, tail in (path.partition("."),)
    )


@pytest.mark.deep  # 5 s: `make test` runs it, the fast tier (under a minute) leaves it
@settings(max_examples=150, deadline=None)
@given(st.lists(CONTEXTS, min_size=1, max_size=4))
def test_every_shape_gives_the_columns_of_the_read(contexts: list[dict[str, object]]) -> None:
    texts = pl.Series("context", [_as_polars_writes(c) for c in contexts])
    try:
        expected = _read_joined(texts)
    except pl.exceptions.PolarsError:  # a nested path of another shape: looked up in each text
        expected = _looked_up(texts)
    assert context_columns(texts, CONTEXT_COLUMNS).equals(expected)
