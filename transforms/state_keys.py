"""How the state store writes its keys (pure): a key as the store keeps it, and a key of two ids.

A key is kept as itself, or as its sha256 when longer than any store allows or shaped like such a hash
(`store_key`). A namespace keyed by two ids joins their `key_part`s (`joined_key`): each names where it
ends, so no id reaches into the other's part, and a first id's keys are one range (`key_range`).
"""

from __future__ import annotations

import hashlib

import polars as pl

MAX_KEY_BYTES = 400  # LMDB allows 511, DynamoDB sort keys 1 KB: a longer key is stored as its hash
HASHED_KEY = "#sha256:"
SEPARATOR = "|"
AFTER_SEPARATOR = chr(ord(SEPARATOR) + 1)  # the end of a `<prefix>|` range
# An id longer than this is one part of a joined key as its hash: two parts stay under MAX_KEY_BYTES. Such
# a part is HASHED_PART and the sha256 in hex: never HASHED_KEY (`store_key` would hash the key again).
PART_BYTES = 180
HASHED_PART = "#"
# How this release writes keys (`joined_key`, `store_key`). A store stamped with another (or none: 1, the
# releases that joined ids with a bare `|`) is rebuilt from the lake before it is used (`stores.state.sync`).
KEY_FORMAT = 2


def needs_hash(keys: pl.Series) -> pl.Series:
    """Which of `keys` `store_key` keeps as their hash (one check in Polars)."""
    return (keys.str.len_bytes() > MAX_KEY_BYTES) | keys.str.starts_with(HASHED_KEY)


def store_key(key: str) -> str:
    """`key` as the store keeps it: itself, or its hash when longer than any store allows. A key that looks
    like a hash is kept as its own hash too (found by review: the id `#sha256:<the hash of a long id>` was
    that long id's key), so no key is another's."""
    if len(key.encode()) <= MAX_KEY_BYTES and not key.startswith(HASHED_KEY):
        return key
    return HASHED_KEY + hashlib.sha256(key.encode()).hexdigest()


def key_part(value: str) -> str:
    """An id as one part of a joined key: `<its length in bytes>:<id>`, or its hash when longer than
    PART_BYTES (a part names where it ends, so no id can reach into the next part)."""
    data = value.encode()
    if len(data) > PART_BYTES:
        return HASHED_PART + hashlib.sha256(data).hexdigest()
    return f"{len(data)}:{value}"


def _long_hashes(ids: pl.Series) -> pl.Series:
    """`key_part` of each of `ids` longer than PART_BYTES (hashed in Python: rare), null for the others."""
    hashed = pl.repeat(None, ids.len(), dtype=pl.String, eager=True).alias(ids.name)
    long = (ids.str.len_bytes() > PART_BYTES).arg_true()
    if long.len():
        hashed = hashed.scatter(long, pl.Series([key_part(v) for v in ids.gather(long)], dtype=pl.String))
    return hashed


def joined_key(first: pl.Expr, second: pl.Expr) -> pl.Expr:
    """The key of a namespace keyed by two ids (`product_viewers`, `pending_principals`): their `key_part`s
    joined by SEPARATOR. Found by review: joined bare, `p-1|auth0` + `abc` was `p-1` + `auth0|abc`, and a
    key over MAX_KEY_BYTES was hashed whole, out of reach of its first id's range (`key_range`)."""
    return _part(first) + pl.lit(SEPARATOR) + _part(second)


def _part(ids: pl.Expr) -> pl.Expr:
    """`key_part` of each id, in Polars (the length prefix; a long id's hash from `_long_hashes`)."""
    size = ids.str.len_bytes()
    hashed = ids.map_batches(_long_hashes, return_dtype=pl.String, is_elementwise=True)
    return pl.when(size > PART_BYTES).then(hashed).otherwise(size.cast(pl.String) + ":" + ids)


def key_range(first: str) -> tuple[str, str]:
    """[start, end) of the joined keys whose first id is `first` (a range scan finds exactly them)."""
    start = key_part(first) + SEPARATOR
    return start, start[:-1] + AFTER_SEPARATOR


def split_key(key: str) -> tuple[str, str]:
    """The two `key_part`s of a joined key (ValueError: no joined key)."""
    if key.startswith(HASHED_PART):
        end = len(HASHED_PART) + 64
    else:
        size, colon, _ = key.partition(":")
        if not colon or not (size.isascii() and size.isdigit()):
            raise ValueError("not a joined key")
        end = len(key.encode()[: len(size) + 1 + int(size)].decode())
    if key[end : end + 1] != SEPARATOR:
        raise ValueError("not a joined key")
    return key[:end], key[end + 1 :]


def due_key(due_at: pl.Expr, trigger_id: pl.Expr) -> pl.Expr:
    """`pending_due`'s key: the due time as fixed-width UTC text (sorts as time), then the trigger id."""
    return due_at.dt.strftime("%Y-%m-%dT%H:%M:%S%.6fZ") + pl.lit(SEPARATOR) + trigger_id
