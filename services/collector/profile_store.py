"""The profile API's read side: the state store opened read-only (it never writes), reopened when a
rebuild replaced it, and each shopper's profile derived from it as the micro-batch derives `profiles`.

The store is LMDB: readers in any number of processes see the last committed transaction, never
blocked by the writer. `lakemail state rebuild` puts a new store in place of the folder's (a rename,
`resources.state.StateResource.replacement`): the old file stays readable where it is open, so each
lookup compares the folder's file with the open one and reopens once in-flight reads are done.

`as_of` is when the store last committed (its file's modification time): the profile reflects that
commit. A lookup derives its shopper in plain Python (`transforms.profiles.one.derive_one`, the same
row as the micro-batch's Polars `derive`, in tens of microseconds instead of ~14 ms per call), and an
unchanged shopper is not derived again until the next commit (a bounded cache).
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import polars as pl

from resources.state import StateReader, StateResource, StateStore
from resources.state_lmdb import close_environment
from stores.state.crm import shopper_crm_values
from stores.state.namespaces import VALUE_SCHEMAS
from transforms.erasure.records import ERASED, user_key
from transforms.principals import of_user
from transforms.profiles.derive import derive
from transforms.profiles.one import derive_one
from transforms.profiles.state import PARTIAL_SCHEMA
from transforms.schema import CUSTOMERS_SCHEMA
from transforms.sends.catalog import Catalog
from transforms.spec import MAX_LINE_BYTES
from transforms.state import decode

# Any user id the ingest takes (a landed line holds it); found by review: 256 characters answered 404
MAX_USER_ID_BYTES = MAX_LINE_BYTES
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
    state: bytes = b""  # its merged state as the store holds it (JSON), read in the same transaction


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
        return self.profiles([user_id])[user_id]

    def profiles(self, user_ids: Sequence[str]) -> dict[str, Profile | None]:
        """Each user's profile (None: unknown, anonymous-only or erased), every value read in one read
        transaction (one commit's state, CRM row, erasure and stamps)."""
        found: dict[str, Profile | None] = dict.fromkeys(user_ids)
        wanted = [u for u in found if u and len(u.encode()) <= MAX_USER_ID_BYTES]
        if not wanted:
            return found
        principals = {of_user(u): u for u in wanted}  # a user's state is kept under its principal
        with self.reading() as snap, snap.store.reader() as reader:
            states = {principals[p]: v for p, v in reader.get_many("profiles", principals).items()}
            # a renamed user's CRM row is the shopper's: under the id she goes by now, none under the old
            crms = shopper_crm_values(reader, wanted, reader.get_many("customers", wanted))
            known = [u for u in wanted if u in states or u in crms]
            erased = self._erased(reader, known)
            stamps = reader.stamps()
        values = {u: (states.get(u, b""), crms.get(u, b"")) for u in known if u not in erased}
        for user, row in self._derived(values, snap).items():
            found[user] = Profile(row, stamps, values[user][0])
        return found

    def _erased(self, store: StateReader, user_ids: Sequence[str]) -> set[str]:
        """The ids an erasure suppressed (their entries may still be on their way out)."""
        if self._secret is None or not user_ids:
            return set()
        keys = {user_key(u, self._secret): u for u in user_ids}
        found = store.get_many("suppressions", keys)
        if not found:
            return set()
        reasons = {k: orjson.loads(v).get("reasons") or () for k, v in found.items()}
        return {keys[k] for k, r in reasons.items() if any(x and x.get("reason") == ERASED for x in r)}

    def _derived(self, values: dict[str, tuple[bytes, bytes]], snap: Snapshot) -> dict[str, dict[str, Any]]:
        """user -> profile row: the cached one while its stored bytes and the store's commit are the same."""
        mtime, rows, missing = snap.version[2], {}, {}
        with self._cond:
            for user, pair in values.items():
                cached = self._profiles.get(user)
                if cached is not None and cached[:3] == (*pair, mtime):
                    self._profiles.move_to_end(user)
                    rows[user] = cached[3]
                else:
                    missing[user] = pair
        fresh = derive_profiles(missing, snap.as_of)
        with self._cond:
            for user, row in fresh.items():
                self._profiles[user] = (*missing[user], mtime, row)
            while len(self._profiles) > CACHE_PROFILES:
                self._profiles.popitem(last=False)
        return rows | fresh

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


def derive_profiles(values: Mapping[str, tuple[bytes, bytes]], as_of: datetime) -> dict[str, dict[str, Any]]:
    """user -> `profiles` row from the store's (state, CRM) values: the micro-batch's own derivation,
    one shopper at a time in plain Python; in one Polars query for the few only it can say exactly."""
    rows, left = {}, {}
    for user, (state, crm) in values.items():
        row = derive_one(
            user, orjson.loads(state) if state else None, orjson.loads(crm) if crm else None, as_of
        )
        if row is None:
            left[user] = (state, crm)
        else:
            rows[user] = row
    return rows | derive_polars(left, as_of)


def derive_polars(values: Mapping[str, tuple[bytes, bytes]], as_of: datetime) -> dict[str, dict[str, Any]]:
    """user -> `profiles` row from the store's (state, CRM) values, by `transforms.profiles.derive`."""
    if not values:
        return {}
    states = [state for state, _ in values.values() if state]
    crms = [crm for _, crm in values.values() if crm]
    merged = decode(states, PARTIAL_SCHEMA) if states else pl.DataFrame(schema=PARTIAL_SCHEMA)
    customers = decode(crms, CUSTOMERS_SCHEMA) if crms else pl.DataFrame(schema=CUSTOMERS_SCHEMA)
    return {row["user_id"]: row for row in derive(merged, customers, as_of).iter_rows(named=True)}
