"""A gzip body as the collector decodes it (wire.decode): every member read, the decompressed bound kept,
and a body of many tiny members read in time linear in its size."""

from __future__ import annotations

import gzip
import zlib

import pytest

from services.collector.esp import ESP_MAX_BODY_BYTES
from services.collector.wire import MAX_BODY_BYTES, WireError, decode

BODY = b'{"batch": [{"type": "track", "event": "x", "userId": "u-1", "timestamp": "2026-11-20"}]}'


def test_every_member_of_a_gzip_body_is_read_across_slices() -> None:
    parts = [BODY[:7], BODY[7:40], BODY[40:]]
    assert decode(b"".join(gzip.compress(part, mtime=0) for part in parts), "gzip") == BODY
    stored = bytes(range(256)) * 2_000  # a member over many slices, stored uncompressed
    assert decode(gzip.compress(stored, compresslevel=0), "x-gzip", 600_000) == stored


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (gzip.compress(BODY, mtime=0)[:-3], "invalid_gzip"),  # cut in the trailer
        (gzip.compress(BODY, mtime=0) + b"\0\0\0", "invalid_gzip"),  # not a member after the first
        (gzip.compress(b"a" * 20, mtime=0) * 2, "batch_too_large"),  # 40 bytes > 30, in two members
    ],
    ids=["cut", "padded", "too-large"],
)
def test_a_cut_or_padded_or_too_large_gzip_body_is_refused(body: bytes, reason: str) -> None:
    with pytest.raises(WireError) as refused:
        decode(body, "gzip", 30 if reason == "batch_too_large" else MAX_BODY_BYTES)
    assert (refused.value.status, refused.value.reason) == (400, reason)


def test_a_body_of_many_tiny_members_is_read_in_linear_time(monkeypatch: pytest.MonkeyPatch) -> None:
    # Each member's end had zlib copy the whole rest of the body: 52,000 empty members (a webhook's 1 MB)
    # took 1.1 s, 25,000 in a tracking body 0.2 s before any key was checked. Counted here as the bytes
    # zlib is handed: at most 16 KB a member (linear in the body; the rest of the body each: its square).
    fed = [0]
    real = zlib.decompressobj

    class Counted:
        def __init__(self, wbits: int) -> None:
            self._inner = real(wbits)

        def decompress(self, data: bytes, max_length: int = 0) -> bytes:
            fed[0] += len(data)
            return self._inner.decompress(data, max_length)

        def __getattr__(self, name: str) -> object:
            return getattr(self._inner, name)

    monkeypatch.setattr(zlib, "decompressobj", Counted)
    members = ESP_MAX_BODY_BYTES // 20
    body = gzip.compress(b"", mtime=0) * members
    assert decode(body, "gzip", ESP_MAX_BODY_BYTES) == b""
    assert fed[0] <= (16 << 10) * (members + 1), f"zlib was handed {fed[0]:,} bytes"
