"""The processes `lakemail up` starts: each in its own process group, dying with the supervisor."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

PR_SET_PDEATHSIG = 1  # linux/prctl.h
# A child that dies this often this fast is broken, not unlucky: `lakemail up` stops, naming it.
MAX_DEATHS, DEATH_WINDOW_S = 3, 60.0


def _prctl() -> Callable[..., int] | None:
    try:
        prctl: Callable[..., int] = ctypes.CDLL(None, use_errno=True).prctl
        return prctl
    except (OSError, AttributeError):  # not Linux: children then die only by the reaper
        return None


# Looked up once here, not between fork and exec: the child only calls it (no import, no dlopen).
PRCTL = _prctl()


def _die_with(parent: int) -> Callable[[], None]:
    """preexec_fn: SIGKILL this child when `parent` dies (and at once if it already has)."""

    def setup() -> None:
        if PRCTL is not None:
            PRCTL(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the parent died between fork and prctl
            os.kill(os.getpid(), signal.SIGKILL)

    return setup


@dataclass
class Child:
    """A started process, in its own process group so that its own children stop with it."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log_dir: Path
    cwd: Path
    process: subprocess.Popen[bytes] = field(init=False)
    deaths: deque[float] = field(default_factory=lambda: deque(maxlen=MAX_DEATHS))

    def __post_init__(self) -> None:
        self.process = self._popen()

    def _popen(self) -> subprocess.Popen[bytes]:
        with (self.log_dir / f"{self.name}.log").open("ab") as log:
            return subprocess.Popen(
                self.argv,
                cwd=self.cwd,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with(os.getpid()),  # only prctl and getppid: safe after fork
            )

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Signal the child's process group (a Dagster process's code servers and run workers too)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, sig)

    def restart(self, now: float) -> bool:
        """Start it again after it died; False (and not started) when it keeps dying."""
        self.deaths.append(now)
        if keeps_dying(self.deaths):
            return False
        self.process = self._popen()
        return True


def keeps_dying(deaths: deque[float]) -> bool:
    """Whether the last MAX_DEATHS deaths (monotonic seconds) all fell within DEATH_WINDOW_S."""
    return len(deaths) >= MAX_DEATHS and deaths[-1] - deaths[-MAX_DEATHS] < DEATH_WINDOW_S


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop_all(children: list[Child], grace_seconds: float = 15.0, group_grace_seconds: float = 3.0) -> None:
    """SIGTERM every child group; SIGKILL a child still running after `grace_seconds`, and what is
    left of its group `group_grace_seconds` after it exited (a Dagster code server, in its parent's
    group, otherwise lingers ~20 s after SIGTERM; a run worker gets those seconds to record its end).
    """
    for child in children:
        child.stop(signal.SIGTERM)
    deadline = time.monotonic() + grace_seconds
    for child in children:
        try:
            child.process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.stop(signal.SIGKILL)
            child.process.wait()
    deadline = time.monotonic() + group_grace_seconds
    while any(_group_alive(c.process.pid) for c in children) and time.monotonic() < deadline:
        time.sleep(0.1)
    for child in children:
        child.stop(signal.SIGKILL)
