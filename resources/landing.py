"""The `landing` resource: the landing zone folder, what has landed in it, reading a landed file, and
`land`, the one way every producer (simulator, sandbox, erasure requests, tests) puts a file there."""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg

from resources.folders import local_folder

LANDING_SUFFIXES = (".ndjson", ".ndjson.gz", ".csv")


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
    """A file in the landing zone, by its path relative to the landing root."""

    path: str
    size: int
    landed_at: datetime


class LandingResource(dg.ConfigurableResource):
    """The landing zone folder (`LAKEMAIL_LANDING_URI`)."""

    uri: str

    @property
    def root(self) -> Path:
        """The landing folder (a local one: producers rename files into it)."""
        root = local_folder(self.uri)
        if root is None:
            raise ValueError(f"the landing zone must be a local folder, not {self.uri}")
        return root

    def list_files(self, folder: str = "events") -> list[LandedFile]:
        """Every finished file under `folder` (temp names skipped), sorted by path."""
        base = self.root / folder
        found: list[LandedFile] = []
        for directory, subdirs, names in os.walk(base):
            subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
            for name in names:
                if name.startswith(".") or name.endswith(".tmp"):
                    continue
                full = Path(directory, name)
                try:
                    stat = full.stat()
                except FileNotFoundError:  # removed between listing and stat
                    continue
                landed_at = datetime.fromtimestamp(stat.st_mtime, tz=UTC)
                found.append(LandedFile(full.relative_to(self.root).as_posix(), stat.st_size, landed_at))
        return sorted(found, key=lambda f: f.path)

    def land(self, path: str, data: bytes, *, replace: bool = False) -> Path:
        """`land` `data` at `path` under the landing root (e.g. `events/a.ndjson`)."""
        folder, _, name = path.rpartition("/")
        return land(self.root / folder, name, data, replace=replace)

    def stat(self, path: str) -> LandedFile | None:
        full = self.root / path
        try:
            stat = full.stat()
        except FileNotFoundError:
            return None
        return LandedFile(path, stat.st_size, datetime.fromtimestamp(stat.st_mtime, tz=UTC))

    def read(self, path: str) -> tuple[bytes, bytes]:
        """The file's bytes as landed and its content (gunzipped for `.gz`).

        Raises ValueError for a file type the landing zone does not take, OSError or gzip errors for a
        file that cannot be read.
        """
        if not path.endswith(LANDING_SUFFIXES):
            raise ValueError(f"unsupported landing file type (want {' or '.join(LANDING_SUFFIXES)})")
        landed = (self.root / path).read_bytes()
        return landed, gzip.decompress(landed) if path.endswith(".gz") else landed
