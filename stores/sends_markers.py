"""Durable attempt markers: right before a row's HTTP call an empty file named by its send_id is made
durable; `stores.sends` removes it once the row's new status is committed. A row found `pending` with a
marker was interrupted after (perhaps during) its call."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from resources.lake import LakeResource

ATTEMPTS_FOLDER = "_outbox_attempts"


class AttemptMarkers:
    """Durable "an HTTP call for this send may have started" markers, on the machine that sends."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    @classmethod
    def for_lake(cls, lake: LakeResource) -> AttemptMarkers:
        """Next to a local lake; for an object-store lake, in this machine's temp folder (one sender)."""
        if lake.root is not None:
            return cls(lake.root / ATTEMPTS_FOLDER)
        digest = hashlib.sha256(lake.uri.encode()).hexdigest()[:16]
        return cls(Path(tempfile.gettempdir()) / f"lakemail{ATTEMPTS_FOLDER}-{digest}")

    def mark(self, send_id: str) -> None:
        fd = os.open(self.folder / send_id, os.O_CREAT | os.O_WRONLY, 0o600)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def marked(self, send_id: str) -> bool:
        return (self.folder / send_id).exists()

    def clear(self, send_ids: list[str]) -> None:
        for send_id in send_ids:
            (self.folder / send_id).unlink(missing_ok=True)
