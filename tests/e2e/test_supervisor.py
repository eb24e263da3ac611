"""`lakemail up` (headless, the daemon and the sandbox): one per home, nothing outlives it (#13)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.conftest import storage_env
from tests.processes import Child, reserve_port, wait_for

ROOT = Path(__file__).resolve().parents[2]


def processes_of(home: Path) -> dict[int, str]:
    """Live processes (not zombies) whose environment says LAKEMAIL_HOME=home: pid -> command line."""
    found = {}
    for entry in Path("/proc").iterdir():
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rpartition(")")[2].split()[0]
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, ValueError):
            continue
        if f"LAKEMAIL_HOME={home}".encode() in environ and state != "Z":
            found[int(entry.name)] = cmdline
    return found


def code_server_of(home: Path) -> bool:
    return any("api grpc" in cmd for cmd in processes_of(home).values())


def test_one_up_per_home_and_nothing_outlives_a_killed_or_stopped_supervisor(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAKEMAIL_")}
    env |= {"LAKEMAIL_HOME": str(home), "PYTHONPATH": str(ROOT), **storage_env()}
    up = [sys.executable, "-m", "orchestration.cli", "up", "--no-webserver", "--no-runner", "--no-simulator"]
    # Told their ports, its parts bind them seconds later: reserved, no other process is given them.
    sandbox, collector = reserve_port(), reserve_port()
    argv = [*up, "--sandbox-port", str(sandbox), "--collector-port", str(collector)]
    up_first = Child(argv, env, tmp_path / "first.log")
    first = up_first.start().popen
    try:
        wait_for(lambda: code_server_of(home), 120, "the daemon's code server", [up_first])
        before = set(processes_of(home))
        second = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
        assert second.returncode == 1
        assert f"{home} is in use by lakemail up (pid {first.pid})" in second.stderr
        running = processes_of(home)
        assert set(running) == before  # the second started nothing (no timed assert: CI may be loaded)
        assert len(running) >= 4  # reaper, daemon, sandbox, code server
        first.kill()  # SIGKILL: no chance to stop anything itself
        first.wait()
        wait_for(lambda: not set(running) & set(processes_of(home)), 5, "the killed supervisor's processes")
    finally:
        first.kill()
    reserve_port(sandbox), reserve_port(collector)  # again, for the next `up`'s parts
    up_third = Child(argv, env, tmp_path / "third.log")
    third = up_third.start().popen
    try:
        wait_for(lambda: code_server_of(home), 120, "the new daemon's code server", [up_third])
        third.send_signal(signal.SIGINT)  # Ctrl-C
        assert third.wait(timeout=40) == 0
        assert processes_of(home) == {}  # the code server too, not ~20 s later
    finally:
        third.kill()
