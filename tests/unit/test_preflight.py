"""`lakemail up` refuses ports its parts could not listen on before it starts anything (found by QA: it
printed "lakemail is up", the part crash-looped, and the cause was only in the part's log)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestration import supervisor
from orchestration.preflight import planned_ports, port_problems
from orchestration.settings import Settings


@pytest.fixture
def listening() -> Iterator[int]:
    """A port with a listener on 127.0.0.1 (as another `lakemail up`'s runner would hold it)."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen(1)
        yield held.getsockname()[1]


def _time_wait_port() -> int:
    """A port whose only socket is in TIME_WAIT (the server side closed first), as after a Ctrl-C; the
    server set SO_REUSEADDR, as uvicorn and http.server do (Linux lets a bind reuse only such a port)."""
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        port = server.getsockname()[1]
        client = socket.create_connection(("127.0.0.1", port))
        accepted, _ = server.accept()
        accepted.close()  # the server side closes first: its socket waits in TIME_WAIT
        client.close()
    return port


def test_a_port_in_use_twice_planned_or_beyond_the_range_is_named_with_its_option(listening: int) -> None:
    ports = planned_ports(webserver=None, collector=listening, sandbox=None, metrics=65535)
    assert port_problems(ports) == [
        f"port {listening}, the collector's (--collector-port), is in use on 127.0.0.1",
        "port 65536, the decide runner's /metrics (--metrics-port + 1), is beyond 65535",
    ]
    twice = planned_ports(webserver=None, collector=_time_wait_port(), sandbox=None, metrics=None)
    twice.append((twice[0][0], "the Dagster UI's (--port)"))
    assert port_problems(twice) == [
        f"port {twice[0][0]} is both the collector's (--collector-port) and the Dagster UI's (--port)"
    ]  # and a port left in TIME_WAIT by an earlier run is free: `make run` again after Ctrl-C


def test_up_with_a_taken_port_says_so_and_starts_nothing(
    tmp_path: Path, listening: int, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def started(*_: object) -> int:
        raise AssertionError("lakemail up started its parts with a port taken")

    monkeypatch.setattr(supervisor, "_run", started)  # what would start them; the check comes before
    settings = Settings.from_env({"LAKEMAIL_HOME": str(tmp_path)}, dotenv=None)
    code = supervisor.up(
        settings, port=0, users=1, rate=1.0, webserver=False, collector_port=listening, metrics_port=listening
    )
    err = capsys.readouterr().err
    assert code == 2
    assert f"lakemail up: port {listening}, the collector's (--collector-port), is in use" in err
    assert f"port {listening} is both the collector's (--collector-port) and the ingest runner's" in err
