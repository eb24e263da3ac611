"""The state store on LMDB: one memory-mapped B+tree file, one named database per namespace.

Why LMDB (measured on the 2-core reference machine; figures in pyproject.toml): reads are the hot path
(every batch looks up its event ids, shoppers and candidates; the profile API answers from another
process), and LMDB reads are a few microseconds, served from the page cache of a copy-on-write tree
that readers in any number of processes see at their last committed transaction, never blocked by the
writer. A commit is atomic and durable (fsync); a SIGKILL at any instant leaves the last committed
transaction, with no log to replay. One writer at a time: LMDB serialises write transactions itself.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from operator import itemgetter
from pathlib import Path

import lmdb
import polars as pl

from resources.mapped_pages import release
from transforms.state import (
    FIRST_PUT_WINS,
    LANES,
    NAMESPACES,
    StateChanges,
    StateError,
    check_namespace,
    pack_one,
    unpack,
    unpack_all,
)
from transforms.state_keys import KEY_FORMAT, needs_hash, store_key

MAP_SIZE = 1 << 40  # the largest the file may grow (address space only: the file holds what is used)
STAMPS = b"_stamps"
FORMAT = b"_format"  # the KEY_FORMAT a store was written with (none: 1, the releases before the stamp)
_OPEN: dict[Path, lmdb.Environment] = {}  # LMDB: one environment per file per process
_FILES: dict[Path, tuple[int, int] | None] = {}  # the data file each cached environment opened
# The named databases of each cached environment, opened once, when it is: opening one begins a write
# transaction, which waits for LMDB's writer lock holding the GIL. Opened per store object, a `/metrics`
# scrape or a lookup during another thread's commit (which needs the GIL to pack its next value) froze
# the runner for good.
_DATABASES: dict[Path, dict[str, lmdb._Database]] = {}
_LOCK = threading.Lock()


def _file_id(path: Path) -> tuple[int, int] | None:
    """(device, inode) of the store's data file at `path` (None when there is none)."""
    try:
        info = (path / "data.mdb").stat()
    except FileNotFoundError:
        return None
    return info.st_dev, info.st_ino


def open_environment(path: Path, *, create: bool) -> lmdb.Environment | None:
    """This process's environment of the store at `path` (None when there is none and not `create`).

    A store that another process replaced (a rebuild puts a new folder in place: `lakemail state
    rebuild`, the other lane's runner, #15) or removed since this process opened it is opened afresh:
    the old environment is dropped from the cache, not closed (a read in flight finishes on it)."""
    path = path.absolute()
    with _LOCK:
        found = _file_id(path)
        if path in _OPEN and _FILES.get(path) != found:
            del _OPEN[path], _DATABASES[path]
        if path not in _OPEN:
            if not create and found is None:
                return None
            path.mkdir(parents=True, exist_ok=True)
            env = lmdb.open(str(path), map_size=MAP_SIZE, max_dbs=len(NAMESPACES) + 2, max_readers=256)
            opened = _open_databases(env, new=found is None)
            _OPEN[path], _FILES[path], _DATABASES[path] = env, _file_id(path), opened
        return _OPEN[path]


def _open_databases(env: lmdb.Environment, *, new: bool = False) -> dict[str, lmdb._Database]:
    """The named databases of `env`, opened in a write transaction begun here: `begin` waits for LMDB's
    writer lock with the GIL released, `open_db`'s own transaction waits holding it, so a process opening
    the store during another process's commit (the collector's profile API during the runner's) stalled
    every thread of its own for up to that commit. (A read transaction cannot keep the handles: py-lmdb
    resets it at commit, which closes them.) A `new` store is stamped with this release's KEY_FORMAT."""
    txn = env.begin(write=True)
    try:
        opened = {name: env.open_db(name.encode(), txn=txn) for name in (*NAMESPACES, "_meta")}
        if new:
            txn.put(FORMAT, str(KEY_FORMAT).encode(), db=opened["_meta"])
    except BaseException:
        txn.abort()
        raise
    txn.commit()
    return opened


def databases(env: lmdb.Environment) -> dict[str, lmdb._Database]:
    """The named databases of `env`: those opened with it when it is cached (no transaction), else opened
    now (an environment replaced since it was handed out)."""
    path = Path(env.path()).absolute()
    with _LOCK:
        if _OPEN.get(path) is env:
            return _DATABASES[path]
    return _open_databases(env)


def open_paths() -> list[Path]:
    """The stores this process has an environment of (each reserves MAP_SIZE of address space)."""
    with _LOCK:
        return list(_OPEN)


def close_environment(path: Path) -> None:
    """Close this process's environment of `path` (before the store there is replaced or removed)."""
    with _LOCK:
        env = _OPEN.pop(path.absolute(), None)
        _FILES.pop(path.absolute(), None)
        _DATABASES.pop(path.absolute(), None)
    if env is not None:
        env.close()


BULK_KEYS = 256  # from this many keys a lookup sorts them in Polars (below, Polars' fixed cost is more)


def _get_many(txn: lmdb.Transaction[bytes], db: lmdb._Database, keys: Iterable[str]) -> dict[str, bytes]:
    """The values of `keys` the database holds, each under the key as asked: one kept as its hash
    (`store_key`: longer than MAX_KEY_BYTES, as a shopper's id can be, or shaped like a hash) is found by
    the hash and named as asked (found by review: readers that took the names for ids lost a long id's
    sends, and with them its frequency cap). An empty key is none: LMDB holds no such key and refuses to
    look one up (MDB_BAD_VALSIZE), and a shopper's id can be "" (`cart_id`, found by review)."""
    if not isinstance(keys, pl.Series) and len(keys := list(keys)) >= BULK_KEYS:
        keys = pl.Series(keys, dtype=pl.String)  # sorted and encoded in Polars, not key by key (#17)
    if isinstance(keys, pl.Series) and not needs_hash(keys).any():
        wanted = _sorted_once(keys).cast(pl.Binary).to_list()  # 5x faster than in Python (#17)
        return {k.decode(): unpack(bytes(v)) for k, v in txn.cursor(db).getmulti(wanted)}
    asked = {store_key(k): k for k in keys if k}
    wanted = sorted(k.encode() for k in asked)  # in key order: neighbouring pages
    return {asked[k.decode()]: unpack(bytes(v)) for k, v in txn.cursor(db).getmulti(wanted)}


def _sorted_once(keys: pl.Series) -> pl.Series:
    """`keys` but "", sorted (LMDB pages in order), each once: a sort and a neighbour compare, 0.36 CPU-s
    for 1M event ids against 0.56 for `unique().sort()` (#17)."""
    keys = keys.filter(keys != "").sort()
    return keys.filter(keys.ne_missing(keys.shift(1)))


FOUND_SCHEMA = {"key": pl.String, "value": pl.Binary}


def _get_frame(txn: lmdb.Transaction[bytes], db: lmdb._Database, keys: pl.Series) -> pl.DataFrame:
    """`_get_many` as a frame (FOUND_SCHEMA) for a bulk read: no Python string or dict entry per key
    (1M event ids: 0.9 s against 1.7 s with the dict and the values' decode, #17)."""
    if keys.len() < BULK_KEYS or needs_hash(keys).any():  # few, or named as asked: the per-key path
        found = _get_many(txn, db, keys.to_list())
        return pl.DataFrame([list(found), list(found.values())], schema=FOUND_SCHEMA, orient="col")
    pairs = txn.cursor(db).getmulti(_sorted_once(keys).cast(pl.Binary).to_list())
    if not pairs:
        return pl.DataFrame(schema=FOUND_SCHEMA)
    keys = pl.Series("key", list(map(itemgetter(0), pairs)), pl.Binary)  # zip(*pairs): 0.9 s a 1M
    values = pl.Series("value", list(map(itemgetter(1), pairs)), pl.Binary)
    return pl.DataFrame([keys.cast(pl.String), unpack_all(values)])


def _scan(
    txn: lmdb.Transaction[bytes], db: lmdb._Database, start: str, end: str | None, limit: int | None
) -> Iterator[tuple[str, bytes]]:
    stop = end.encode() if end is not None else None
    cursor = txn.cursor(db)
    if not cursor.set_range(start.encode()):
        return
    for n, (key, value) in enumerate(cursor.iternext()):
        if (stop is not None and key >= stop) or (limit is not None and n >= limit):
            return
        yield key.decode(), unpack(bytes(value))


def _stamps(txn: lmdb.Transaction[bytes], meta: lmdb._Database) -> dict[str, int]:
    return {lane: int(txn.get(b"%s:%s" % (STAMPS, lane.encode()), db=meta) or 0) for lane in LANES}


class LmdbReader:
    """Reads of one LMDB read transaction: every call sees the same committed state (a snapshot)."""

    def __init__(self, txn: lmdb.Transaction[bytes], dbs: dict[str, lmdb._Database]) -> None:
        self._txn = txn
        self._dbs = dbs

    def get_many(self, namespace: str, keys: Iterable[str]) -> dict[str, bytes]:
        check_namespace(namespace)
        return _get_many(self._txn, self._dbs[namespace], keys)

    def scan(
        self, namespace: str, start: str = "", end: str | None = None, *, limit: int | None = None
    ) -> Iterator[tuple[str, bytes]]:
        check_namespace(namespace)
        return _scan(self._txn, self._dbs[namespace], start, end, limit)

    def stamps(self) -> dict[str, int]:
        return _stamps(self._txn, self._dbs["_meta"])


class LmdbStore:
    """The state store in the LMDB environment at `path`."""

    def __init__(self, env: lmdb.Environment) -> None:
        self._env = env
        self._dbs = databases(env)

    def get_many(self, namespace: str, keys: Iterable[str]) -> dict[str, bytes]:
        check_namespace(namespace)
        with self._env.begin() as txn:
            return _get_many(txn, self._dbs[namespace], keys)

    def get_frame(self, namespace: str, keys: pl.Series) -> pl.DataFrame:
        check_namespace(namespace)
        with self._env.begin() as txn:
            return _get_frame(txn, self._dbs[namespace], keys)

    def scan(
        self, namespace: str, start: str = "", end: str | None = None, *, limit: int | None = None
    ) -> Iterator[tuple[str, bytes]]:
        """Keys in [start, end) in key order, with their values (one read transaction)."""
        check_namespace(namespace)
        with self._env.begin() as txn:
            yield from _scan(txn, self._dbs[namespace], start, end, limit)

    @contextmanager
    def reader(self) -> Iterator[LmdbReader]:
        """One read transaction for several reads: all of them see the store as of its start."""
        with self._env.begin() as txn:
            yield LmdbReader(txn, self._dbs)

    def stamps(self) -> dict[str, int]:
        with self._env.begin() as txn:
            return _stamps(txn, self._dbs["_meta"])

    def key_format(self) -> int:
        """How the store's keys are written (`transforms.state_keys.KEY_FORMAT` when by this release)."""
        with self._env.begin() as txn:
            return int(txn.get(FORMAT, db=self._dbs["_meta"]) or 1)

    def counts(self) -> dict[str, int]:
        with self._env.begin() as txn:
            return {name: txn.stat(self._dbs[name])["entries"] for name in NAMESPACES}

    def commit(self, number: int, changes: StateChanges, *, lane: str = "ingest") -> None:
        """Apply `changes` and stamp `lane` with `number`, in one transaction (all or nothing)."""
        if lane not in LANES:
            raise StateError(f"unknown lane {lane!r} (known: {', '.join(LANES)})")
        with self._env.begin(write=True) as txn:
            stamp_key = b"%s:%s" % (STAMPS, lane.encode())
            current = int(txn.get(stamp_key, db=self._dbs["_meta"]) or 0)
            if number < current:
                raise StateError(f"the store's {lane} stamp is {current}: commit {number} would go back")
            for namespace in changes.parts:  # in key order: neighbouring pages
                cursor, overwrite = txn.cursor(self._dbs[namespace]), namespace not in FIRST_PUT_WINS
                cursor.putmulti(changes.ordered_puts(namespace), overwrite=overwrite)
            for namespace, keys in changes.deletes.items():
                db = self._dbs[namespace]
                for key in sorted(keys):
                    txn.delete(key.encode(), db=db)
            for namespace, held in changes.deletes_if.items():  # only keys that still hold the value read
                db = self._dbs[namespace]
                for key in sorted(held):
                    found = txn.get(key.encode(), db=db)
                    if found is not None and unpack(bytes(found)) == held[key]:
                        txn.delete(key.encode(), db=db)
            txn.put(stamp_key, str(number).encode(), db=self._dbs["_meta"])
        release(Path(self._env.path()) / "data.mdb")  # the pages it touched leave this process's RSS (#17)

    def load(self, namespace: str, pairs: Iterable[tuple[str, bytes]]) -> int:
        """Put `pairs` in one transaction without stamping (a rebuild fills a new store this way)."""
        check_namespace(namespace)
        rows = sorted((store_key(k).encode(), pack_one(v)) for k, v in pairs)
        with self._env.begin(write=True, db=self._dbs[namespace]) as txn:
            _, added = txn.cursor().putmulti(rows)
        return int(added)

    def set_stamps(self, stamps: dict[str, int]) -> None:
        """Stamp every lane at once (the last step of a rebuild)."""
        with self._env.begin(write=True, db=self._dbs["_meta"]) as txn:
            for lane, number in stamps.items():
                txn.put(b"%s:%s" % (STAMPS, lane.encode()), str(number).encode())

    def size_bytes(self) -> int:
        info = self._env.info()
        return int(info["last_pgno"] + 1) * int(self._env.stat()["psize"])
