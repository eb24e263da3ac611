"""Processes a test starts: the ports they listen on, waits that fail as soon as one has died (with the
tail of its log), and stopping a process with everything it started.

A port found free by binding port 0 and closing it stays free only until someone else binds it: another
xdist worker's server, a code server, any process's bind(0). A child that binds it seconds later (the
time it takes to import lakemail) then fails to start, and a wait on it used to run to its end (CI,
2026-12-05: "not within 180 s: lakemail-collector's /metrics", the collector gone at once with "Address
already in use"). So a child that can bind port 0 itself does and says which port it got
(`Child.port`: `lakemail serve` logs "serving on URL", Prometheus "Listening on"); one that must be
told a number (a runner restarted where Prometheus scrapes it, `lakemail up`'s parts, PostgreSQL) gets
a reserved one (`reserve_port`).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import httpx

ROOT = Path(__file__).resolve().parents[1]
SERVING = re.compile(r"serving on http://127\.0\.0\.1:(\d+)")  # `lakemail serve ... --port 0`
PROMETHEUS_LISTENING = re.compile(r'msg="Listening on" address=127\.0\.0\.1:(\d+)')  # :0 resolved
NOT_YET = (httpx.HTTPError, OSError)  # what a condition raises while a server is not up yet
T = TypeVar("T")


def reserve_port(port: int = 0) -> int:
    """A port for a child that must be told its number (`port`, or any free one): left in TIME_WAIT by a
    connection this side closed first. For as long (60 s) the kernel hands it to no bind(0), while a
    server binding it with SO_REUSEADDR (uvicorn, http.server, Go's net, PostgreSQL) gets it. OSError
    when `port` is in use."""
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen(1)
        port = int(listener.getsockname()[1])
        with socket.create_connection(("127.0.0.1", port)):
            accepted, _ = listener.accept()
            accepted.close()  # before the client: the TIME_WAIT is this side's, on `port`
    return port


def log_tail(log: Path, lines: int = 30) -> str:
    """The last `lines` lines of a child's log, for a failure message."""
    try:
        text = log.read_text(errors="replace")
    except OSError as error:
        return f"(no log: {error})"
    return "\n".join(text.splitlines()[-lines:]) or "(empty log)"


@dataclass
class Child:
    """A process a test starts (`lakemail ...`, Prometheus), its stdout and stderr in `log`."""

    argv: list[str]
    env: dict[str, str]
    log: Path
    cwd: Path = ROOT
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)
    stopped: bool = field(default=False, init=False)  # by the test: its exit is no failure
    logged_before: int = field(default=0, init=False)  # the log's size when it last started

    @property
    def name(self) -> str:
        return self.log.stem

    @property
    def popen(self) -> subprocess.Popen[bytes]:
        assert self.process is not None, f"{self.name} was never started"
        return self.process

    def start(self) -> Child:
        self.logged_before = self.log.stat().st_size if self.log.exists() else 0
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                self.argv, cwd=self.cwd, env=self.env, stdout=out, stderr=subprocess.STDOUT
            )
        self.stopped = False
        return self

    def died(self) -> str | None:
        """Why this child is no longer running when nobody stopped it (its exit code and log), else None."""
        if self.process is None or self.stopped or (code := self.process.poll()) is None:
            return None
        return f"{self.name} exited with {code}; the end of {self.log}:\n{log_tail(self.log)}"

    def port(self, pattern: re.Pattern[str], timeout: float) -> int:
        """The port this child says it listens on (`pattern`'s group in its log), once it says so."""

        def said() -> int | None:
            with self.log.open("rb") as log:
                log.seek(self.logged_before)  # what this start logged
                found = pattern.search(log.read().decode(errors="replace"))
            return int(found.group(1)) if found else None

        return wait_for(said, timeout, f"{self.name} to say its port", [self])

    def stop(self) -> None:
        self.stopped = True
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def wait_for(
    condition: Callable[[], T | None], timeout: float, what: str, watched: Iterable[Child] = ()
) -> T:
    """`condition()` once it is truthy, polled every 0.2 s. Fails at once when a `watched` child has died,
    and after `timeout` s; either way the message ends with the tails of the watched children's logs."""
    children = list(watched)
    deadline = time.monotonic() + timeout
    while True:
        for child in children:
            if reason := child.died():
                raise AssertionError(f"{what}: {reason}")
        try:
            found = condition()
        except NOT_YET:
            found = None
        if found:
            return found
        if time.monotonic() >= deadline:
            tails = "".join(f"\nthe end of {c.log}:\n{log_tail(c.log)}" for c in children)
            raise AssertionError(f"not within {timeout} s: {what}{tails}")
        time.sleep(0.2)


def session_of(pid: int) -> int | None:
    """The session id of process `pid` (None when it is gone or a zombie)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rpartition(")")[2].split()  # after the command name, which may hold spaces
    return None if fields[0] == "Z" else int(fields[3])


def _command_line(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return None


def in_session(session: int) -> dict[int, str]:
    """The live processes (not zombies) of `session`: pid -> command line."""
    pids = [int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit()]
    found = {pid: _command_line(pid) for pid in pids if session_of(pid) == session}
    return {pid: line for pid, line in found.items() if line is not None}


def with_environment(entry: str) -> dict[int, str]:
    """The live processes (not zombies) started with `entry` ("NAME=value") in their environment."""
    found = {}
    for folder in Path("/proc").iterdir():
        if not folder.name.isdigit() or int(folder.name) == os.getpid():
            continue
        try:
            started_with = entry.encode() in (folder / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        line = _command_line(int(folder.name)) if started_with else None
        if line is not None and session_of(int(folder.name)) is not None:
            found[int(folder.name)] = line
    return found


def stop_session(leader: subprocess.Popen[bytes], grace: float = 30, marker: str = "") -> dict[int, str]:
    """Stop `leader`, started with start_new_session=True, and every process of its session (and, when
    `marker` is given, of that environment entry, in case one left the session): SIGTERM to its process
    group, up to `grace` s for all of them to end, then SIGKILL to whatever is left. Returns what had to
    be killed (pid -> command line).

    A `dagster api grpc` code server stopped while a run worker of it runs waits for the run, then asks
    the instance about it; when the test's PostgreSQL database is gone by then, that fails in its
    cleanup thread and the server waits forever: its --heartbeat only starts the same wait."""

    def members() -> dict[int, str]:
        return in_session(leader.pid) | (with_environment(marker) if marker else {})

    with contextlib.suppress(ProcessLookupError):
        os.killpg(leader.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while (leader.poll() is None or members()) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = members()
    for pid in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    leader.wait(10)
    deadline = time.monotonic() + 10
    while (survivors := members()) and time.monotonic() < deadline:
        time.sleep(0.1)  # a killed process is gone once it is a zombie
    assert not survivors, f"still running after SIGKILL: {survivors}"
    return left
