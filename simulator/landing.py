"""The simulator's files: written atomically into the landing zone, named per run, and counted."""

from __future__ import annotations

import gzip as gzip_lib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from resources.landing import land
from simulator.dirt import MALFORMED_REASONS
from simulator.reference import ReferenceFile
from simulator.segment import SimLine

log = logging.getLogger(__name__)


@dataclass
class SimulationReport:
    """What a run landed: event files, lines by kind, malformed lines by reason, distinct ok message ids.

    Reference files (`customers/`, `catalog/`) are listed apart, so that `files` and the line counts
    stay about events.
    """

    files: list[Path] = field(default_factory=list)
    reference_files: list[Path] = field(default_factory=list)
    reference_rows: dict[str, int] = field(default_factory=lambda: dict.fromkeys(("customers", "catalog"), 0))
    lines: dict[str, int] = field(default_factory=lambda: dict.fromkeys(("ok", "duplicate", "malformed"), 0))
    malformed: dict[str, int] = field(default_factory=lambda: dict.fromkeys(MALFORMED_REASONS, 0))
    distinct_ok_ids: int = 0
    posted: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(("batches", "messages", "refused"), 0)
    )
    interrupted: bool = False  # ended by `stop` or Ctrl-C before the planned number of lines

    @property
    def total_lines(self) -> int:
        """All lines written, whatever their kind."""
        return sum(self.lines.values())

    def record(self, path: Path | None, lines: Sequence[SimLine]) -> None:
        """Count one landed file (None: lines sent through the collector)."""
        if path is not None:
            self.files.append(path)
        for line in lines:
            self.lines[line.kind] += 1
            if line.reason is not None:
                self.malformed[line.reason] += 1
        # Every ok line carries a fresh 128-bit random messageId and every repeat is a `duplicate`, so
        # distinct ok ids == ok lines; keeping a set of a million ids would cost ~100 MB for nothing.
        self.distinct_ok_ids = self.lines["ok"]


def write_landing_file(folder: Path, name: str, lines: Sequence[bytes], *, gzip: bool = False) -> Path:
    """Land `lines` (newline after each) atomically as `folder/name` (+ `.gz` when gzip); never overwrites."""
    if gzip and not name.endswith(".gz"):
        name += ".gz"
    payload = b"\n".join(lines) + b"\n" if lines else b""
    if gzip:
        payload = gzip_lib.compress(payload, compresslevel=6, mtime=0)
    return land(folder, name, payload)


class Lander:
    """Names, writes and counts the files of one run (`on_file` hears of event files only)."""

    def __init__(self, landing: Path, seed: int, on_file: Callable[[Path, int], None] | None) -> None:
        self.landing = landing
        self.folder = landing / "events"
        runstamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")  # unique per run, sorts by start time
        self.prefix = f"sim-{seed}-{runstamp}"
        self.report = SimulationReport()
        self.reference_numbers: dict[str, int] = {}  # files landed so far, per folder
        self.on_file = on_file

    def land(self, lines: list[SimLine]) -> None:
        """Write `lines` as the run's next file and empty the list (nothing when it is empty)."""
        if not lines:
            return
        name = f"{self.prefix}-{len(self.report.files) + 1:06d}.ndjson"
        path = write_landing_file(self.folder, name, [line.data for line in lines])
        landed = lines[:]
        lines.clear()  # at once: a Ctrl-C from here on must not land these lines a second time
        self.report.record(path, landed)
        log.debug("landed %s with %s lines", path.name, len(landed))
        if self.on_file is not None:
            self.on_file(path, len(landed))

    def close(self) -> None:
        """Let go of what the run held (nothing for files)."""

    def land_reference(self, files: list[ReferenceFile]) -> None:
        """Write the simulator's due customers / catalog files, numbered per folder."""
        for file in files:
            self.reference_numbers[file.folder] = number = self.reference_numbers.get(file.folder, 0) + 1
            name = f"{self.prefix}-{number:06d}{file.suffix}"
            path = land(self.landing / file.folder, name, file.data)
            self.report.reference_files.append(path)
            self.report.reference_rows[file.folder] += file.rows
            log.debug("landed %s with %s rows", path.name, file.rows)
