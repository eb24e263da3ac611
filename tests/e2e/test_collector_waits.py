"""A collector over its bounds on a real socket: every 429 and 503 of the tracking routes (long and short)
and the webhooks says how long to wait in both headers Segment's libraries read, the same seconds, and
exposes them to a page on another origin (analytics.js reads them through CORS)."""

from __future__ import annotations

import base64
import contextlib
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from services.collector.app import CollectorConfig, create_collector_app
from services.collector.backlog import Backlog, BacklogLimits
from services.server import ServerThread
from tests.e2e.test_collector_bounds import slow_post, wait_in_flight

KEY, ESP_KEY = "wk-waits", "esp-waits-key-0123456789"
TRACKING = {"Authorization": "Basic " + base64.b64encode(f"{KEY}:".encode()).decode()}
WEBHOOK = {"Authorization": "Basic " + base64.b64encode(f"lakemail:{ESP_KEY}".encode()).decode()}
ORIGIN = {"Origin": "https://shop.example", "Content-Type": "text/plain"}  # analytics.js: no preflight
NOW = datetime.now(UTC)
TRACK = {
    "type": "track",
    "event": "Product Viewed",
    "userId": "u-1",
    "messageId": "m-1",
    "timestamp": "2026-01-01",
}
POSTS: dict[str, tuple[dict[str, str], Any]] = {
    "/v1/batch": (TRACKING, {"batch": [TRACK]}),
    "/v1/b": (TRACKING, {"batch": [TRACK]}),  # analytics.js batching, analytics-swift and -kotlin
    "/v1/track": (TRACKING, TRACK),
    "/v1/t": (TRACKING, TRACK),  # analytics.js, one call
    "/v1/i": (TRACKING, TRACK | {"type": "identify"}),
    "/v1/esp/sendgrid": (
        WEBHOOK,
        [
            {
                "event": "bounce",
                "email": "x@example.com",
                "timestamp": int(NOW.timestamp()),
                "sg_event_id": "s-1",
            }
        ],
    ),
    "/v1/esp/postmark": (
        WEBHOOK,
        {"RecordType": "Bounce", "Type": "HardBounce", "ID": 1, "Email": "x@example.com", "MessageID": "p-1"}
        | {"BouncedAt": NOW.isoformat()},
    ),
}


def failing_writer(folder: object, name: str, data: bytes) -> object:
    raise OSError("No space left on device")


# (why the collector refuses, its config changes, the status and code it answers)
OVER_BOUNDS: list[tuple[str, dict[str, Any], int, str]] = [
    (
        "backlog",
        {
            "probe": lambda: Backlog(files=11, bytes=0, free_bytes=1 << 40),
            "limits": BacklogLimits(max_files=10, max_bytes=1 << 40, min_free_bytes=0),
        },
        503,
        "backlog_full",
    ),
    ("slots", {"max_requests": 1, "body_seconds": 30}, 429, "too_many_requests"),
    ("queue", {"max_queued_bytes": 10}, 429, "too_many_requests"),
    ("write", {"writer": failing_writer}, 503, "landing_failed"),
]


@contextlib.contextmanager
def over_bound(tmp_path: Path, why: str, changes: dict[str, Any]) -> Iterator[str]:
    """A collector refusing for `why`; its URL. `slots`: one slow request holds its only slot."""
    cfg = CollectorConfig(landing=tmp_path, write_keys=(KEY,), linger=0.01, esp_webhook_key=ESP_KEY)
    with ServerThread(create_collector_app(replace(cfg, **changes))) as server:
        _, port = server.url.removeprefix("http://").split(":")
        with contextlib.ExitStack() as stack:
            if why == "slots":
                stack.enter_context(slow_post(int(port), auth=False))
                assert wait_in_flight(server.url, 1) == 1
            yield server.url


@pytest.mark.parametrize(("why", "changes", "status", "code"), OVER_BOUNDS, ids=[o[0] for o in OVER_BOUNDS])
def test_every_refusal_over_a_bound_says_the_same_wait_in_both_headers(
    tmp_path: Path, why: str, changes: dict[str, Any], status: int, code: str
) -> None:
    with over_bound(tmp_path, why, changes) as url, httpx.Client(base_url=url, timeout=10) as http:
        answers = {
            path: http.post(path, content=orjson.dumps(body), headers=auth | ORIGIN)
            for path, (auth, body) in POSTS.items()
        }
    for path, answer in answers.items():
        assert (answer.status_code, answer.json()["code"]) == (status, code), (path, answer.text)
        # analytics.js before 1.84 waits parseInt(X-RateLimit-Reset) * 1000 ms: seconds, not an epoch time
        wait = answer.headers["Retry-After"]
        assert answer.headers["X-RateLimit-Reset"] == wait and wait.isdigit() and 1 <= int(wait) <= 60, path
        exposed = {h.strip().lower() for h in answer.headers["Access-Control-Expose-Headers"].split(",")}
        assert {"retry-after", "x-ratelimit-reset"} <= exposed, path
        assert answer.headers["Access-Control-Allow-Origin"] == "*"


def test_an_accepted_batch_carries_no_wait(tmp_path: Path) -> None:
    with over_bound(tmp_path, "none", {}) as url:
        answer = httpx.post(
            url + "/v1/b", content=orjson.dumps({"batch": [TRACK]}), headers=TRACKING | ORIGIN
        )
    assert answer.status_code == 200
    assert "retry-after" not in answer.headers and "x-ratelimit-reset" not in answer.headers
