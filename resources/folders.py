"""The one place a lake or landing URI becomes a folder on this machine."""

from __future__ import annotations

from pathlib import Path


def local_folder(uri: str) -> Path | None:
    """The folder of a local URI (a path or `file://...`); None for an object store (`s3://...`).

    What reads the filesystem itself (the writer lock, the runner's heartbeat, listing the lake's tables,
    measuring data files, rewriting Delta log files, the landing zone) works on local folders only.
    """
    if "://" in uri and not uri.startswith("file://"):
        return None
    return Path(uri.removeprefix("file://"))
