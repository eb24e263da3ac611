"""`scrub_json_ips` on a column mixing every kind of `ip` value gives, text by text, what the rule gives
one decoded value at a time (`_scrub_value`): the column's replacements, counts and fallback must not
let one row's value decide another's."""

from __future__ import annotations

import json

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from transforms.ingest.context import _scrub_value, scrub_json_ips

IPS = st.one_of(
    st.sampled_from(
        [
            "203.0.113.195",
            "203.0.113.0",
            "2001:db8:85a3:8d3:1319:8a2e:370:7348",
            "2001:db8::1",
            "2001:db8:85a3::",
            "::ffff:198.51.100.7",
            "fe80::1%eth0",
            "::",
            "not an address",
            "1.2.3",
            "",
        ]
    ),
    st.none(),
    st.integers(),
    st.just({"v": "10.0.0.1"}),
)
OBJECTS = st.fixed_dictionaries(
    {},
    optional={
        "ip": IPS,
        "page": st.fixed_dictionaries({}, optional={"ip": IPS, "url": st.just("https://x")}),
        "list": st.lists(st.fixed_dictionaries({"ip": IPS}), max_size=2),
        "other": st.text(max_size=4),
    },
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.none(), OBJECTS), min_size=1, max_size=12))
def test_a_mixed_column_is_scrubbed_text_by_text_as_each_value_alone(objects: list[dict | None]) -> None:
    texts = pl.Series([None if o is None else json.dumps(o) for o in objects], dtype=pl.String)
    scrubbed = scrub_json_ips(texts).to_list()
    for obj, text in zip(objects, scrubbed, strict=True):
        assert (None if text is None else json.loads(text)) == (None if obj is None else _scrub_value(obj))


def test_ipv4_and_ipv6_rows_side_by_side_both_keep_their_network_part() -> None:
    texts = pl.Series(
        [
            json.dumps({"ip": "203.0.113.195"}),
            json.dumps({"ip": "2001:db8::1"}),
            json.dumps({"ip": "203.0.113.7"}),
        ]
    )
    assert [json.loads(t)["ip"] for t in scrub_json_ips(texts)] == [
        "203.0.113.0",
        "2001:db8::",
        "203.0.113.0",
    ]
