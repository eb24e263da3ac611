"""The state store's key encoding (found by review): a joined key names its two ids so that no pair of ids
makes another pair's key or falls in another first id's range, long ids included, and no id is stored
under another's key (`transforms.state_keys.joined_key`, `key_range`, `split_key`, `store_key`)."""

from __future__ import annotations

import hashlib

import polars as pl
import pytest

from transforms.state_keys import (
    HASHED_KEY,
    MAX_KEY_BYTES,
    PART_BYTES,
    joined_key,
    key_part,
    key_range,
    split_key,
    store_key,
)

IDS = [
    "p-1",
    "p-1|auth0",
    "auth0|abc",
    "abc",
    "auth0",
    "",
    "3:abc",
    "3:abc|3:abc",
    "|",
    "\\|",
    "#",
    "#" + "0" * 64,
    HASHED_KEY + "0" * 64,
    "ü" * (PART_BYTES // 2),  # PART_BYTES exactly: kept
    "ü" * (PART_BYTES // 2) + "x",  # one byte more: hashed
    "u" * 450,
    "p-1" * 70,
    "t-444e65244cd53967ee384fb4",
]
PAIRS: list[tuple[str, str]] = [(a, b) for a in IDS for b in IDS]


def _keys(pairs: list[tuple[str, str]]) -> list[str]:
    frame = pl.DataFrame(pairs, schema=["first", "second"], orient="row")
    return frame.select(joined_key(pl.col("first"), pl.col("second"))).to_series().to_list()


def test_every_pair_of_ids_has_its_own_key_of_at_most_a_store_key_s_bytes() -> None:
    keys = _keys(PAIRS)
    assert len(set(keys)) == len(PAIRS)
    assert max(len(k.encode()) for k in keys) <= MAX_KEY_BYTES
    assert all(store_key(k) == k for k in keys)  # never hashed whole: its first id's range finds it
    assert keys == [f"{key_part(a)}|{key_part(b)}" for a, b in PAIRS]  # Polars and Python agree


def test_a_first_id_s_range_holds_exactly_its_keys_and_each_splits_into_its_parts() -> None:
    keys = sorted(zip(_keys(PAIRS), PAIRS, strict=True))
    for first in IDS:
        start, end = key_range(first)
        found = [pair for key, pair in keys if start <= key < end]
        assert found and all(a == first for a, _ in found)
        assert len(found) == len(IDS)
    for key, (a, b) in keys:
        assert split_key(key) == (key_part(a), key_part(b))


@pytest.mark.parametrize("key", ["p-1|u-1", "abc", "", "3:ab|x", "x:abc|1:a", "#00|1:a"])
def test_what_no_joined_key_is_splits_into_nothing(key: str) -> None:
    with pytest.raises(ValueError):
        split_key(key)


def test_a_null_id_makes_no_key() -> None:
    frame = pl.DataFrame(
        {"first": ["p-1", None], "second": [None, "u-1"]},
        schema=[("first", pl.String), ("second", pl.String)],
    )
    assert frame.select(joined_key(pl.col("first"), pl.col("second"))).to_series().to_list() == [None, None]


def test_an_id_shaped_as_a_hashed_key_is_no_long_id_s_key() -> None:
    long = "u" * 500
    forged = HASHED_KEY + hashlib.sha256(long.encode()).hexdigest()
    assert store_key(long) != store_key(forged)
    assert store_key(forged).startswith(HASHED_KEY) and store_key("u-1") == "u-1"
