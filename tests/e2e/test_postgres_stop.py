"""`python -m tests.postgres CMD` (what `make test` runs under) stops its server when it is itself
stopped: a killed CI run must not leave a PostgreSQL cluster running and its folder in /tmp."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_a_stopped_wrapper_stops_its_server_and_removes_its_folder(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "tests.postgres", "sleep", "300"]
    with subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True) as wrapper:
        assert wrapper.stdout is not None
        ready = wrapper.stdout.readline()  # "PostgreSQL ready in ... s: ...=<url>"
        assert "PostgreSQL ready" in ready
        port = ready.rsplit(":", 1)[1].split("/")[0]
        folders = [p for p in Path("/proc").glob("[0-9]*") if _serves(p, port)]
        assert folders, "the server runs while the command does"
        wrapper.send_signal(signal.SIGTERM)
        assert wrapper.wait(timeout=60) == 128 + signal.SIGTERM
    deadline = time.monotonic() + 30
    while any(_serves(p, port) for p in folders) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(_serves(p, port) for p in folders), "the server outlived its wrapper"


def _serves(process: Path, port: str) -> bool:
    """Whether `process` is a PostgreSQL server listening on `port` (its command line says so)."""
    try:
        cmdline = (process / "cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return False
    return "postgres" in cmdline and f"-p {port}" in cmdline
