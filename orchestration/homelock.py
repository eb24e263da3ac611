"""One `lakemail up` per LAKEMAIL_HOME, and nothing of it left running once it is gone (Linux).

- The lock: `flock` on `$LAKEMAIL_HOME/.lakemail-up.lock`, held for the supervisor's life and released
  by the kernel when it dies, however it dies. A second `lakemail up` on the home fails at once,
  naming the pid that holds it.
- The mark: every process `lakemail up` starts carries `LAKEMAIL_SUPERVISOR_PID` in its environment,
  and so do their own children (Dagster's code servers and run workers inherit it). Whoever holds
  the lock may stop any marked process of its home: no other `lakemail up` of that home is alive.
- The reaper: a small process that waits for its supervisor's pipe to close (the kernel closes it
  when the supervisor dies, SIGKILL included) and then kills what that supervisor marked.

    python -m orchestration.homelock reap HOME SUPERVISOR_PID   (stdin: the supervisor's pipe)

Only the standard library here: the reaper starts in a few milliseconds.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import sys
import time
from pathlib import Path
from typing import IO

LOCK_NAME = ".lakemail-up.lock"
MARK = "LAKEMAIL_SUPERVISOR_PID"
PROC = Path("/proc")


class HomeInUse(RuntimeError):
    """Another `lakemail up` holds the home; `pid` is the one written in the lock file (None if unread)."""

    def __init__(self, home: Path, pid: int | None) -> None:
        holder = f"lakemail up (pid {pid})" if pid else "another lakemail up"
        super().__init__(
            f"{home} is in use by {holder}; stop that one first (Ctrl-C in its terminal"
            + (f", or kill {pid}" if pid else "")
            + "), or set LAKEMAIL_HOME to another folder"
        )
        self.pid = pid


def acquire(home: Path) -> IO[str]:
    """Lock `home` for this process (keep the handle open for its life); HomeInUse if it is held."""
    home.mkdir(parents=True, exist_ok=True)
    handle = open(home / LOCK_NAME, "a+")  # noqa: SIM115 - held open until the process ends
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        text = handle.read().strip()
        handle.close()
        raise HomeInUse(home, int(text) if text.isdigit() else None) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle


def _environ(pid: int) -> dict[str, str]:
    """Another process's environment as it was started (empty if it is gone or not ours to read)."""
    try:
        raw = (PROC / str(pid) / "environ").read_bytes()
    except OSError:
        return {}
    pairs = (item.partition(b"=") for item in raw.split(b"\0") if item)
    return {k.decode(errors="replace"): v.decode(errors="replace") for k, _, v in pairs}


def marked(home: Path, supervisor: int | None = None) -> list[int]:
    """Processes started (directly or not) by a `lakemail up` of `home`; by `supervisor` when given."""
    found = []
    for entry in PROC.iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        env = _environ(int(entry.name))
        if MARK not in env or env.get("LAKEMAIL_HOME") != str(home):
            continue
        if supervisor is None or env[MARK] == str(supervisor):
            found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    """Running (a zombie, dead but not yet reaped by its parent, counts as gone)."""
    try:
        stat = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def sweep(home: Path, supervisor: int | None = None, *, grace: float = 0.0, timeout: float = 10.0) -> int:
    """Give marked processes `grace` s to exit, SIGKILL the rest and wait for them; how many were killed."""
    deadline = time.monotonic() + grace
    pids = marked(home, supervisor)
    while pids and time.monotonic() < deadline:
        time.sleep(0.1)
        pids = [p for p in pids if _alive(p)]
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    return len(pids)


def reap(home: Path, supervisor: int) -> int:
    """Wait for the supervisor's pipe (stdin) to close, then kill what it marked."""
    for sig in (signal.SIGINT, signal.SIGHUP):  # Ctrl-C and a closed terminal are the supervisor's to handle
        signal.signal(sig, signal.SIG_IGN)
    while sys.stdin.buffer.read(4096):
        pass
    killed = sweep(home, supervisor)
    if killed:
        print(f"lakemail up (pid {supervisor}) is gone: stopped {killed} of its processes", file=sys.stderr)
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] != "reap":
        sys.exit(f"usage: python -m {__spec__.name if __spec__ else 'orchestration.homelock'} reap HOME PID")
    sys.exit(reap(Path(sys.argv[2]), int(sys.argv[3])))
