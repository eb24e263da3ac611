"""The profile API's read side: the state store opened read-only (it never writes), reopened when a
rebuild replaced it, and each shopper's profile derived from it as the micro-batch derives `profiles`.

The store is LMDB: readers in any number of processes see the last committed transaction, never
blocked by the writer. `lakemail state rebuild` puts a new store in place of the folder's (a rename,
`resources.state.StateResource.replacement`): the old file stays readable where it is open, so each
lookup compares the folder's file with the open one and reopens once in-flight reads are done.

`as_of` is when the store last committed (its file's modification time): the profile reflects that
commit, and an unchanged shopper is not derived again until the next one (a bounded cache).
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import polars as pl

from resources.state import StateResource, StateStore
from resources.state_lmdb import close_environment
from stores.state.namespaces import VALUE_SCHEMAS
from transforms.erasure.records import ERASED, user_key
from transforms.profiles.derive import derive
from transforms.profiles.state import ANON, PARTIAL_SCHEMA
from transforms.schema import CUSTOMERS_SCHEMA
from transforms.sends.catalog import Catalog
from transforms.state import decode

MAX_USER_ID_CHARS = 256
CACHE_PROFILES = 20_000  # derived profiles kept (each valid until its bytes or the store's commit change)
REOPEN_WAIT_SECONDS = 5.0


class NoStore(Exception):
    """There is no state store yet (`lakemail state rebuild` or the first micro-batch makes one)."""


@dataclass(frozen=True)
class Snapshot:
    """The open store and the version of it a lookup reads: (device, inode, modification time)."""

    store: StateStore
    version: tuple[int, int, int]

    @property
    def as_of(self) -> datetime:
        return datetime.fromtimestamp(self.version[2] / 1e9, UTC)


@dataclass(frozen=True)
class Profile:
    """A shopper's `profiles` row (PROFILES_SCHEMA) and the store's stamps it was read at."""

    row: Mapping[str, Any]
    stamps: Mapping[str, int]


class ProfileStore:
    """Profiles from the state store at `state`'s folder (erased ids: a suppression under `secret`)."""

    def __init__(self, state: StateResource, secret: str | None = None) -> None:
        self._state, self._secret = state, secret
        self._file = state.path / "data.mdb"
        self._cond = threading.Condition()
        self._active = 0
        self._store: StateStore | None = None
        self._identity: tuple[int, int] | None = None
        self._mtime = 0
        self._profiles: OrderedDict[str, tuple[bytes, bytes, int, dict[str, Any]]] = OrderedDict()
        self._catalog: tuple[tuple[int, int, int], Catalog] | None = None

    def _refresh(self) -> None:
        """Open the store, or reopen it when the folder's file is another one (a rebuild replaced it)."""
        try:
            stat = os.stat(self._file)
        except FileNotFoundError:
            return  # none yet, or a rebuild is renaming it in place: the open one still reads
        identity = (stat.st_dev, stat.st_ino)
        with self._cond:
            self._mtime = stat.st_mtime_ns
            if identity == self._identity and self._store is not None:
                return
            self._cond.wait_for(lambda: self._active == 0, timeout=REOPEN_WAIT_SECONDS)
            if self._store is not None:
                close_environment(self._state.path)
            self._store, self._identity = self._state.existing(), identity
            self._profiles.clear()

    @contextmanager
    def reading(self) -> Iterator[Snapshot]:
        """The current store for one lookup (raises NoStore when there is none)."""
        self._refresh()
        with self._cond:
            store, identity = self._store, self._identity
            if store is None or identity is None:
                raise NoStore("no state store yet: run `lakemail state rebuild` or wait for a micro-batch")
            self._active += 1
            version = (*identity, self._mtime)
        try:
            yield Snapshot(store, version)
        finally:
            with self._cond:
                self._active -= 1
                self._cond.notify_all()

    def profile(self, user_id: str) -> Profile | None:
        """The known user's profile; None for an unknown, anonymous-only or erased one."""
        if not user_id or len(user_id) > MAX_USER_ID_CHARS or user_id.startswith(ANON):
            return None
        with self.reading() as snap:
            return self._profile(snap, user_id)

    def _profile(self, snap: Snapshot, user_id: str) -> Profile | None:
        store = snap.store
        state = store.get_many("profiles", [user_id]).get(user_id, b"")
        crm = store.get_many("customers", [user_id]).get(user_id, b"")
        if not state and not crm:
            return None
        if self._erased(store, user_id):
            return None
        return Profile(self._derived(user_id, state, crm, snap), store.stamps())

    def _erased(self, store: StateStore, user_id: str) -> bool:
        """Whether an erasure suppressed this id (its entries may still be on their way out)."""
        if self._secret is None:
            return False
        key = user_key(user_id, self._secret)
        found = store.get_many("suppressions", [key]).get(key)
        if found is None:
            return False
        reasons = decode([found], VALUE_SCHEMAS["suppressions"])["reasons"][0]
        return any(r["reason"] == ERASED for r in reasons)

    def _derived(self, user_id: str, state: bytes, crm: bytes, snap: Snapshot) -> dict[str, Any]:
        mtime = snap.version[2]
        with self._cond:
            cached = self._profiles.get(user_id)
            if cached is not None and cached[:3] == (state, crm, mtime):
                self._profiles.move_to_end(user_id)
                return cached[3]
        row = derive_profile(state, crm, snap.as_of)
        with self._cond:
            self._profiles[user_id] = (state, crm, mtime, row)
            while len(self._profiles) > CACHE_PROFILES:
                self._profiles.popitem(last=False)
        return row

    def catalog(self, snap: Snapshot) -> Catalog:
        """The store's catalog as emails read it (read again once the store has committed)."""
        with self._cond:
            if self._catalog is not None and self._catalog[0] == snap.version:
                return self._catalog[1]
        values = [value for _, value in snap.store.scan("catalog")]
        frame = (
            decode(values, VALUE_SCHEMAS["catalog"])
            if values
            else pl.DataFrame(schema=VALUE_SCHEMAS["catalog"])
        )
        catalog = Catalog.of(frame)
        with self._cond:
            self._catalog = (snap.version, catalog)
        return catalog


def derive_profile(state: bytes, crm: bytes, as_of: datetime) -> dict[str, Any]:
    """The `profiles` row of one user from the store's values (the micro-batch's own derivation)."""
    merged = decode([state], PARTIAL_SCHEMA) if state else pl.DataFrame(schema=PARTIAL_SCHEMA)
    customers = decode([crm], CUSTOMERS_SCHEMA) if crm else pl.DataFrame(schema=CUSTOMERS_SCHEMA)
    return derive(merged, customers, as_of).row(0, named=True)
