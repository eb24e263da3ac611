"""`lakemail up` refuses ports its parts could not listen on before it starts anything (found by QA: it
printed "lakemail is up", the part crash-looped, and the cause was only in the part's log)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestration import supervisor
from orchestration.cli import main
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


def test_up_with_a_short_profile_api_key_stops_before_it_starts(
    cli_home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Found following the README: `LAKEMAIL_API_KEY=k3y-short make run` printed "lakemail is up", then the
    collector refused the key three times and `up` stopped, the reason only in logs/collector.log."""

    def started(*_: object, **__: object) -> int:
        raise AssertionError("lakemail up started with a profile API key its collector refuses")

    monkeypatch.setattr(supervisor, "up", started)
    monkeypatch.setenv("LAKEMAIL_API_KEY", "k3y-short")
    assert main(["up"]) == 2
    err = capsys.readouterr().err
    assert "LAKEMAIL_API_KEY is shorter than 16 characters" in err and "k3y-short" not in err


@pytest.mark.parametrize(
    ("key", "said"),
    [
        ("a-profile-api-key-long-enough", "  Profile API: http://127.0.0.1:8001/v1/profiles/<user_id>  ("),
        ("", "  Profile API: off until LAKEMAIL_API_KEY is set (16+ characters)"),
    ],
)
def test_up_says_where_the_profile_api_is_or_that_it_is_off(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], key: str, said: str
) -> None:
    """Found following the README: `make run` printed every URL but the profile API's, and that it was
    off without LAKEMAIL_API_KEY only in logs/collector.log; the key itself is never printed."""
    settings = Settings.from_env({"LAKEMAIL_HOME": str(tmp_path)}, dotenv=None)
    plan = supervisor.Plan(3000, 1, 1.0, False, 8025, False, True, True, collector_port=8001)
    env = {"LAKEMAIL_WRITE_KEY": supervisor.DEMO_WRITE_KEY, "LAKEMAIL_API_KEY": key}
    supervisor._announce(settings, plan, env, tmp_path / "logs")
    out = capsys.readouterr().out
    assert said in out and (not key or key not in out)
