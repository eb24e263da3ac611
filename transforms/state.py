"""The state store's contract: its namespaces, a batch of changes, and the value codec (pure).

The store is an index of the lake that the micro-batches decide with (`resources.state`): string keys,
JSON values, one namespace per question a batch asks. Values are rows of the lake's tables encoded by
`encode` (vectorised in Polars: times as integer microseconds, keys in schema order), so the same rows
always give the same bytes and a rebuilt store compares byte for byte with a live one. A value of
PACK_FROM bytes or more is written zstd-compressed (`pack`) and read back as its JSON (`unpack`).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import cast

import polars as pl
import zstandard
from polars._typing import PolarsDataType

from transforms.state_keys import needs_hash, store_key

# namespace -> what one key holds
NAMESPACES: dict[str, str] = {
    "landed_files": "source_file -> every ingest_log record of it (batch, bytes, sha256, status)",
    "event_ids": "event_id -> the batch that accepted it (dedupe with no horizon)",
    "identity_links": "anon:<anonymous_id> / user:<user_id> -> its identities edges",
    "profiles": "principal -> its merged profile state (transforms.profiles.state.PARTIAL_SCHEMA)",
    "pending_triggers": "trigger_id -> its pending candidate row (trigger_state and the log after it)",
    "pending_due": "<due_at>|<trigger_id> -> {} (the pending candidates in due order)",
    "pending_principals": "<principal>|<trigger_id> (`joined_key`) -> the trigger id (a principal's pending)",
    "decided_triggers": "trigger_id -> its terminal decision",
    "recent_sends": "user_id -> its `send` decisions of the 17 days before its last (cap, cooldown)",
    "suppressions": "user_key -> its suppression reasons",
    "catalog": "product_id -> its catalog row",
    "product_viewers": "<product_id>|<principal> (`joined_key`) -> who, when last viewed or carted",
    "customers": "user_id -> its CRM row",
}
# `identity_links` keys: a side and an id, `anon:<anonymous_id>` or `user:<user_id>` (the side says which id
# follows, so these are no principals: `transforms.principals`).
LINK_ANON, LINK_USER = "anon:", "user:"
# Lanes that commit to the store, each stamped with the number of its last commit: `ingest` with the
# micro-batch number (ingest_log's), `triggers` with the engine run (the `triggers` log's).
LANES = ("ingest", "triggers")
# Namespaces whose keys keep the value first put: `event_ids` names the batch that accepted an id first,
# `decided_triggers` the first terminal decision of a trigger (as a rebuild from the lake does), so an id
# accepted or decided again (a dedupe or an engine that failed) leaves the earlier commit for the in-run
# checks to see; put last-wins, the second commit overwrote the evidence and the checks passed (#17 review).
FIRST_PUT_WINS = frozenset({"event_ids", "decided_triggers"})


class StateError(ValueError):
    """A change names an unknown namespace or lane, or would move a stamp backwards."""


PUT_SCHEMA = {"key": pl.String, "value": pl.Binary}
# From this many rows `put_many` keeps a frame (merged and sorted in Polars): below, Python's dict and sort
# are faster (a settle costs ~0.5 ms whatever its size, a dict of 100 keys 0.03 ms).
BULK_PUTS = 256
PutPart = dict[str, bytes] | pl.DataFrame  # single puts, or a put_many frame (key: String, value: Binary)
# A value of PACK_FROM bytes or more is kept zstd-compressed (#17): a profile state (6.5 KB of JSON, median)
# took pages of its own in LMDB, and a backlog's every commit group rewrote them all (910 MB written for a
# 113 MB lake); packed, it is ~1.4 KB and shares a leaf page. The store's reads give the JSON back (`unpack`).
PACK_FROM = 1024
PACK_LEVEL = 1  # level 3 packs 1 % smaller for 40 % more time
PACKED = b"\x28\xb5\x2f\xfd"  # a zstd frame's magic number: no JSON text starts with it
_CONTEXTS = threading.local()  # a zstd context serves one thread at a time: one of each per thread


@dataclass
class StateChanges:
    """What one batch changes in the store: puts and deletes per namespace (a delete wins over a put).

    A namespace's puts are kept as parts in the order they came (later puts of a key win): dicts of
    single `put`s and the frames of `put_many`, which stay Polars frames up to the commit. `ordered_puts`
    merges them and sorts by key in Polars (#17: the event ids of a 1M-line drain were Python strings in a
    dict, sorted and encoded while holding the GIL, on the commit's critical path)."""

    parts: dict[str, list[PutPart]] = field(default_factory=dict)
    deletes: dict[str, set[str]] = field(default_factory=dict)
    # namespace -> key (as the store holds it) -> the value it is deleted with: `delete_if`
    deletes_if: dict[str, dict[str, bytes]] = field(default_factory=dict)
    _settled: set[str] = field(default_factory=set)  # namespaces whose parts are one merged, sorted frame

    def put(self, namespace: str, key: str, value: bytes) -> None:
        check_namespace(namespace)
        self._single(namespace)[store_key(key)] = value

    def put_many(self, namespace: str, pairs: pl.DataFrame) -> None:
        """Every (key, value) row of `pairs` (the frame `encode` makes); as `put` row by row, in bulk."""
        check_namespace(namespace)
        keys, values = _stored(pairs["key"]), pairs["value"].cast(pl.Binary).alias("value")
        if pairs.height < BULK_PUTS:  # a live run's few keys: a dict costs less than Polars' fixed costs
            self._single(namespace).update(zip(keys.to_list(), values.to_list(), strict=True))
        else:
            self._changing(namespace).append(pl.DataFrame([keys, values]))

    def delete(self, namespace: str, key: str) -> None:
        check_namespace(namespace)
        self.deletes.setdefault(namespace, set()).add(store_key(key))

    def delete_stored(self, namespace: str, key: str) -> None:
        """Delete a key as the store holds it (as a `scan` names it: a hashed one is not hashed again)."""
        check_namespace(namespace)
        self.deletes.setdefault(namespace, set()).add(key)

    def delete_many(self, namespace: str, keys: pl.Series) -> None:
        """Every key of `keys` deleted; as `delete` key by key, in bulk."""
        check_namespace(namespace)
        self.deletes.setdefault(namespace, set()).update(_stored(keys).to_list())

    def delete_if(self, namespace: str, key: str, value: bytes) -> None:
        """Delete a key (as a `scan` names it) only if it still holds `value` (as a read gave it) when the
        commit applies: the other lane may have put a newer one since it was read (the decision lane's
        stale `product_viewers`, a namespace the ingest lane puts to), and that one stays. Applied after
        the commit's puts and deletes."""
        check_namespace(namespace)
        self.deletes_if.setdefault(namespace, {})[key] = value

    def update(self, other: StateChanges) -> None:
        """Add `other`'s puts and deletes (its puts after this one's, key by key)."""
        for namespace, parts in other.parts.items():
            self._changing(namespace).extend(dict(p) if isinstance(p, dict) else p for p in parts)
        for namespace, keys in other.deletes.items():
            self.deletes.setdefault(namespace, set()).update(keys)
        for namespace, held in other.deletes_if.items():
            self.deletes_if.setdefault(namespace, {}).update(held)

    def settle(self) -> StateChanges:
        """Merge and sort every namespace's puts now (Polars, off the GIL): a thread that computes the
        changes does it, and the commit only hands the sorted pairs to the store."""
        for namespace in self.parts:
            self._settle(namespace)
        return self

    def ordered_puts(self, namespace: str) -> Iterator[tuple[bytes, bytes]]:
        """The namespace's puts, the last of each key, in key order (UTF-8 bytes), keys encoded and values
        as the store keeps them (`pack`)."""
        parts = self.parts.get(namespace, [])
        if all(isinstance(p, dict) for p in parts):  # single puts only: no frame to build
            merged: dict[str, bytes] = {}
            for part in parts:
                merged.update(cast(dict[str, bytes], part))
            ordered = sorted(merged)  # a str sorts as its UTF-8 bytes do, as LMDB orders keys
            return ((k.encode(), pack_one(merged[k])) for k in ordered)
        frame = cast(pl.DataFrame, self._settle(namespace)[0])
        return zip(frame["key"].to_list(), frame["value"].to_list(), strict=True)

    def __len__(self) -> int:
        """Entries: each put (a key put twice counts twice) and each deleted key (conditionally or not)."""
        parts = [p for each in self.parts.values() for p in each]
        puts = sum(len(p) if isinstance(p, dict) else p.height for p in parts)
        return puts + sum(map(len, self.deletes.values())) + sum(map(len, self.deletes_if.values()))

    def _single(self, namespace: str) -> dict[str, bytes]:
        """The dict that single puts go to: the last part, or a new one after a frame."""
        parts = self._changing(namespace)
        if not parts or not isinstance(parts[-1], dict):
            parts.append({})
        return cast(dict[str, bytes], parts[-1])

    def _changing(self, namespace: str) -> list[PutPart]:
        self._settled.discard(namespace)
        return self.parts.setdefault(namespace, [])

    def _settle(self, namespace: str) -> list[PutPart]:
        parts = self.parts[namespace]
        if namespace in self._settled or all(isinstance(p, dict) for p in parts):
            return parts
        merged = pl.concat(map(_binary_keys, parts)).unique("key", keep="last").sort("key").collect()
        self.parts[namespace] = [merged.with_columns(pack(merged["value"]))]
        self._settled.add(namespace)
        return self.parts[namespace]


def _binary_keys(part: PutPart) -> pl.LazyFrame:
    """A part as (key: Binary, value: Binary) rows: a settled frame's keys are binary already."""
    if isinstance(part, dict):
        part = pl.DataFrame({"key": list(part), "value": list(part.values())}, PUT_SCHEMA)
    return part.lazy().select(pl.col("key").cast(pl.Binary), "value")


def pack(values: pl.Series) -> pl.Series:
    """`values` as the store keeps them: each of PACK_FROM bytes or more zstd-compressed, once (the
    compression runs on zstd's threads, off the GIL)."""
    big = ((values.bin.size() >= PACK_FROM) & ~values.bin.starts_with(PACKED)).arg_true()
    if big.len() == 0:
        return values
    wanted = values.gather(big).to_list()
    packed = zstandard.ZstdCompressor(level=PACK_LEVEL).multi_compress_to_buffer(wanted, threads=-1)
    packed_values = [packed[i].tobytes() for i in range(len(packed))]
    return values.clone().scatter(big, pl.Series(packed_values, dtype=pl.Binary))


def pack_one(value: bytes) -> bytes:
    """One value as `pack` keeps it."""
    if len(value) < PACK_FROM or value.startswith(PACKED):
        return value
    packer = getattr(_CONTEXTS, "packer", None)
    if packer is None:  # a context made per value costs ~9 us more than the value's 13 us
        packer = _CONTEXTS.packer = zstandard.ZstdCompressor(level=PACK_LEVEL)
    return packer.compress(value)


def unpack(value: bytes) -> bytes:
    """A stored value as it was put (`pack` undone)."""
    if not value.startswith(PACKED):
        return value
    unpacker = getattr(_CONTEXTS, "unpacker", None)
    if unpacker is None:
        unpacker = _CONTEXTS.unpacker = zstandard.ZstdDecompressor()
    return unpacker.decompress(value)


def unpack_all(values: pl.Series) -> pl.Series:
    """Stored values as they were put (`unpack` of each packed one; the others as they are)."""
    packed = values.bin.starts_with(PACKED).arg_true()
    if packed.len() == 0:
        return values
    unpacked = [unpack(value) for value in values.gather(packed).to_list()]
    return values.clone().scatter(packed, pl.Series(unpacked, dtype=pl.Binary))


def check_namespace(namespace: str) -> None:
    if namespace not in NAMESPACES:
        raise StateError(f"unknown state namespace {namespace!r} (known: {', '.join(NAMESPACES)})")


def _stored(keys: pl.Series) -> pl.Series:
    """`store_key` of each of `keys`, as "key": the keys themselves when none needs its hash (one check in
    Polars; the rare others hashed in Python)."""
    if needs_hash(keys).any():
        keys = pl.Series(list(map(store_key, keys)), dtype=pl.String)
    return keys.alias("key")


def wire(dtype: PolarsDataType) -> pl.DataType:
    """The JSON-safe type of `dtype`: times as integers (microseconds, days), nested types alike."""
    if isinstance(dtype, pl.Datetime):
        return pl.Int64()
    if isinstance(dtype, pl.Date):
        return pl.Int32()
    if isinstance(dtype, pl.List):
        return pl.List(wire(dtype.inner))
    if isinstance(dtype, pl.Struct):
        return pl.Struct({f.name: wire(f.dtype) for f in dtype.fields})
    return dtype if isinstance(dtype, pl.DataType) else dtype()


def encode(
    rows: pl.LazyFrame, key: pl.Expr, schema: dict[str, pl.DataType], keep: tuple[str, ...] = ()
) -> pl.LazyFrame:
    """(key, value) of every row: the value is the JSON of `schema`'s columns, in its order; the columns
    `keep` follow as they are."""
    columns = [pl.col(c).cast(t).cast(wire(t)) for c, t in schema.items()]
    return rows.select(key.alias("key"), pl.struct(columns).struct.json_encode().alias("value"), *keep)


DECODE_PART_BYTES = 1 << 20  # JSON decoded per part: parts of a large decode run on Polars' threads


def decode(values: list[bytes] | pl.Series, schema: dict[str, pl.DataType]) -> pl.DataFrame:
    """The rows `encode` wrote, back in `schema`'s types.

    A large decode (an engine run reads ~60 MB of profile states on a backlog) is cut into parts of
    about DECODE_PART_BYTES, decoded in parallel by one lazy concat: 0.25-0.3 s against 0.85-1.15 s for
    10k profile states in one `json_decode` on two cores (#17). Small decodes stay one part."""
    wired = pl.Struct({c: wire(t) for c, t in schema.items()})
    text = pl.Series("value", values, dtype=pl.Binary).cast(pl.String)  # UTF-8 checked in Rust, no copies
    size = int(text.str.len_bytes().sum() or 0)
    step = -(-len(values) // max(1, min(len(values), size // DECODE_PART_BYTES)))
    if step >= len(values):  # one part: eagerly (a lazy plan costs ~0.3 ms, a live run decodes often)
        frame = text.str.json_decode(wired).struct.unnest()
    else:
        parts = [
            pl.LazyFrame([text.slice(start, step)]).select(pl.col("value").str.json_decode(wired))
            for start in range(0, len(values), step)
        ]
        frame = pl.concat(parts).collect().unnest("value")
    return frame.select([pl.col(c).cast(t) for c, t in schema.items()])
