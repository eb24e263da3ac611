"""The `state` resource: the state store, an index of the lake that the micro-batches decide with.

Delta is the system of record; the store is derived from it (`stores.state.rebuild`). Its interface is
the `StateStore` protocol below, narrow on purpose: batch get, an ordered range scan, counts, stamps and
one atomic `commit` per batch. An embedded LMDB file implements it (`resources.state_lmdb`); a networked
store (Redis, DynamoDB) can stand behind the same protocol (README, "The state store").
"""

from __future__ import annotations

import fcntl
import shutil
import uuid
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import dagster as dg
import polars as pl

from resources.folders import local_folder
from resources.state_lmdb import LmdbStore, close_environment, open_environment
from transforms.state import StateChanges, StateError
from transforms.state_keys import AFTER_SEPARATOR, SEPARATOR


class StateReader(Protocol):
    """Reads that all see one committed state of the store (one read transaction)."""

    def get_many(self, namespace: str, keys: Iterable[str]) -> dict[str, bytes]: ...

    def scan(
        self, namespace: str, start: str = "", end: str | None = None, *, limit: int | None = None
    ) -> Iterator[tuple[str, bytes]]: ...

    def stamps(self) -> dict[str, int]: ...


class StateStore(Protocol):
    """What any state store offers: keys are strings, values bytes, grouped in `transforms.state`'s
    NAMESPACES; every lane (`transforms.state.LANES`) has a stamp, the number of its last commit, and the
    store the KEY_FORMAT it was written with (a new store: this release's; one of another is rebuilt).
    `get_many` answers under the keys as asked, a key kept as its hash (`store_key`) included; `get_frame`
    is the same answer as a frame (`key`, `value`) for bulk reads. `commit` applies the puts, deletes and
    conditional deletes (`StateChanges.delete_if`: only a key still holding the value given) together."""

    def get_many(self, namespace: str, keys: Iterable[str]) -> dict[str, bytes]: ...

    def get_frame(self, namespace: str, keys: pl.Series) -> pl.DataFrame: ...

    def scan(
        self, namespace: str, start: str = "", end: str | None = None, *, limit: int | None = None
    ) -> Iterator[tuple[str, bytes]]: ...

    def stamps(self) -> dict[str, int]: ...

    def key_format(self) -> int: ...

    def reader(self) -> AbstractContextManager[StateReader]: ...

    def counts(self) -> dict[str, int]: ...

    def commit(self, number: int, changes: StateChanges, *, lane: str = "ingest") -> None: ...

    def load(self, namespace: str, pairs: Iterable[tuple[str, bytes]]) -> int: ...

    def set_stamps(self, stamps: dict[str, int]) -> None: ...

    def size_bytes(self) -> int: ...


class StateResource(dg.ConfigurableResource):
    """The state store at `uri` (`LAKEMAIL_STATE_URI`, default `$LAKEMAIL_HOME/state`)."""

    uri: str

    @property
    def path(self) -> Path:
        folder = local_folder(self.uri)
        if folder is None:
            raise StateError(
                f"LAKEMAIL_STATE_URI={self.uri!r}: only a local folder is supported (an embedded store); "
                "a networked store would implement resources.state.StateStore (README, 'The state store')"
            )
        return folder

    def exists(self) -> bool:
        return (self.path / "data.mdb").exists()

    def store(self) -> StateStore:
        """The store (created empty, all stamps 0, when there is none)."""
        env = open_environment(self.path, create=True)
        assert env is not None
        return LmdbStore(env)

    def existing(self) -> StateStore | None:
        """The store, or None when there is none (a reader never creates one)."""
        env = open_environment(self.path, create=False)
        return LmdbStore(env) if env is not None else None

    def commit(self, number: int, changes: StateChanges, *, lane: str = "ingest") -> None:
        """Apply one batch's `changes` atomically and stamp `lane` with `number` (after its Delta commits)."""
        self.store().commit(number, changes, lane=lane)

    def get_many(self, namespace: str, keys: Iterable[str]) -> dict[str, bytes]:
        return self.store().get_many(namespace, keys)

    def get_frame(self, namespace: str, keys: pl.Series) -> pl.DataFrame:
        return self.store().get_frame(namespace, keys)

    def stamps(self) -> dict[str, int]:
        return self.store().stamps()

    @contextmanager
    def reader(self) -> Iterator[StateReader]:
        """A consistent snapshot for several reads (`with state.reader() as r:`): a commit made meanwhile
        (by the other lane) is not seen by any of them."""
        with self.store().reader() as reader:
            yield reader

    def pending_due(self, until: datetime) -> dict[str, bytes]:
        """trigger_id -> pending candidate of every candidate due at or before `until` (the due index)."""
        store = self.store()
        bound = until.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ") + AFTER_SEPARATOR
        ids = [key.split(SEPARATOR, 1)[1] for key, _ in store.scan("pending_due", "", bound)]
        return store.get_many("pending_triggers", ids)

    @contextmanager
    def rebuilding(self) -> Iterator[None]:
        """Held by whoever rebuilds the store, from its snapshot of the lake to the swap (found by review):
        the two lanes each rebuild a store of an earlier release under their own lake lock, so at an
        upgrade both did at once, and the second's `discard_staging` deleted the first's store half
        built (its run failed: FileNotFoundError at the swap). An `flock`: threads and processes alike."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_name(f".{self.path.name}.rebuild"), "a+b") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    @contextmanager
    def replacement(self) -> Iterator[StateStore]:
        """A new, empty store beside this one; it replaces this one when the block completes (a failed
        block leaves this one as it was). Readers that have the old one open keep reading it."""
        path = self.path
        staging = path.with_name(f".{path.name}.new-{uuid.uuid4().hex[:8]}")
        env = open_environment(staging, create=True)
        assert env is not None
        try:
            yield LmdbStore(env)
            env.sync(True)
        except BaseException:
            close_environment(staging)
            shutil.rmtree(staging, ignore_errors=True)
            raise
        close_environment(staging)
        close_environment(path)
        retired = path.with_name(f".{path.name}.old-{uuid.uuid4().hex[:8]}")
        if path.exists():
            path.rename(retired)
        staging.rename(path)  # a crash before this line leaves no store: the next start rebuilds
        shutil.rmtree(retired, ignore_errors=True)

    def discard_staging(self) -> None:
        """Remove what an interrupted `replacement` left beside the store."""
        for leftover in self.path.parent.glob(f".{self.path.name}.*-*"):
            shutil.rmtree(leftover, ignore_errors=True)
