"""A tracking request on the wire: its write key, its bounded (and maybe gzipped) body, its messages.

Every refusal is a WireError with the HTTP status, a reason code and a detail for the sender. Sizes are
Segment's: 500 KB for a request (after decompression), 32 KB for one message as its client sent it: the
stamps added here are not counted (Segment's libraries measure a message before sending it, so a message
they sent under the limit must not be refused for bytes they never wrote); the ingest's landed-line limit
leaves room for them (transforms.spec.STAMP_MARGIN_BYTES). A batch holds at most MAX_BATCH_MESSAGES, an
answer lists at most LISTED_REFUSALS refused messages, and a big body's messages are read off the event
loop (OffLoop): a small body of many tiny messages must not cost the answer's size or the loop's time.
"""

from __future__ import annotations

import base64
import functools
import uuid
import zlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import anyio
import anyio.to_thread
import orjson
import polars as pl

from services.collector.lenient import TooManyMessages, Unreadable, read_leniently
from services.collector.write_keys import KeyKind
from transforms.ingest.timestamps import parse_timestamps
from transforms.spec import KEY_KIND_FIELD, MAX_LINE_BYTES, MAX_MESSAGE_BYTES, PUBLIC_KEY_KIND, Reason

MAX_BODY_BYTES = 500 * 1024  # Segment's limit for one batch request
# A message the ingest keeps has a type, an id and a timestamp: `{"type":"page","userId":1,
# "timestamp":"2026-01-01"}` and its comma, 52 bytes, is about the shortest, so 500 KB holds under
# 10,000 of them; a batch of more is no client's (200,000 `1`s fit in 400 KB): refused before it is read.
MAX_BATCH_MESSAGES = 10_000
LISTED_REFUSALS = 100  # an answer lists the first refused messages and counts the rest
GZIP_SLICE = 4096  # of a gzip body given to zlib at once (decode)
INLINE_BODY_BYTES = 16 * 1024  # a smaller plain body is read on the event loop: the thread costs more
TYPES = ("track", "identify", "page", "screen", "group", "alias")
RETRY_HEADERS = ("Retry-After", "X-RateLimit-Reset")  # a 429's or 503's wait (retry_headers)
T = TypeVar("T")


class WireError(Exception):
    """A request refused as a whole: `status` (400, 401, 415), `reason` (a code) and `detail`."""

    def __init__(self, status: int, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.reason, self.detail = status, reason, detail


def retry_headers(seconds: int) -> dict[str, str]:
    """The wait a 429 or 503 asks for, as Segment's libraries read it: `Retry-After` (analytics.js since
    1.84, analytics-node since 3.1) and `X-RateLimit-Reset`, the same whole seconds: analytics.js before
    1.84 reads only that one on a 429, as seconds to wait (an epoch time there, as some APIs send, is a
    wait its timer overflows into an immediate retry). A page on another origin reads them only if the
    answer exposes them (CORS): the app's CORS middleware exposes RETRY_HEADERS."""
    return dict.fromkeys(RETRY_HEADERS, str(seconds))


def basic_user(authorization: str | None) -> str | None:
    """The user of an HTTP Basic `authorization` header (the write key), None when there is none."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "basic":
        return ""  # a header that is not Basic names no write key: refused like a wrong one
    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
    except ValueError:  # not base64 (binascii.Error), a character outside ASCII, not UTF-8 inside
        return ""
    return decoded.partition(":")[0]


async def read_body(chunks: AsyncIterator[bytes], content_length: str | None, limit: int) -> bytes:
    """The request body, refused (400) once it is known to pass `limit` bytes: never buffered past it."""
    if content_length and content_length.isdigit() and int(content_length) > limit:
        raise _too_large(int(content_length), limit)
    body = bytearray()
    async for chunk in chunks:
        body += chunk
        if len(body) > limit:
            raise _too_large(len(body), limit)
    return bytes(body)


def decode(body: bytes, encoding: str | None, limit: int = MAX_BODY_BYTES) -> bytes:
    """`body` decompressed as its Content-Encoding says (identity or gzip), at most `limit` bytes of it:
    a gzip bomb stops at the limit, not at the end of memory. The body goes to zlib GZIP_SLICE bytes at a
    time: at a member's end zlib copies what follows it (`unused_data`), and with the whole rest of the
    body each time, a body of 25,000 tiny members cost 0.3 s of copying (seconds for a webhook's 1 MB)."""
    coding = (encoding or "identity").strip().lower()
    if coding == "identity":
        return body
    if coding not in ("gzip", "x-gzip"):
        raise WireError(415, "unsupported_encoding", f"Content-Encoding {coding!r}: use gzip or none")
    out, view, at = bytearray(), memoryview(body), 0
    inflater: zlib._Decompress | None = None  # of the member being read
    while at < len(body):  # a gzip stream may hold several members
        if inflater is None:
            inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        piece = view[at : at + GZIP_SLICE]
        try:
            out += inflater.decompress(piece, limit + 1 - len(out))
        except zlib.error as error:
            raise WireError(400, "invalid_gzip", f"the body is not valid gzip: {error}") from None
        if len(out) > limit or inflater.unconsumed_tail:
            raise _too_large(len(out), limit, "decompressed ")
        at += len(piece) - len(inflater.unused_data)
        if inflater.eof:
            inflater = None
    if inflater is not None:
        raise WireError(400, "invalid_gzip", "the gzip body is truncated")
    return bytes(out)


def parse(body: bytes, max_messages: int | None = None) -> dict[str, Any]:
    """The JSON object of a request body (400 for anything else). A body orjson refuses is read again
    message by message (lenient.py): one message it cannot take must not cost the batch; a `batch` of
    over `max_messages` is refused (400) once that many are read, not after the whole body."""
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        try:
            value = read_leniently(body, max_messages)
        except TooManyMessages as error:
            raise WireError(400, "batch_too_large", str(error)) from None
        except ValueError as error:
            raise WireError(400, "invalid_json", f"the body is not JSON: {str(error)[:200]}") from None
    if not isinstance(value, dict):
        raise WireError(400, "invalid_json", f"the body is a JSON {type(value).__name__}, not an object")
    return value


def messages_of(envelope: dict[str, Any], kind: str | None) -> tuple[list[Any], Any]:
    """(messages, the batch's sentAt) of a `/v1/batch` body (`kind` None) or of a one-message body."""
    if kind is None:
        batch = envelope.get("batch")
        if not isinstance(batch, list):
            raise WireError(400, "invalid_batch", "the body needs a `batch` array of messages")
        if len(batch) > MAX_BATCH_MESSAGES:
            detail = f"{len(batch)} messages in a batch > {MAX_BATCH_MESSAGES}"
            raise WireError(400, "batch_too_large", detail)
        return batch, envelope.get("sentAt")
    return [{**envelope, "type": kind}], None  # the endpoint says what the message is


def usable_sent_at(value: Any) -> bool:
    """Whether a `sentAt` is a timestamp the ingest reads (`transforms.ingest.timestamps`). One that is
    not (`"yesterday"`, `12345`, `""`) is not landed: as Segment ignores it, its messages go without
    skew correction instead of being quarantined for it (the ingest quarantines a landed line's)."""
    return isinstance(value, str) and _parses(value)


@functools.lru_cache(maxsize=256)  # a batch's messages without its sentAt often share their own
def _parses(text: str) -> bool:
    return parse_timestamps(pl.Series([text], dtype=pl.String))[0] is not None


@dataclass
class Stamped:
    """What a request keeps: NDJSON lines ready to land, the messages refused with their reasons, and how
    many of the lines left out a `sentAt` that was no timestamp (the request's or their own)."""

    lines: list[bytes] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)
    ignored_sent_at: int = 0


def take(
    body: bytes,
    encoding: str | None,
    kind: str | None,
    received_at: str,
    key_kind: Callable[[Any], KeyKind | None],
    header_key: str | None = None,
) -> Stamped:
    """A tracking request's body (`kind` as for messages_of) decoded, read and stamped. Its write key is
    `header_key` (the Authorization header's), else the body's `writeKey`; `key_kind` says what it is
    (None: 401), and a public one's messages are stamped so (`stamp`). Blocking: OffLoop runs a big
    body's in a worker thread."""
    envelope = parse(decode(body, encoding), MAX_BATCH_MESSAGES if kind is None else None)
    body_key = envelope.pop("writeKey", None)
    which = key_kind(body_key if header_key is None else header_key)
    if which is None:
        raise WireError(401, "invalid_write_key", "unknown or missing write key")
    messages, sent_at = messages_of(envelope, kind)
    return stamp(messages, sent_at=sent_at, received_at=received_at, public=which == "public")


def stamp(messages: list[Any], *, sent_at: Any, received_at: str, public: bool = False) -> Stamped:
    """Each message as a landing line: `receivedAt` stamped, the request's `sentAt` copied in, a
    `messageId` added when missing, a `writeKey` and a `lakemailKeyKind` taken out, and with `public`
    (a public write key's) `"lakemailKeyKind": "public"` stamped (transforms.ingest.trust); a message
    that is not an object, cannot be read or written as UTF-8 JSON (a lone surrogate, too deep) or is
    longer than 32 KB as sent is refused (by index) and the others kept. A `sentAt` that is no timestamp
    (`usable_sent_at`), the request's or, without a usable one, the message's own, is left out and
    counted."""
    kept = Stamped()
    request_ignored = sent_at is not None and not usable_sent_at(sent_at)
    if request_ignored:
        sent_at = None
    usable = _usable_own_sent_ats(messages) if sent_at is None else frozenset()
    for index, message in enumerate(messages):
        dropped = sent_at is None and _drop_unusable_sent_at(message, usable)
        line = _line(message, sent_at, received_at, public)
        if isinstance(line, bytes):
            kept.lines.append(line + b"\n")
            kept.ignored_sent_at += request_ignored or dropped
        else:
            kept.rejected.append({"index": index, "reason": str(line[0]), "detail": line[1]})
    return kept


def _usable_own_sent_ats(messages: list[Any]) -> frozenset[str]:
    """The messages' own `sentAt`s that are timestamps (usable_sent_at), read in one parse: one parse a
    value cost a batch of 10,000 distinct ones seconds."""
    texts = list({m["sentAt"] for m in messages if isinstance(m, dict) and isinstance(m.get("sentAt"), str)})
    if not texts:
        return frozenset()
    parsed = parse_timestamps(pl.Series(texts, dtype=pl.String)).is_not_null()
    return frozenset(text for text, usable in zip(texts, parsed, strict=True) if usable)


def _drop_unusable_sent_at(message: Any, usable: frozenset[str]) -> bool:
    """Whether `message` had a `sentAt` of its own that is not in `usable` (taken out of it): a list or
    an object is no timestamp (and cannot be looked up in a set)."""
    if not isinstance(message, dict) or (own := message.get("sentAt")) is None:
        return False
    if isinstance(own, str) and own in usable:
        return False
    del message["sentAt"]
    return True


def _line(message: Any, sent_at: Any, received_at: str, public: bool) -> bytes | tuple[Reason, str]:
    """`message` stamped as one NDJSON line (valid UTF-8: the ingest reads it), or why it cannot be."""
    if isinstance(message, Unreadable):
        return Reason.INVALID_JSON, message.detail
    if not isinstance(message, dict):
        return Reason.NOT_AN_OBJECT, f"a JSON {type(message).__name__}, not an object"
    message.pop("writeKey", None)
    message.pop(KEY_KIND_FIELD, None)  # only the collector says what key a message came with
    given = message.get("messageId")
    blank = not given or (isinstance(given, str) and not given.strip())  # no id: the ingest would refuse it
    stamps: dict[str, Any] = {"messageId": str(uuid.uuid4())} if blank else {}
    if sent_at is not None:
        stamps["sentAt"] = sent_at
    stamps["receivedAt"] = received_at
    if public:
        stamps[KEY_KIND_FIELD] = PUBLIC_KEY_KIND
    try:
        sent = orjson.dumps(message)  # as the client sent it, without whitespace: what it measured, or less
        if stamps.keys() & message.keys():  # a stamp replaces the client's value
            line = orjson.dumps(message | stamps)
        else:  # the same bytes as dumping the stamped message, without dumping it again
            line = sent[:-1] + (b"," if message else b"") + orjson.dumps(stamps)[1:]
    except orjson.JSONEncodeError as error:  # a lone surrogate, or nesting past orjson's 254 levels
        return Reason.INVALID_JSON, f"cannot be landed as JSON: {error}"
    if len(sent) > MAX_MESSAGE_BYTES:
        return Reason.LINE_TOO_LONG, f"{len(sent)} bytes > {MAX_MESSAGE_BYTES}"
    if len(line) > MAX_LINE_BYTES:  # only a batch `sentAt` longer than the margin leaves for it
        return Reason.LINE_TOO_LONG, f"{len(line)} bytes with the batch's sentAt > {MAX_LINE_BYTES}"
    return line


def listing(rejected: list[dict[str, Any]], total: int | None = None) -> dict[str, Any]:
    """An answer's `rejected`: the first LISTED_REFUSALS of `rejected` and, when `total` (all of
    `rejected` by default) is more, `rejected_more`, how many were refused besides."""
    listed = rejected[:LISTED_REFUSALS]
    more = (len(rejected) if total is None else total) - len(listed)
    return {"rejected": listed, **({"rejected_more": more} if more > 0 else {})}


class OffLoop:
    """Runs a request's per-message work in a worker thread, at most `threads` at once (their own, so
    the profile API's threads stay free), when its body is big or compressed: the event loop goes on
    answering meanwhile. A small plain body's work is done at once (the thread would cost more)."""

    def __init__(self, threads: int = 2) -> None:
        self.threads = threads
        self._limiter: anyio.CapacityLimiter | None = None  # made in the event loop, on first use

    async def run(self, work: Callable[[], T], body: bytes, encoding: str | None) -> T:
        if len(body) <= INLINE_BODY_BYTES and (encoding or "identity").strip().lower() == "identity":
            return work()
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(self.threads)
        return await anyio.to_thread.run_sync(work, limiter=self._limiter)


def _too_large(size: int, limit: int, what: str = "") -> WireError:
    return WireError(400, "batch_too_large", f"{what}body over {limit} bytes (at least {size})")
