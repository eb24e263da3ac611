"""The soak's kills: which process of `lakemail up` plays each part, SIGKILL it, and how long the
landed backlog then takes to drain (every file that landed DRAIN_SLACK_S before is committed)."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from benchmarks.common import ingest_log, landed_files
from orchestration.homelock import marked

# The kinds, in the order they come round; each kill waits for the previous drain.
KINDS = ("runner", "daemon", "webserver", "sandbox", "code_server", "supervisor")
DRAIN_SLACK_S = 10.0  # a file younger than this is not backlog yet (the runner takes one in ~1-3 s)
DRAIN_LIMIT_S = 180.0  # how long the soak measures a drain before it calls it stalled


@dataclass
class Kill:
    kind: str
    at_s: float  # seconds since the soak started
    pid: int | None  # None: no process of that kind was found
    drain_s: float | None = None  # None: not drained within DRAIN_LIMIT_S


def _cmdline(pid: int) -> str:
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _parent(pid: int) -> int:
    try:
        return int((Path("/proc") / str(pid) / "stat").read_text().rpartition(")")[2].split()[1])
    except (OSError, IndexError, ValueError):
        return 0


MATCH = {
    "runner": " runner",
    "daemon": "dagster-daemon",
    "webserver": "dagster-webserver",
    "sandbox": "serve sandbox",
}


def target(kind: str, home: Path, supervisor: int) -> int | None:
    """The pid playing `kind` under `supervisor` (for code servers, the oldest of them)."""
    if kind == "supervisor":
        return supervisor
    ours = sorted(marked(home, supervisor))
    if kind == "code_server":
        servers = [pid for pid in ours if "api grpc" in _cmdline(pid)]
        return servers[0] if servers else None
    found = [pid for pid in ours if _parent(pid) == supervisor and MATCH[kind] in _cmdline(pid)]
    return found[0] if found else None


def find_target(kind: str, home: Path, supervisor: int, timeout: float = 60.0) -> int | None:
    """Wait (bounded) for a process of `kind`: a part just restarted may not have started it yet."""
    deadline = time.monotonic() + timeout
    while True:
        pid = target(kind, home, supervisor)
        if pid is not None or time.monotonic() > deadline:
            return pid
        time.sleep(1)


def sigkill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def drained(home: Path, now: float, slack: float = DRAIN_SLACK_S) -> bool:
    """Whether every event file that landed `slack` s before `now` (epoch s) has an ingest_log row."""
    old = {f"events/{p.name}" for p in landed_files(home) if _mtime(p) <= now - slack}
    if not old:
        return True
    return not old - set(ingest_log(home)["source_file"].to_list())


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return float("inf")


def wait_drained(home: Path, killed_at: float, tick: Callable[[], None]) -> float | None:
    """Seconds from the kill (epoch s) until the backlog drained; at least DRAIN_SLACK_S by construction,
    since only then have files landed after the kill come of age. None after DRAIN_LIMIT_S. `tick`
    runs every second meanwhile (the soak's faults stay on schedule)."""
    while time.time() < killed_at + DRAIN_LIMIT_S:
        now = time.time()
        if now >= killed_at + DRAIN_SLACK_S:
            try:
                if drained(home, now):
                    return round(now - killed_at, 1)
            except Exception:  # a table mid-commit: look again
                pass
        tick()
        time.sleep(1)
    return None
