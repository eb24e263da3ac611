"""`lakemail simulate --via-collector`: the simulator's events posted as Segment's clients post them."""

from __future__ import annotations

import base64
import logging
from pathlib import Path

import httpx
import orjson
import pytest

from orchestration.cli import main
from simulator import collector
from simulator.collector import BATCH_MESSAGES, CollectorLander, CollectorUnavailable, batches
from simulator.segment import SimLine


def lines(n: int) -> list[SimLine]:
    return [
        SimLine(orjson.dumps({"type": "page", "anonymousId": f"a-{i}", "messageId": f"m-{i}"}), "ok")
        for i in range(n)
    ]


def test_batches_hold_at_most_100_messages_and_skip_lines_that_are_not_json() -> None:
    found = batches([*lines(250), SimLine(b'{"type": "pa', "malformed", "invalid_json")])
    assert [len(b) for b in found] == [BATCH_MESSAGES, BATCH_MESSAGES, 50]


def test_a_refused_batch_is_sent_again_with_the_same_messages_until_it_is_kept(tmp_path: Path) -> None:
    seen: list[httpx.Request] = []

    def collector(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if len(seen) == 1:
            return httpx.Response(503, headers={"Retry-After": "0"}, json={"code": "backlog_full"})
        return httpx.Response(200, json={"success": True})

    client = httpx.Client(
        base_url="http://collector", auth=("wk", ""), transport=httpx.MockTransport(collector)
    )
    lander = CollectorLander(tmp_path, 0, None, url="http://collector", write_key="wk", client=client)
    pending = lines(3)
    lander.land(pending)
    lander.close()
    assert pending == [] and lander.report.posted == {"batches": 1, "messages": 3, "refused": 0}
    assert [r.headers.get("X-Retry-Count") for r in seen] == [None, "1"]
    assert seen[0].content == seen[1].content  # the same messageIds: the lake counts them once
    assert seen[0].headers["Authorization"] == "Basic " + base64.b64encode(b"wk:").decode()
    assert [m["messageId"] for m in orjson.loads(seen[1].content)["batch"]] == ["m-0", "m-1", "m-2"]
    assert lander.report.lines["ok"] == 3 and lander.report.files == []


@pytest.fixture
def keyed_home(cli_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LAKEMAIL_WRITE_KEY", "wk")
    return cli_home


SIMULATE = ["simulate", "--users", "1", "--rate", "1", "--duration", "1", "--via-collector"]


@pytest.mark.parametrize("url", ["notaurl", "ftp://collector", "http://", "http://host:99999"])
def test_a_collector_url_that_is_not_one_is_refused_before_starting(
    keyed_home: Path, capsys: pytest.CaptureFixture[str], url: str
) -> None:
    assert main([*SIMULATE, url]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "--via-collector" in err and "Traceback" not in err, err
    assert list(keyed_home.iterdir()) == []  # nothing landed, nothing started


def test_an_unreachable_collector_is_one_line_and_exit_2(
    keyed_home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def unreachable(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)

    real_client = httpx.Client
    monkeypatch.setattr(collector, "GIVE_UP_SECONDS", -1.0)  # gives up after the first attempt
    monkeypatch.setattr(
        collector.httpx,
        "Client",
        lambda **kw: real_client(**{**kw, "transport": httpx.MockTransport(unreachable)}),
    )
    assert main([*SIMULATE, "http://127.0.0.1:1"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.splitlines()[-1].startswith("lakemail simulate: "), err
    assert "http://127.0.0.1:1" in err.splitlines()[-1]


def test_the_first_failed_attempt_is_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unreachable(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)

    monkeypatch.setattr(collector, "GIVE_UP_SECONDS", -1.0)
    client = httpx.Client(base_url="http://collector", transport=httpx.MockTransport(unreachable))
    lander = CollectorLander(tmp_path, 0, None, url="http://collector", write_key="wk", client=client)
    with caplog.at_level(logging.WARNING, logger="simulator.collector"), pytest.raises(CollectorUnavailable):
        lander.land(lines(1))
    assert [r.levelno for r in caplog.records] == [logging.WARNING], caplog.records
    assert "Connection refused" in caplog.records[0].getMessage()


def _collector_answering(monkeypatch: pytest.MonkeyPatch, status: int) -> list[httpx.Request]:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(status, json={"success": False})

    real_client = httpx.Client
    monkeypatch.setattr(
        collector.httpx,
        "Client",
        lambda **kw: real_client(**{**kw, "transport": httpx.MockTransport(answer)}),
    )
    return seen


def test_a_refused_write_key_stops_at_the_first_batch_with_one_line(
    keyed_home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = _collector_answering(monkeypatch, 401)
    assert main([*SIMULATE, "http://collector", "--users", "5", "--rate", "50"]) == 2
    err = capsys.readouterr().err
    assert len(seen) == 1 and "Traceback" not in err, err
    assert "LAKEMAIL_WRITE_KEY" in err.splitlines()[-1], err


def test_refused_batches_are_a_non_zero_exit(
    keyed_home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _collector_answering(monkeypatch, 400)
    assert main([*SIMULATE, "http://collector"]) == 1
    out, err = capsys.readouterr()
    assert "0 messages in 0 batches, 1 refused" in out and "refused 1 messages" in err, (out, err)
