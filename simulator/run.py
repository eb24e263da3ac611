"""The shopper simulator's I/O side: paces `ShopperSimulator`, lands its events and its reference files."""

from __future__ import annotations

import gzip as gzip_lib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from resources.landing import land
from simulator.shoppers import MALFORMED_REASONS, Dirt, ReferenceFile, ShopperSimulator, SimLine

log = logging.getLogger(__name__)

TICK_SECONDS = 0.05  # how often realtime mode catches up with the wall clock


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
    interrupted: bool = False  # ended by `stop` or Ctrl-C before the planned number of lines

    @property
    def total_lines(self) -> int:
        """All lines written, whatever their kind."""
        return sum(self.lines.values())

    def record(self, path: Path, lines: Sequence[SimLine]) -> None:
        """Count one landed file."""
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


class _Lander:
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

    def land_reference(self, files: list[ReferenceFile]) -> None:
        """Write the simulator's due customers / catalog files, numbered per folder."""
        for file in files:
            self.reference_numbers[file.folder] = number = self.reference_numbers.get(file.folder, 0) + 1
            name = f"{self.prefix}-{number:06d}{file.suffix}"
            path = land(self.landing / file.folder, name, file.data)
            self.report.reference_files.append(path)
            self.report.reference_rows[file.folder] += file.rows
            log.debug("landed %s with %s rows", path.name, file.rows)


def run_simulation(
    landing: Path,
    *,
    users: int,
    rate: float,
    duration: float,
    seed: int = 0,
    rotate_seconds: float = 1.0,
    rotate_events: int = 5000,
    realtime: bool = True,
    start: datetime | None = None,
    dirt: Dirt | None = None,
    stop: threading.Event | None = None,
    on_file: Callable[[Path, int], None] | None = None,
) -> SimulationReport:
    """Land `rate * duration` simulated shopper lines in `landing/events/`, paced by the wall clock or not.

    The catalog and the CRM members land first (`catalog/`, `customers/`), then catalog updates and CRM
    changes whenever they fall due on the simulated clock, before the events that see them.
    """
    if rate <= 0 or duration < 0 or rotate_seconds <= 0 or rotate_events < 1:
        raise ValueError("rate and rotate_seconds must be > 0, duration >= 0, rotate_events >= 1")
    if realtime and start is not None:
        raise ValueError("start applies to realtime=False only: realtime timestamps are the wall clock")
    begin = start if start is not None else datetime.now(UTC)
    sim = ShopperSimulator(users=users, seed=seed, start=begin, dirt=dirt)
    lander = _Lander(landing, seed, on_file)
    lander.land_reference(sim.reference_files())
    total, stop = round(rate * duration), stop if stop is not None else threading.Event()
    try:
        if realtime:
            rotate = (rotate_seconds, rotate_events)
            _run_realtime(sim, lander, total=total, rate=rate, begin=begin, stop=stop, rotate=rotate)
        else:
            per_file = max(1, min(rotate_events, round(rate * rotate_seconds)))
            _run_simulated(sim, lander, total=total, rate=rate, begin=begin, stop=stop, per_file=per_file)
    except KeyboardInterrupt:
        lander.report.interrupted = True
    report = lander.report
    report.interrupted = report.interrupted or report.total_lines < total
    log.info("simulation landed %s files, lines by kind %s", len(report.files), report.lines)
    return report


def _run_simulated(
    sim: ShopperSimulator,
    lander: _Lander,
    *,
    total: int,
    rate: float,
    begin: datetime,
    stop: threading.Event,
    per_file: int,
) -> None:
    """As fast as possible on a simulated clock: each file covers `per_file / rate` simulated seconds."""
    emitted = 0
    while emitted < total and not stop.is_set():
        n = min(per_file, total - emitted)
        emitted += n
        lander.land_reference(sim.reference_files())
        lander.land(sim.step(begin + timedelta(seconds=emitted / rate), n))


def _run_realtime(
    sim: ShopperSimulator,
    lander: _Lander,
    *,
    total: int,
    rate: float,
    begin: datetime,
    stop: threading.Event,
    rotate: tuple[float, int],
) -> None:
    """Keep up with `rate` lines per wall-clock second; a file closes every `rotate` (seconds, lines)."""
    rotate_seconds, rotate_events = rotate
    started = last_file = time.monotonic()
    buffer: list[SimLine] = []
    emitted = 0
    try:
        while emitted < total and not stop.is_set():
            elapsed = time.monotonic() - started
            now = begin + timedelta(seconds=elapsed)  # monotonic, so the simulated clock never goes back
            due = min(total, int(rate * elapsed)) - emitted
            while due > 0:
                n = min(due, rotate_events - len(buffer))
                lander.land_reference(sim.reference_files())
                buffer += sim.step(now, n)
                emitted, due = emitted + n, due - n
                if len(buffer) >= rotate_events:
                    lander.land(buffer)
                    last_file = time.monotonic()
            if buffer and time.monotonic() - last_file >= rotate_seconds:
                lander.land(buffer)
                last_file = time.monotonic()
            stop.wait(min(TICK_SECONDS, rotate_seconds))
    except KeyboardInterrupt:
        lander.report.interrupted = True
    lander.land(buffer)  # finish the current file, also on stop or Ctrl-C
