"""The collector on a real socket, spoken to by Segment's official Python library, and its messages through
a real micro-batch into `events`."""

from __future__ import annotations

import base64
import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg
import httpx
import orjson
import polars as pl
import pytest
from segment.analytics import consumer as segment_consumer
from segment.analytics.client import Client
from segment.analytics.request import DatetimeSerializer

from orchestration.process import process_once
from orchestration.settings import Settings
from resources.landing import LandingResource
from services.collector.app import CollectorConfig, create_collector_app
from services.collector.backlog import landing_backlog
from services.server import ServerThread
from simulator.run import run_simulation
from tests.conftest import table
from tests.processes import SERVING, Child, wait_for

KEY = "wk-e2e"
ESP_KEY = "esp-webhook-e2e-0123456789"  # LAKEMAIL_ESP_WEBHOOK_KEY: the providers' webhooks


@pytest.fixture
def collector(settings: Settings) -> Iterator[str]:
    landing = LandingResource(uri=settings.landing_uri).root
    probe = landing_backlog(settings.lake_uri, settings.landing_uri)  # the real backlog probe
    config = CollectorConfig(landing=landing, write_keys=(KEY,), probe=probe, linger=0.05)
    with ServerThread(create_collector_app(config)) as server:
        yield server.url


def landed(settings: Settings) -> list[dict[str, Any]]:
    folder = Path(settings.landing_uri) / "events"
    files = sorted(f for f in folder.iterdir() if not f.name.startswith(".")) if folder.exists() else []
    return [orjson.loads(line) for f in files for line in f.read_bytes().splitlines()]


def session(client: Client) -> None:
    """A shopper's session as a server-side integration sends it: every message type once."""
    when = datetime.now(UTC)
    client.page(anonymous_id="anon-1", name="Home", properties={"path": "/"}, timestamp=when)
    client.track(anonymous_id="anon-1", event="Product Viewed", properties={"product_id": "p-00001"})
    client.identify(user_id="u-1", anonymous_id="anon-1", traits={"email": "ada@example.com"})
    client.screen(user_id="u-1", name="Cart")
    client.group(user_id="u-1", group_id="g-1", traits={"name": "Acme"})
    client.alias(previous_id="anon-1", user_id="u-1")


def test_segments_python_library_delivers_a_session_with_gzip(settings: Settings, collector: str) -> None:
    errors: list[Any] = []
    client = Client(KEY, host=collector, gzip=True, on_error=lambda e, batch: errors.append(e))
    session(client)
    client.flush()
    client.shutdown()
    assert errors == []
    found = landed(settings)
    assert sorted(m["type"] for m in found) == sorted(
        ["page", "track", "identify", "screen", "group", "alias"]
    )
    assert all(m["sentAt"] and m["receivedAt"] and m["messageId"] for m in found)
    assert all("writeKey" not in m for m in found)


def test_a_message_at_the_python_librarys_size_limit_lands_and_reaches_events(
    settings: Settings, collector: str, instance: dg.DagsterInstance
) -> None:
    # The library refuses a message over 32 KB as it measures it (json.dumps of the message it built);
    # the collector adds sentAt and receivedAt: those bytes must cost it neither here nor at the ingest.
    when, limit = datetime.now(UTC), segment_consumer.MAX_MSG_SIZE
    args: dict[str, Any] = {
        "user_id": "u-big",
        "event": "Product Viewed",
        "timestamp": when,
        "message_id": "m-big",
    }
    _, built = Client(KEY, send=False).track(properties={"pad": ""}, **args)
    pad = "x" * (limit - len(json.dumps(built, cls=DatetimeSerializer).encode()))
    _, built = Client(KEY, send=False).track(properties={"pad": pad}, **args)
    assert len(json.dumps(built, cls=DatetimeSerializer).encode()) == limit  # the largest it sends
    errors: list[Any] = []
    client = Client(KEY, host=collector, on_error=lambda e, batch: errors.append(e))
    client.track(properties={"pad": pad}, **args)
    client.flush()
    client.shutdown()
    assert errors == []
    assert [m["messageId"] for m in landed(settings)] == ["m-big"]
    assert process_once(settings, instance)["status"] == "SUCCESS"
    assert table(settings, "events")["event_id"].to_list() == ["~public:m-big"]  # a public key's message
    assert table(settings, "quarantine").height == 0


def test_a_method_outside_the_usual_set_is_counted_as_other_not_as_a_series_of_its_own(
    collector: str,
) -> None:
    # h11 (services.server) passes any token as the method to the app: each was a series of its own.
    with httpx.Client(base_url=collector, timeout=10) as http:
        methods = ("PROPFIND", "PURGE", "MKCOL", "X0RANDOM")
        answers = [http.request(method, "/v1/batch").status_code for method in methods]
        http.post("/v1/batch", content=b"{}")
        found = http.get("/metrics").text
    assert answers == [405, 405, 405, 405]
    counts = [line for line in found.splitlines() if line.startswith("lakemail_http_requests_total{")]
    assert 'lakemail_http_requests_total{code="405",method="other",route="/v1/batch"} 4.0' in counts
    assert any('method="POST"' in line for line in counts)
    assert not any(method in found for method in methods)


def test_a_wrong_write_key_gets_401_and_lands_nothing(settings: Settings, collector: str) -> None:
    errors: list[Any] = []
    client = Client("not-the-key", host=collector, max_retries=0, on_error=lambda e, batch: errors.append(e))
    session(client)
    client.flush()
    client.shutdown()
    assert [getattr(e, "status", None) for e in errors] == [401]  # dropped, not retried
    assert landed(settings) == []


def test_an_acknowledged_batch_is_in_events_after_a_micro_batch_and_a_retry_counts_once(
    settings: Settings, collector: str, instance: dg.DagsterInstance
) -> None:
    now = datetime.now(UTC).isoformat()
    batch = [
        {"type": "track", "event": "Product Added", "userId": "u-7", "messageId": f"m-{n}", "timestamp": now}
        for n in range(50)
    ]
    body = orjson.dumps({"batch": batch, "sentAt": now})
    auth = {"Authorization": "Basic " + base64.b64encode(f"{KEY}:".encode()).decode()}
    with httpx.Client(base_url=collector, timeout=10) as http:
        first = http.post("/v1/batch", content=body, headers=auth)
        again = http.post("/v1/batch", content=body, headers={**auth, "X-Retry-Count": "1"})  # lost answer
    assert (first.status_code, again.status_code) == (200, 200)
    assert process_once(settings, instance)["status"] == "SUCCESS"
    events = table(settings, "events").filter(pl.col("user_id") == "u-7")
    assert sorted(events["event_id"].to_list()) == sorted(f"~public:m-{n}" for n in range(50))
    assert events["received_at"].is_not_null().all()


def test_a_lone_surrogate_or_deep_message_is_refused_alone_and_its_batch_reaches_events(
    settings: Settings, collector: str, instance: dg.DagsterInstance
) -> None:
    # JSON.stringify of a string cut mid-emoji writes a lone surrogate escape, which orjson refuses;
    # Segment's clients drop a whole batch on a 400, so only that message may be refused.
    now = datetime.now(UTC).isoformat().encode()
    good = b'{"type":"track","event":"Good","userId":"u-9","messageId":"m-good","timestamp":"' + now + b'"}'
    lone = rb'{"type":"track","event":"T","userId":"u-9","properties":{"name":"Caf\ud83d"}}'
    deep = b'{"type":"track","event":"T","userId":"u-9","properties":' + b"[" * 2000 + b"]" * 2000 + b"}"
    auth = {"Authorization": "Basic " + base64.b64encode(f"{KEY}:".encode()).decode()}
    with httpx.Client(base_url=collector, timeout=10) as http:
        answer = http.post(
            "/v1/batch", content=b'{"batch":[' + good + b"," + lone + b"," + deep + b"]}", headers=auth
        )
        cut = http.post("/v1/batch", content=b'{"batch":[' + good + b"," + lone, headers=auth)
    assert (answer.status_code, answer.json()["success"]) == (200, True)
    assert [(r["index"], r["reason"]) for r in answer.json()["rejected"]] == [
        (1, "invalid_json"),
        (2, "invalid_json"),
    ]
    assert (cut.status_code, cut.json()["code"]) == (400, "invalid_json")  # not JSON: refused whole
    assert [m["messageId"] for m in landed(settings)] == ["m-good"]
    assert process_once(settings, instance)["status"] == "SUCCESS"
    assert table(settings, "events").filter(pl.col("user_id") == "u-9")["event_id"].to_list() == [
        "~public:m-good"
    ]
    assert table(settings, "quarantine").height == 0


def test_lakemail_serve_collector_needs_a_write_key(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[2]
    env = {"LAKEMAIL_HOME": str(tmp_path), "PATH": "/usr/bin:/bin", "PYTHONPATH": str(root)}
    done = subprocess.run(
        [sys.executable, "-m", "orchestration.cli", "serve", "collector", "--port", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and "LAKEMAIL_WRITE_KEY" in done.stderr


def test_the_simulator_sends_through_the_collector(settings: Settings, collector: str) -> None:
    landing = LandingResource(uri=settings.landing_uri).root
    report = run_simulation(landing, users=20, rate=100, duration=2, seed=3, collector=(collector, KEY))
    found = landed(settings)
    assert report.posted["messages"] == len(found) > 150 and report.posted["refused"] == 0
    assert report.files == [] and {f.parent.name for f in report.reference_files} == {"catalog", "customers"}
    assert all(m["receivedAt"] for m in found)


def start_collector(home: Path) -> tuple[subprocess.Popen[bytes], str]:
    """`lakemail serve collector` as its own process on a port of its choosing; its URL once it answers."""
    root = Path(__file__).resolve().parents[2]
    env = {
        "LAKEMAIL_HOME": str(home),
        "LAKEMAIL_WRITE_KEY": KEY,
        "LAKEMAIL_ESP_WEBHOOK_KEY": ESP_KEY,
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(root),
    }
    argv = [sys.executable, "-m", "orchestration.cli", "serve", "collector", "--port", "0"]
    collector = Child(argv, env, home / "collector.log").start()
    try:
        url = f"http://127.0.0.1:{collector.port(SERVING, 90)}"
        wait_for(
            lambda: httpx.get(f"{url}/health", timeout=1).status_code == 200, 90, "the collector", [collector]
        )
    except AssertionError:
        collector.popen.kill()
        raise
    return collector.popen, url


def send_until_refused(url: str, worker: int, acknowledged: list[str]) -> None:
    """Post batches of 20 until the collector is gone; the ids of every 200 go to `acknowledged`."""
    auth = {"Authorization": "Basic " + base64.b64encode(f"{KEY}:".encode()).decode()}
    now = datetime.now(UTC).isoformat()
    with httpx.Client(base_url=url, timeout=10) as http:
        for n in range(10_000):
            ids = [f"w{worker}-{n}-{i}" for i in range(20)]
            batch = [{"type": "page", "anonymousId": "a", "messageId": m, "timestamp": now} for m in ids]
            try:
                response = http.post("/v1/batch", json={"batch": batch}, headers=auth)
            except httpx.TransportError:
                return
            if response.status_code == 200:
                acknowledged.extend(ids)


def test_every_acknowledged_message_survives_a_kill_9(tmp_path: Path) -> None:
    process, url = start_collector(tmp_path)
    acknowledged: list[str] = []
    workers = [threading.Thread(target=send_until_refused, args=(url, w, acknowledged)) for w in range(4)]
    try:
        for worker in workers:
            worker.start()
        deadline = time.monotonic() + 30
        while len(acknowledged) < 2_000 and time.monotonic() < deadline:
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)  # mid-load: requests are waiting on a file being written
        process.wait(30)
    finally:
        process.kill()
        for worker in workers:
            worker.join(30)
    folder = tmp_path / "landing" / "events"
    kept = {
        orjson.loads(line)["messageId"]
        for f in folder.glob("*.ndjson")
        for line in f.read_bytes().splitlines()
    }
    assert len(acknowledged) >= 2_000 and set(acknowledged) <= kept
