"""The collector's request handling, in process (ASGI): durability, stamping, refusals with reasons."""

from __future__ import annotations

import asyncio
import base64
import gzip
import threading
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx
import orjson
import pytest

from resources.landing import land
from services.collector.app import CollectorConfig, create_collector_app
from services.collector.backlog import Backlog, BacklogLimits

KEY = "wk-test"
NOW = datetime(2026, 11, 20, 9, 30, 0, 123000, tzinfo=UTC)
T = TypeVar("T")


def basic(key: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


AUTH = basic(KEY)


def config(tmp_path: Path, **changes: Any) -> CollectorConfig:
    base = CollectorConfig(landing=tmp_path, write_keys=(KEY, "other-key"), linger=0.01, clock=lambda: NOW)
    return replace(base, **changes)


def serve(cfg: CollectorConfig, scenario: Callable[[httpx.AsyncClient], Awaitable[T]]) -> T:
    """Run `scenario` against the app, its lifespan (committer, backlog probe) started and stopped."""

    async def main() -> T:
        app = create_collector_app(cfg)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://collector") as client:
                return await scenario(client)

    return asyncio.run(main())


def post(cfg: CollectorConfig, path: str, body: bytes | dict[str, Any], **headers: str) -> httpx.Response:
    content = body if isinstance(body, bytes) else orjson.dumps(body)

    async def scenario(client: httpx.AsyncClient) -> httpx.Response:
        return await client.post(path, content=content, headers=headers)

    return serve(cfg, scenario)


def landed(tmp_path: Path) -> list[dict[str, Any]]:
    folder = tmp_path / "events"
    files = sorted(folder.iterdir()) if folder.exists() else []
    assert all(not f.name.startswith(".") and not f.name.endswith(".tmp") for f in files)
    return [orjson.loads(line) for f in files for line in f.read_bytes().splitlines()]


def message(n: int = 0, **fields: Any) -> dict[str, Any]:
    base = {"type": "track", "event": "Product Viewed", "userId": f"u-{n}", "messageId": f"m-{n}"}
    return {**base, "timestamp": "2026-11-20T09:29:59Z", **fields}


def test_a_batch_lands_stamped_with_received_at_sent_at_and_message_ids(tmp_path: Path) -> None:
    no_id = message(2)
    del no_id["messageId"]
    body = {"batch": [message(1, writeKey=KEY), no_id], "sentAt": "2026-11-20T09:30:00Z"}
    response = post(config(tmp_path), "/v1/batch", body, **AUTH)
    assert (response.status_code, response.json()) == (200, {"success": True})
    first, second = landed(tmp_path)
    assert first["messageId"] == "m-1" and "writeKey" not in first  # the key never lands
    assert uuid.UUID(second["messageId"]).version == 4
    for line in (first, second):
        assert (line["sentAt"], line["receivedAt"]) == ("2026-11-20T09:30:00Z", "2026-11-20T09:30:00.123Z")


def test_each_message_endpoint_sets_its_type_and_takes_the_key_from_the_body(tmp_path: Path) -> None:
    cfg, kinds = config(tmp_path), ("track", "identify", "page", "screen", "group", "alias")
    for kind in kinds:
        body = {
            "userId": "u-1",
            "type": "wrong",
            "writeKey": "other-key",
            "timestamp": "2026-11-20T09:00:00Z",
        }
        assert post(cfg, f"/v1/{kind}", body).status_code == 200
    lines = landed(tmp_path)
    assert sorted(line["type"] for line in lines) == sorted(kinds)
    assert all("writeKey" not in line and "sentAt" not in line for line in lines)


def test_the_answer_waits_until_the_file_is_renamed_into_place(tmp_path: Path) -> None:
    entered, release, calls = threading.Event(), threading.Event(), []

    def slow_land(folder: Path, name: str, data: bytes) -> Path:
        entered.set()
        release.wait(10)
        path = land(folder, name, data)
        calls.append(path)
        return path

    async def scenario(client: httpx.AsyncClient) -> httpx.Response:
        request = asyncio.ensure_future(client.post("/v1/batch", json={"batch": [message()]}, headers=AUTH))
        assert await asyncio.to_thread(entered.wait, 10)
        await asyncio.sleep(0.05)
        assert not request.done() and landed(tmp_path) == []  # being written: no answer yet
        release.set()
        response = await request
        assert calls and calls[0].exists()  # renamed before the 200 was sent
        return response

    assert serve(config(tmp_path, writer=slow_land), scenario).status_code == 200


def test_a_failed_write_is_never_acknowledged(tmp_path: Path) -> None:
    def broken(folder: Path, name: str, data: bytes) -> Path:
        raise OSError(28, "No space left on device")

    response = post(config(tmp_path, writer=broken), "/v1/batch", {"batch": [message()]}, **AUTH)
    assert response.status_code == 503 and response.headers["Retry-After"] == "1"
    assert response.json()["code"] == "landing_failed" and landed(tmp_path) == []


def test_concurrent_requests_share_one_file_and_one_fsync_pair(tmp_path: Path) -> None:
    files: list[str] = []

    def counting(folder: Path, name: str, data: bytes) -> Path:
        files.append(name)
        return land(folder, name, data)

    async def scenario(client: httpx.AsyncClient) -> list[int]:
        batches = [{"batch": [message(n)]} for n in range(20)]
        answers = await asyncio.gather(*(client.post("/v1/batch", json=b, headers=AUTH) for b in batches))
        return [a.status_code for a in answers]

    assert serve(config(tmp_path, linger=0.3, writer=counting), scenario) == [200] * 20
    assert len(files) == 1 and len(landed(tmp_path)) == 20


def test_a_quiet_collector_lands_a_request_at_once_not_after_the_commit_window(tmp_path: Path) -> None:
    async def scenario(client: httpx.AsyncClient) -> int:
        answer = await asyncio.wait_for(
            client.post("/v1/batch", json={"batch": [message()]}, headers=AUTH), 10
        )
        return answer.status_code

    # A window of a minute: the first request after a quiet spell does not wait it out (it did: the file
    # gathered for the whole window after its first request, every ack at least the window late).
    assert serve(config(tmp_path, linger=60.0), scenario) == 200
    assert [m["messageId"] for m in landed(tmp_path)] == ["m-0"]


def test_requests_that_come_while_a_file_is_written_share_the_next_file(tmp_path: Path) -> None:
    files: list[int] = []
    release = threading.Event()

    def slow(folder: Path, name: str, data: bytes) -> Path:
        release.wait(10) if not files else None  # the first file takes until the others have come
        files.append(data.count(b"\n"))
        return land(folder, name, data)

    async def scenario(client: httpx.AsyncClient) -> list[int]:
        first = asyncio.ensure_future(client.post("/v1/batch", json={"batch": [message(0)]}, headers=AUTH))
        await asyncio.sleep(0.05)
        later = [client.post("/v1/batch", json={"batch": [message(n)]}, headers=AUTH) for n in range(1, 6)]
        others = asyncio.gather(*later)
        await asyncio.sleep(0.05)
        release.set()
        return [a.status_code for a in [await first, *(await others)]]

    assert serve(config(tmp_path, writer=slow), scenario) == [200] * 6
    assert files == [1, 5]


def gzipped(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


def test_a_gzip_body_is_taken(tmp_path: Path) -> None:
    body = gzipped(orjson.dumps({"batch": [message(1), message(2)]}))
    response = post(config(tmp_path), "/v1/batch", body, **AUTH, **{"Content-Encoding": "gzip"})
    assert response.status_code == 200 and [m["messageId"] for m in landed(tmp_path)] == ["m-1", "m-2"]


BOMB = gzipped(b"{" + b" " * (50 * 1024 * 1024) + b"}")  # 50 MB of JSON in ~50 KB
HUGE = orjson.dumps({"batch": [message(n, properties={"pad": "x" * 20_000}) for n in range(30)]})
OVERSIZE = message(properties={"pad": "x" * 33_000})
REFUSALS = [
    ("unknown_basic_key", "/v1/batch", {"batch": [message()]}, basic("nope"), 401, "invalid_write_key"),
    (
        "not_basic",
        "/v1/batch",
        {"batch": [message()]},
        {"Authorization": "Bearer x"},
        401,
        "invalid_write_key",
    ),
    ("no_key", "/v1/batch", {"batch": [message()]}, {}, 401, "invalid_write_key"),
    ("wrong_body_key", "/v1/batch", {"batch": [message()], "writeKey": "nope"}, {}, 401, "invalid_write_key"),
    ("not_json", "/v1/batch", b'{"batch": [', AUTH, 400, "invalid_json"),
    ("not_an_object", "/v1/batch", b"[1, 2]", AUTH, 400, "invalid_json"),
    ("no_batch", "/v1/batch", {"messages": []}, AUTH, 400, "invalid_batch"),
    ("over_500_kb", "/v1/batch", HUGE, AUTH, 400, "batch_too_large"),
    ("gzip_bomb", "/v1/batch", BOMB, {**AUTH, "Content-Encoding": "gzip"}, 400, "batch_too_large"),
    ("bad_gzip", "/v1/batch", b"not gzip", {**AUTH, "Content-Encoding": "gzip"}, 400, "invalid_gzip"),
    (
        "cut_gzip",
        "/v1/batch",
        gzipped(b'{"batch": []}')[:-6],
        {**AUTH, "Content-Encoding": "gzip"},
        400,
        "invalid_gzip",
    ),
    ("deflate", "/v1/batch", b"{}", {**AUTH, "Content-Encoding": "br"}, 415, "unsupported_encoding"),
    ("one_big_message", "/v1/track", OVERSIZE, AUTH, 400, "line_too_long"),
    ("only_bad_messages", "/v1/batch", {"batch": [1, "x"]}, AUTH, 400, "not_an_object"),
]


@pytest.mark.parametrize(
    ("path", "body", "headers", "status", "reason"), [r[1:] for r in REFUSALS], ids=[r[0] for r in REFUSALS]
)
def test_refusals_say_why_and_land_nothing(
    tmp_path: Path, path: str, body: Any, headers: dict[str, str], status: int, reason: str
) -> None:
    response = post(config(tmp_path), path, body, **headers)
    assert (response.status_code, response.json()["code"]) == (status, reason)
    assert response.json()["success"] is False and response.json()["message"]
    assert landed(tmp_path) == []


def test_a_bad_message_in_a_batch_is_reported_and_the_others_land(tmp_path: Path) -> None:
    body = {"batch": [message(1), 42, OVERSIZE, message(2)]}
    response = post(config(tmp_path), "/v1/batch", body, **AUTH)
    assert response.status_code == 200
    assert [(r["index"], r["reason"]) for r in response.json()["rejected"]] == [
        (1, "not_an_object"),
        (2, "line_too_long"),
    ]
    assert [m["messageId"] for m in landed(tmp_path)] == ["m-1", "m-2"]


def test_a_backlog_over_its_bound_is_refused_with_retry_after(tmp_path: Path) -> None:
    limits = BacklogLimits(max_files=10, max_bytes=10**9, min_free_bytes=0)
    cfg = config(tmp_path, probe=lambda: Backlog(files=11, bytes=0, free_bytes=10**12), limits=limits)
    response = post(cfg, "/v1/batch", {"batch": [message()]}, **AUTH)
    assert (response.status_code, response.json()["code"], response.headers["Retry-After"]) == (
        503,
        "backlog_full",
        "5",
    )
    assert landed(tmp_path) == []


def test_a_full_disk_is_refused(tmp_path: Path) -> None:
    cfg = config(tmp_path, probe=lambda: Backlog(files=0, bytes=0, free_bytes=1024))
    assert post(cfg, "/v1/batch", {"batch": [message()]}, **AUTH).status_code == 503


def test_a_full_queue_is_refused_with_429(tmp_path: Path) -> None:
    response = post(config(tmp_path, max_queued_bytes=100), "/v1/batch", {"batch": [message()]}, **AUTH)
    assert (response.status_code, response.json()["code"], response.headers["Retry-After"]) == (
        429,
        "too_many_requests",
        "1",
    )
    assert landed(tmp_path) == []


def test_never_a_redirect_and_cors_for_browsers(tmp_path: Path) -> None:
    async def scenario(client: httpx.AsyncClient) -> tuple[httpx.Response, httpx.Response]:
        slash = await client.post("/v1/batch/", json={"batch": [message()]}, headers=AUTH)
        preflight = await client.options(
            "/v1/batch",
            headers={"Origin": "https://shop.example", "Access-Control-Request-Method": "POST"}
            | {"Access-Control-Request-Headers": "authorization,content-encoding"},
        )
        return slash, preflight

    slash, preflight = serve(config(tmp_path), scenario)
    assert slash.status_code == 404  # Segment's Node client counts any 3xx as delivered
    assert preflight.status_code == 200 and preflight.headers["access-control-allow-origin"] == "*"
    assert "content-encoding" in preflight.headers["access-control-allow-headers"].lower()


def test_the_snippet_and_the_demo_shop_are_served(tmp_path: Path) -> None:
    catalog = [
        {
            "product_id": "p-00001",
            "name": "Alpine <Boot>",
            "category": "shoes",
            "price": 59.0,
            "currency": "EUR",
        }
        | {"stock": 3, "url": "https://shop.example/p/p-00001", "image_url": "https://shop.example/i.jpg"}
    ]

    async def scenario(client: httpx.AsyncClient) -> list[httpx.Response]:
        return [await client.get(p) for p in ("/lakemail.js", "/shop", "/shop/p/p-00001", "/shop/p/nope")]

    script, home, product, missing = serve(config(tmp_path, shop_catalog=catalog), scenario)
    assert script.headers["content-type"].startswith("text/javascript") and b"sendBeacon" in script.content
    assert f'data-write-key="{KEY}"' in home.text and "Alpine &lt;Boot&gt;" in home.text
    assert '"name":"Alpine \\u003cBoot>"' in product.text  # no `</script>` can close the data early
    assert missing.status_code == 404


def test_a_message_id_of_whitespace_only_gets_one(tmp_path: Path) -> None:
    """The ingest refuses a blank messageId: the collector gives such a message an id, as a missing one."""
    body = {
        "batch": [message(1, messageId="  "), message(2, messageId="\t")],
        "sentAt": "2026-11-20T09:30:00Z",
    }
    assert post(config(tmp_path), "/v1/batch", body, **AUTH).status_code == 200
    ids = [line["messageId"] for line in landed(tmp_path)]
    assert [uuid.UUID(i).version for i in ids] == [4, 4] and ids[0] != ids[1]
