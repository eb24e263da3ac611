"""The sandbox's durable mailbox (SQLite, WAL) and its in-memory count of mail-send requests."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections import Counter, deque
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

DB_NAME = "sandbox.sqlite3"
MAX_LOGGED_REQUESTS = 10_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    to_addr TEXT NOT NULL,
    subject TEXT NOT NULL,
    html TEXT,
    text TEXT,
    headers TEXT NOT NULL,
    custom_args TEXT NOT NULL,
    send_id TEXT,
    received_at TEXT NOT NULL,
    payload TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_send_id ON messages (send_id);
CREATE TABLE IF NOT EXISTS replays (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id TEXT NOT NULL,
    received_at TEXT NOT NULL
);
"""
_COLUMNS = "id, to_addr, subject, html, text, headers, custom_args, received_at, payload"


def utc_now_iso() -> str:
    """Now, ISO-8601 UTC with a `Z`, to the millisecond."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class StoredMessage:
    """One accepted message (one personalization of a mail-send request)."""

    id: str
    to: str
    subject: str
    html: str | None
    text: str | None
    headers: dict[str, str]
    custom_args: dict[str, str]
    received_at: str
    payload: dict[str, Any]

    def public(self) -> dict[str, Any]:
        """The message as `GET /api/messages` lists it."""
        return {
            "id": self.id,
            "to": self.to,
            "subject": self.subject,
            "html": self.html,
            "text": self.text,
            "headers": self.headers,
            "received_at": self.received_at,
            "custom_args": self.custom_args,
        }


_INSERT = (
    "INSERT INTO messages (id, to_addr, subject, html, text, headers, custom_args, send_id, "
    "received_at, payload) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


class MessageStore:
    """Messages in `<store_dir>/sandbox.sqlite3`; one short connection per call, so any thread may call."""

    def __init__(self, store_dir: Path) -> None:
        store_dir.mkdir(parents=True, exist_ok=True)
        self.path = store_dir / DB_NAME
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")  # persistent: set once, kept in the file
            db.executescript(_SCHEMA)
        self._queue_lock = threading.Lock()
        self._queued: list[tuple[list[tuple[object, ...]], Future[None]]] = []
        self._writing = False

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        with closing(sqlite3.connect(self.path, timeout=10.0)) as db:
            db.execute("PRAGMA synchronous=FULL")  # a 202 means stored, even across a power cut
            with db:  # one transaction, committed on success
                yield db

    def add(self, messages: Sequence[StoredMessage]) -> None:
        """Store the messages of one request durably before returning (raises if they were not stored).

        Group commit: requests that arrive while a transaction is being written wait for the next
        one, which takes all of them, so concurrent senders share one fsync instead of queueing for
        one each. The caller that finds no writer at work writes, for itself and whoever queued.
        """
        rows: list[tuple[object, ...]] = [
            (
                m.id,
                m.to,
                m.subject,
                m.html,
                m.text,
                json.dumps(m.headers),
                json.dumps(m.custom_args),
                m.custom_args.get("send_id"),
                m.received_at,
                json.dumps(m.payload),
            )
            for m in messages
        ]
        stored: Future[None] = Future()
        with self._queue_lock:
            self._queued.append((rows, stored))
            lead = not self._writing
            self._writing = True
        if lead:
            self._write_queued()
        stored.result()

    def _write_queued(self) -> None:
        while True:
            with self._queue_lock:
                group, self._queued = self._queued, []
                if not group:
                    self._writing = False
                    return
            try:
                self._insert(group)
            except Exception:  # none of the group is stored: each request alone, all or none
                for request in group:
                    try:
                        self._insert([request])
                    except Exception as error:
                        request[1].set_exception(error)
            for _, stored in group:
                if not stored.done():
                    stored.set_result(None)

    def _insert(self, group: Sequence[tuple[list[tuple[object, ...]], Future[None]]]) -> None:
        with self._connect() as db:
            for rows, _ in group:
                db.executemany(_INSERT, rows)

    def list_messages(self, *, send_id: str | None = None, limit: int | None = None) -> list[StoredMessage]:
        """Stored messages, newest first, optionally only those sent with `custom_args.send_id`."""
        params: list[object] = [] if send_id is None else [send_id]
        where = "" if send_id is None else "WHERE send_id = ?"
        query = f"SELECT {_COLUMNS} FROM messages {where} ORDER BY seq DESC"
        if limit is not None:
            query += " LIMIT ?"
            params.append(max(limit, 0))
        with self._connect() as db:
            return [_message(row) for row in db.execute(query, params)]

    def replay(self, send_id: str, custom_args: Mapping[str, object]) -> str | None:
        """The id of a request stored under `send_id` with exactly these custom args, counted as a replay
        (the same send asked again: answered with it, nothing stored); None when there is none.

        The custom args are those of the request's first personalization, whose message id is the
        request's `X-Message-Id` (the others' ids have a `.n` after it).
        """
        with self._connect() as db:
            found = db.execute(
                "SELECT id, custom_args FROM messages WHERE send_id = ? AND instr(id, '.') = 0 ORDER BY seq",
                (send_id,),
            )
            for message_id, stored in found.fetchall():
                if json.loads(stored) == custom_args:
                    db.execute(
                        "INSERT INTO replays (message_id, received_at) VALUES (?, ?)",
                        (message_id, utc_now_iso()),
                    )
                    return str(message_id)
        return None

    def replays(self) -> int:
        """How many requests were answered with a message already stored (since the store was made)."""
        with self._connect() as db:
            return int(db.execute("SELECT COUNT(*) FROM replays").fetchone()[0])

    def count(self) -> int:
        """How many messages are stored."""
        with self._connect() as db:
            return int(db.execute("SELECT COUNT(*) FROM messages").fetchone()[0])

    def get(self, message_id: str) -> StoredMessage | None:
        """One message by id, or None."""
        with self._connect() as db:
            row = db.execute(f"SELECT {_COLUMNS} FROM messages WHERE id = ?", (message_id,)).fetchone()
        return None if row is None else _message(row)


def _message(row: tuple[Any, ...]) -> StoredMessage:
    mid, to, subject, html, text, headers, custom_args, received_at, payload = row
    return StoredMessage(
        mid,
        to,
        subject,
        html,
        text,
        json.loads(headers),
        json.loads(custom_args),
        received_at,
        json.loads(payload),
    )


class RequestStats:
    """Every mail-send request this process answered: counts by status and a bounded, PII-free log."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_status: Counter[int] = Counter()
        self._ever: Counter[tuple[int, str]] = Counter()  # (status, fault) since start; `reset` keeps it
        self._log: deque[dict[str, Any]] = deque(maxlen=MAX_LOGGED_REQUESTS)

    def record(
        self, status: int, *, send_id: str | None = None, fault: str | None = None, replayed: bool = False
    ) -> None:
        """Count one answered request (`send_id` is a hash, not person data, so it may be kept);
        `replayed`: answered with the message an earlier request of the same send stored."""
        entry = {"at": time.time(), "received_at": utc_now_iso(), "status": status, "send_id": send_id}
        with self._lock:
            self._by_status[status] += 1
            self._ever[(status, fault or "none")] += 1
            self._log.append({**entry, "fault": fault, "replayed": replayed})

    def snapshot(self) -> dict[str, Any]:
        """`GET /api/stats`: totals, counts by status (string keys, as JSON has them), the request log."""
        with self._lock:
            return {
                "mail_send": {
                    "total": sum(self._by_status.values()),
                    "by_status": {str(status): n for status, n in sorted(self._by_status.items())},
                },
                "requests": list(self._log),
            }

    def totals(self) -> dict[tuple[int, str], int]:
        """(status, fault kind or "none") -> answers since the process started (for /metrics)."""
        with self._lock:
            return dict(self._ever)

    def reset(self) -> None:
        with self._lock:
            self._by_status.clear()
            self._log.clear()
