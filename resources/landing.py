"""The `landing` resource: the landing zone folder, what has landed in it, reading a landed file, and
`land`, the one way every producer (simulator, sandbox, erasure requests, the send stage, tests) puts a
file there (`LandingResource.land_messages` for messages a lakemail process makes itself)."""

from __future__ import annotations

import json
import logging
import os
import secrets
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg

from resources.folders import local_folder
from resources.landing_read import (
    KINDS,
    decode_landed,
    entry_problem,
    gunzip_bounded,
    read_bounded,
    read_opened,
    safe_name,
)

log = logging.getLogger(__name__)
# The files each landing folder takes (PRODUCT.md, "Landing zone"); any other name there is never parsed.
LANDING_SUFFIXES: dict[str, tuple[str, ...]] = {
    "events": (".ndjson", ".ndjson.gz"),
    "customers": (".ndjson", ".csv"),
    "catalog": (".ndjson", ".csv"),
    "erasure": (".json",),
}
OTHER_SUFFIXES = (".ndjson", ".ndjson.gz", ".csv")  # a folder of no producer's (erasure still blanks it)
DEFAULT_MAX_FILE_MB = 256  # decompressed bytes one landed file may hold (LAKEMAIL_MAX_FILE_MB)


def land(folder: Path, name: str, data: bytes, *, replace: bool = False) -> Path:
    """Put `data` in `folder/name` as producers must: under a temp name the ingest skips, fsynced, renamed
    into place, the folder fsynced; a reader sees the whole file or none of it, even after a crash.

    Raises ValueError for a name the ingest would skip, FileExistsError when the file has landed already
    (landed files are immutable: `replace` only to play a producer that breaks that rule).
    """
    if not name or name.startswith(".") or name.endswith(".tmp") or "/" in name:
        raise ValueError(f"not a landing file name: {name!r}")
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / name
    if final.exists() and not replace:
        raise FileExistsError(final)
    temp = folder / f".{name}.{os.getpid()}.tmp"
    try:
        with open(temp, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, final)
    finally:
        temp.unlink(missing_ok=True)
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)  # the rename itself survives a crash
    finally:
        os.close(descriptor)
    return final


@dataclass(frozen=True)
class LandedFile:
    """A file in the landing zone, by its path relative to the landing root (UTF-8: see `safe_name`).

    `problem` says why it is never read (not a regular file, a name that is not UTF-8, a type its folder
    does not take); size and times are those of the entry itself, never of what a link points to.

    `landed_at` is when the entry appeared in the zone, on this host's clock: its status-change time
    (ctime), which the rename (or link) that put it there sets and no producer can; a producer's clock,
    `cp -p` or `rsync -t` set the mtime, `modified_at`, to anything. So the mtime is never a time rule;
    with path and size it only tells one landing of a path from the next (erasure's rewrites keep it),
    while the ctime moves on any later chmod, link or rewrite: the ingest keeps the `landed_at` it first
    saw in `ingest_log` (`transforms.ingest.batch.arrivals`).
    """

    path: str
    size: int
    landed_at: datetime
    modified_at: datetime
    problem: str | None = None


def suffix_problem(path: str) -> str | None:
    """Why `path` is never parsed when its folder does not take files named so (None when it does)."""
    folder = path.split("/", 1)[0] if "/" in path else ""
    wanted = LANDING_SUFFIXES.get(folder, OTHER_SUFFIXES)
    if path.endswith(wanted):
        return None
    where = f"{folder}/" if folder in LANDING_SUFFIXES else "the landing zone"
    return f"unsupported landing file type: {where} takes {' or '.join(wanted)} files; never read"


def _landed(path: str, entry: os.stat_result) -> LandedFile:
    stored, bad_name = safe_name(path)
    landed_at = datetime.fromtimestamp(entry.st_ctime, tz=UTC)
    modified_at = datetime.fromtimestamp(entry.st_mtime, tz=UTC)
    problem = entry_problem(entry.st_mode) or bad_name or suffix_problem(path)
    return LandedFile(stored, entry.st_size, landed_at, modified_at, problem)


def _not_a_folder(mode: int) -> str:
    kind = KINDS.get(stat.S_IFMT(mode), "a regular file" if stat.S_ISREG(mode) else "a special file")
    return f"{kind}, not a folder: nothing is listed through it; never read"


def _temporary(name: str) -> bool:
    """A name writers use while a file (or a folder of them) is not finished: never read, never entered."""
    return name.startswith(".") or name.endswith(".tmp")


class LandingResource(dg.ConfigurableResource):
    """The landing zone folder (`LAKEMAIL_LANDING_URI`) and the per-file bound (`LAKEMAIL_MAX_FILE_MB`)."""

    uri: str
    max_file_mb: int = DEFAULT_MAX_FILE_MB

    @property
    def root(self) -> Path:
        """The landing folder (a local one: producers rename files into it)."""
        root = local_folder(self.uri)
        if root is None:
            raise ValueError(f"the landing zone must be a local folder, not {self.uri}")
        return root

    def list_files(self, folder: str = "events") -> list[LandedFile]:
        """Every finished entry under `folder` ("": the whole zone), sorted by path. Temp names (a leading
        `.` or a `.tmp` suffix) are skipped, folders included, before anything in them is listed; links
        are listed, not followed nor descended into, and non-regular entries carry their `problem`. A
        `folder` that is itself a link (or no folder) is that one entry, with its problem: nothing is
        listed through it."""
        if folder:
            try:
                top = os.lstat(self.root / folder)
            except (FileNotFoundError, NotADirectoryError):
                return []
            if not stat.S_ISDIR(top.st_mode):
                return [replace(_landed(folder, top), problem=f"{folder}/ is {_not_a_folder(top.st_mode)}")]
        found: list[LandedFile] = []
        pending = [folder]
        while pending:
            relative = pending.pop()
            try:
                entries = list(os.scandir(self.root / relative))
            except (FileNotFoundError, NotADirectoryError):
                continue
            except OSError as error:  # an unreadable folder never stops the listing of the others
                log.warning("landing folder %s cannot be listed: %s", safe_name(relative)[0], error.strerror)
                continue
            for entry in entries:
                if _temporary(entry.name):
                    continue
                try:
                    child = f"{relative}/{entry.name}" if relative else entry.name
                    if entry.is_dir(follow_symlinks=False):
                        pending.append(child)
                    else:
                        found.append(_landed(child, entry.stat(follow_symlinks=False)))
                except FileNotFoundError:  # removed between listing and stat
                    continue
        return sorted(found, key=lambda f: f.path)

    def land(self, path: str, data: bytes, *, replace: bool = False) -> Path:
        """`land` `data` at `path` under the landing root (e.g. `events/a.ndjson`)."""
        folder, _, name = path.rpartition("/")
        return land(self.root / folder, name, data, replace=replace)

    def land_messages(self, prefix: str, messages: Sequence[Mapping[str, Any]], at: datetime) -> Path:
        """Land messages a lakemail process made itself (an unsubscribe, a provider's refusal) as one new
        NDJSON file in `events/` (the ingest takes their landing time as their `receivedAt`), named
        `<prefix>-<UTC time of at>-<random>.ndjson`, so it never meets another file's name."""
        lines = [json.dumps(message, separators=(",", ":")) + "\n" for message in messages]
        name = f"{prefix}-{at.astimezone(UTC):%Y%m%dT%H%M%S%fZ}-{secrets.token_hex(4)}.ndjson"
        return self.land(f"events/{name}", "".join(lines).encode())

    def stat(self, path: str) -> LandedFile | None:
        """The entry at `path` (not followed if a link), or None when there is none inside the zone."""
        if not path or path.startswith("/") or ".." in path.split("/"):
            return None
        try:
            entry = os.lstat(self.root / path)
        except (FileNotFoundError, NotADirectoryError):
            return None
        return _landed(path, entry)

    def read(self, path: str) -> tuple[bytes, bytes]:
        """The file's bytes as landed and its content (gunzipped for `.gz`), each at most the bound.

        Raises ValueError for a file type its folder does not take (`LANDING_SUFFIXES`), NotLandingFile
        for an entry that is not a regular file inside the zone, FileTooLarge past `max_file_mb`, OSError
        or gzip errors for a file that cannot be read.
        """
        if (problem := suffix_problem(path)) is not None:
            raise ValueError(problem)
        limit = self.max_file_mb * 1024 * 1024
        landed = read_bounded(self.root, path, limit)
        return landed, gunzip_bounded(landed, limit) if path.endswith(".gz") else landed

    def read_entry(self, path: str, limit: int | None = None) -> tuple[bytes, os.stat_result]:
        """The bytes of the regular file `path` in the zone whatever its name, and its `fstat`: for readers
        that must see files the ingest does not take (erasure). As `read`, never through a link nor from a
        FIFO or device (NotLandingFile), at most `limit` bytes (default the per-file bound; FileTooLarge)."""
        return read_opened(self.root, path, self.max_file_mb * 1024 * 1024 if limit is None else limit)

    def read_decoded(self, path: str) -> tuple[bytes, bytes, bool]:
        """The bytes of the regular file `path` in the zone whatever its name or folder (`read_entry`), its
        content by its own encoding and whether that is gzip (`decode_landed`; each at most the bound): for
        erasure, which must see every landed byte, decompressed, taken by the ingest or not."""
        limit = self.max_file_mb * 1024 * 1024
        landed = self.read_entry(path, limit)[0]
        return landed, *decode_landed(landed, limit)
