"""The suite's own helpers for the processes its tests start (tests/processes.py): a port no other process
is given, a wait that ends when the child it waits on has died, and a stop that leaves nothing behind."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import httpx
import pytest

from tests.processes import ROOT, Child, reserve_port, session_of, stop_session, wait_for

# A leader and what it starts, as `dagster-daemon run` and its code servers: one child ignores SIGTERM
# (a code server waiting for a run), one has also left the session; both write their pid when ready (one
# write each: the two share the pipe).
STUBBORN = (
    "import os, signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    "{}os.write(1, b'%d\\n' % os.getpid())"
)
LEADER = f"""
import subprocess, sys, time
for setup in ("", "os.setsid(); "):
    subprocess.Popen([sys.executable, "-c", {STUBBORN!r}.format(setup) + "; time.sleep(600)"])
time.sleep(600)
"""


def test_a_reserved_port_is_given_to_no_bind_0_yet_a_server_binds_it() -> None:
    port = reserve_port()
    handed = set()
    for _ in range(100_000):  # a port merely closed (bind 0, close) comes back about 7 times in as many
        with socket.socket() as other:
            other.bind(("127.0.0.1", 0))
            handed.add(other.getsockname()[1])
    assert port not in handed
    with socket.socket() as server:  # as uvicorn, http.server, Prometheus and PostgreSQL bind theirs
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", port))
        server.listen()


def answers(url: str) -> bool:
    return httpx.get(url, timeout=1).status_code == 200


def test_a_wait_on_a_server_that_could_not_bind_ends_at_once_with_its_log(tmp_path: Path) -> None:
    env = {"LAKEMAIL_HOME": str(tmp_path), "LAKEMAIL_WRITE_KEY": "wk", "PYTHONPATH": str(ROOT)}
    with socket.socket() as taken:  # what another process bound between a port's choice and its use
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        argv = [sys.executable, "-m", "orchestration.cli", "serve", "collector", "--port", str(port)]
        collector = Child(argv, env | {"PATH": os.environ["PATH"]}, tmp_path / "collector.log").start()
        started = time.monotonic()
        with pytest.raises(AssertionError) as failed:
            wait_for(partial(answers, f"http://127.0.0.1:{port}/metrics"), 180, "/metrics", [collector])
    collector.stop()
    assert time.monotonic() - started < 60
    assert "collector exited with 1" in str(failed.value)
    assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in str(failed.value)


def test_stopping_a_session_leaves_none_of_its_processes(tmp_path: Path) -> None:
    marker = f"LAKEMAIL_TEST_SESSION={tmp_path}"
    env = os.environ | dict([marker.split("=", 1)])
    leader = subprocess.Popen(
        [sys.executable, "-c", LEADER], env=env, stdout=subprocess.PIPE, start_new_session=True
    )
    children: list[int] = []
    try:
        assert leader.stdout is not None
        with leader.stdout:
            children += [int(leader.stdout.readline()) for _ in range(2)]
        inside = [pid for pid in children if session_of(pid) == leader.pid]
        outside = [pid for pid in children if session_of(pid) == pid]  # its own session (setsid)
        assert len(inside) == len(outside) == 1
    finally:
        killed = stop_session(leader, grace=2, marker=marker)
    sessions = [session_of(pid) for pid in children]
    assert set(children) <= set(killed)
    assert sessions == [None, None]  # gone (or zombies of init)
