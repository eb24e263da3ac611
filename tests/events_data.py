"""Small hand-made Segment messages for tests that need exact control over each line."""

from __future__ import annotations

import orjson


def track(message_id: str, *, user: str | None = "u-1", anon: str | None = None, **props: object) -> bytes:
    message: dict[str, object] = {
        "messageId": message_id,
        "type": "track",
        "event": "Product Viewed",
        "timestamp": "2026-11-22T10:00:00.000Z",
        "properties": {"product_id": "p-1", **props},
    }
    if user:
        message["userId"] = user
    if anon:
        message["anonymousId"] = anon
    return orjson.dumps(message)


def file_lines(prefix: str, count: int, *, bad_every: int = 0) -> list[bytes]:
    """`count` lines with unique ids, a malformed line every `bad_every` lines when set."""
    return [
        b"{broken"
        if bad_every and i % bad_every == bad_every - 1
        else track(f"{prefix}-{i}", anon=f"a-{i % 7}")
        for i in range(count)
    ]
