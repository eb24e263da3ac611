"""Rebuild the state store from the lake alone, and check the two against each other.

Both read one pinned snapshot of the lake (`LakeResource.snapshot`): a micro-batch committing meanwhile
does not tear what they see, and the stamps they set or compare are that snapshot's. The store is never
trusted past the lake: a stamp newer than the lake's (a lake restored from a backup, a store copied
from elsewhere) means the store must be rebuilt.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

from resources.lake import LakeResource
from resources.state import StateResource, StateStore
from stores.state.namespaces import CHECK_READERS, READERS, VALUE_SCHEMAS
from stores.state.profiles import same_profiles
from transforms.schema import RUN_APP
from transforms.state import NAMESPACES, decode
from transforms.state_keys import KEY_FORMAT

# Every table a namespace is read from.
SOURCE_TABLES = (
    "ingest_log",
    "events",
    "identities",
    "profile_state",
    "profile_updates",
    "trigger_state",
    "triggers",
    "suppressions",
    "catalog",
    "catalog_changes",  # the changes decided so far: which viewers are stale (`namespaces.viewer_entries`)
    "customers",
)


def lake_stamps(lake: LakeResource) -> dict[str, int]:
    """What a store derived from `lake` is stamped with: the last micro-batch and engine run (the pending
    namespaces hold the log's rows of the runs after `trigger_state`'s checkpoint too)."""
    return {"ingest": lake.committed_batch(), "triggers": lake.app_version("triggers", RUN_APP)}


def rebuild(lake: LakeResource, state: StateResource, *, for_key_format: bool = False) -> dict[str, int]:
    """Make a new store from `lake` and put it in place of the old one; returns keys per namespace. With
    `for_key_format` (the store's keys are an earlier release's), none when, once this rebuild's turn
    comes, another has already made the store anew: at an upgrade both lanes found the old store and
    rebuilt it one after the other (found by review); the caller then checks it again as usual."""
    counts: dict[str, int] = {}
    with state.rebuilding():  # one rebuild at a time: another's staging is not a leftover
        if for_key_format and (store := state.existing()) is not None and store.key_format() == KEY_FORMAT:
            return counts
        seen = lake.snapshot(SOURCE_TABLES)
        state.discard_staging()
        with state.replacement() as store:
            for namespace in NAMESPACES:
                counts[namespace] = 0
                for chunk in READERS[namespace](seen):
                    counts[namespace] += store.load(namespace, _pairs(chunk))
            store.set_stamps(lake_stamps(seen))
    return counts


def _pairs(chunk: pl.DataFrame) -> list[tuple[str, bytes]]:
    return [(key, value.encode()) for key, value in chunk.select("key", "value").iter_rows()]


@dataclass
class NamespaceDiff:
    lake: int = 0  # keys the lake implies
    store: int = 0  # keys the store holds
    missing: int = 0  # in the lake, not in the store
    different: int = 0  # in both, other values
    extra: int = 0  # in the store, not in the lake
    stale: int = 0  # in the store, and the lake says it may be or not (CHECK_READERS: stale viewers)

    @property
    def equal(self) -> bool:
        return self.missing == self.different == self.extra == 0 and self.lake == self.store - self.stale


@dataclass
class CheckReport:
    lake_stamps: dict[str, int]
    store_stamps: dict[str, int] | None  # None: there is no store
    namespaces: dict[str, NamespaceDiff] = field(default_factory=dict)
    moved: bool = False  # a batch committed to the store while it was compared: compare again
    key_format: int = KEY_FORMAT  # how the store's keys are written (another release's: not compared)

    @property
    def ahead(self) -> list[str]:
        """Lanes whose store stamp is newer than the lake: the store must be rebuilt, never trusted."""
        mine = self.store_stamps or {}
        return [lane for lane, n in mine.items() if n > self.lake_stamps.get(lane, 0)]

    @property
    def equal(self) -> bool:
        same = self.store_stamps == self.lake_stamps and self.key_format == KEY_FORMAT
        return same and all(d.equal for d in self.namespaces.values())

    def summary(self) -> list[str]:
        """One line per finding (empty when the store equals the lake)."""
        if self.store_stamps is None:
            return ["no state store: run `lakemail state rebuild`"]
        if self.key_format != KEY_FORMAT:
            return [
                f"the store's keys are written as release format {self.key_format}, this release's is "
                f"{KEY_FORMAT}: it must be rebuilt (the next ingest run does it, or `lakemail state rebuild`)"
            ]
        lines = ["the store took a commit while it was compared: run the check again"] if self.moved else []
        lines += [
            f"{lane}: store is at {n}, the lake at {self.lake_stamps[lane]}: it is AHEAD of the lake "
            "(a restored lake or a foreign store) and must be rebuilt (`lakemail state rebuild`)"
            for lane, n in self.store_stamps.items()
            if lane in self.ahead
        ]
        lines += [
            f"{lane}: store is at {n}, the lake at {self.lake_stamps[lane]}: behind"
            for lane, n in self.store_stamps.items()
            if n < self.lake_stamps.get(lane, 0)
        ]
        for name, d in self.namespaces.items():
            if not d.equal:
                lines.append(
                    f"{name}: lake {d.lake}, store {d.store}: {d.missing} missing, {d.different} different, "
                    f"{d.extra} extra"
                )
        return lines


def check(lake: LakeResource, state: StateResource) -> CheckReport:
    """Compare every namespace of the store with what the lake implies (chunk by chunk).

    No lock is held: the store's stamps are read before the lake's snapshot (as `sync.ready` does), so a
    batch committing meanwhile only moves the lake ahead, never makes the store look ahead of it (a
    needless rebuild, which stops both lanes); one committing to the store during the comparison is
    `moved`."""
    store = state.existing()
    mine = store.stamps() if store is not None else None
    seen = lake.snapshot(SOURCE_TABLES)
    report = CheckReport(lake_stamps(seen), mine)
    if store is None:
        return report
    report.key_format = store.key_format()
    if report.key_format != KEY_FORMAT:
        return report
    held = store.counts()
    for namespace in NAMESPACES:
        report.namespaces[namespace] = _compare(seen, store, namespace, held[namespace])
    report.moved = store.stamps() != report.store_stamps
    return report


def _same(namespace: str, expected: bytes, found: bytes) -> bool:
    """Whether a store value is the one the lake implies, as every reader decodes it: a field a release
    added reads as null from a value written before it (landed_files' `modified_at`, whose rows from
    before it are null in the lake); profiles up to `same_profiles`' rounding."""
    if expected == found:
        return True
    if namespace == "profiles":
        return same_profiles(expected, found)
    schema = VALUE_SCHEMAS.get(namespace)
    if schema is None:
        return False
    try:
        lake_value, store_value = decode([expected, found], schema).rows()
    except pl.exceptions.PolarsError:  # a value no reader could decode
        return False
    return bool(lake_value == store_value)


def _compare(lake: LakeResource, store: StateStore, namespace: str, held: int) -> NamespaceDiff:
    """The store's `namespace` against the lake's; a key CHECK_READERS mark `stale` may be held or not,
    with any value (a stale viewer: no run can want it, and no lake fact says whether it went)."""
    diff = NamespaceDiff(store=held)
    present = 0
    for chunk in CHECK_READERS.get(namespace, READERS[namespace])(lake):
        stale = chunk["stale"] if "stale" in chunk.columns else pl.repeat(False, chunk.height, eager=True)
        expected = {k: v.encode() for k, v in chunk.filter(~stale).select("key", "value").iter_rows()}
        found = store.get_many(namespace, expected)  # named as the lake names them (a long one: its hash)
        diff.lake += len(expected)
        present += len(found)
        diff.missing += len(expected) - len(found)
        diff.different += sum(1 for k, v in found.items() if not _same(namespace, expected[k], v))
        diff.stale += len(store.get_many(namespace, chunk.filter(stale)["key"].to_list()))
    diff.extra = held - present - diff.stale
    return diff
