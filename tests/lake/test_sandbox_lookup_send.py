"""An `unknown` send the provider was asked about and never took is then sent like any other (found by
review): after the sandbox's look-up said "not taken", the send stage sent the email again but read the
answer as the blind resend of a provider that dedupes on its key does (`_again`): a 400 stayed `unknown`
and was looked up and sent again every 10 s until the email expired a day later (~8,600 calls), a 503
every 10 s (five tries each) instead of the retry backoff. PRODUCT.md section 6: permanent 4xx ->
`failed_permanent`; retries back off. Real HTTP on 127.0.0.1: a listener that never answers (the first
call times out: `unknown`), then the real sandbox with scripted faults."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest

from resources.providers import SANDBOX_API_KEY, SandboxProvider
from services.sandbox.app import create_sandbox_app
from services.server import ServerThread
from stores.sends import run_sends
from tests.lake.test_unsubscribe_anonymous import SECRET, Home, _signup
from tests.story import at
from tests.unit.test_plan import sender_for
from transforms.schema import SENDS_SCHEMA

AUTH = {"Authorization": f"Bearer {SANDBOX_API_KEY}"}


@contextmanager
def silent_listener() -> Iterator[str]:
    """A loopback port that takes connections (the kernel's backlog) and never answers a request."""
    with closing(socket.socket()) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"


@contextmanager
def home_sandbox(home: Home, folder: Path) -> Iterator[str]:
    """The real sandbox on 127.0.0.1 (its store in `folder`), reading `home`'s lake and landing zone."""
    app = create_sandbox_app(
        folder, SANDBOX_API_KEY, lake_uri=home.lake.uri, landing_uri=home.landing.uri, secret=SECRET
    )
    with ServerThread(app) as server:
        yield server.url


def send_run(home: Home, url: str, now: datetime) -> dict:
    provider = SandboxProvider(SANDBOX_API_KEY, url)
    with httpx.Client(timeout=httpx.Timeout(0.5)) as client, home.lake.decide_lock():
        sender = replace(sender_for(client, sleep=lambda s: None), provider=provider, secret=SECRET)
        run_sends(home.lake, home.state, home.landing, sender, now=now)
    [row] = home.lake.read("sends", SENDS_SCHEMA).to_dicts()
    return row


def unknown_welcome(tmp_path: Path) -> tuple[Home, dict]:
    """One welcome whose first call timed out: `unknown`, to be looked up after 10 s."""
    home = Home(tmp_path)
    home.batch("0", at(0), _signup("u-1", at(0)))
    home.engine(at(1))
    with silent_listener() as url:
        row = send_run(home, url, at(1))
    assert (row["status"], row["last_error"], row["next_attempt_at"]) == (
        "unknown",
        "ReadTimeout",
        at(1) + timedelta(seconds=10),
    )
    return home, row


@pytest.mark.parametrize(
    ("status", "expected", "attempts", "due_in"),
    [
        (400, "failed_permanent", 2, None),  # refused: the end of it
        (503, "retrying", 6, timedelta(seconds=15 * 2)),  # five tries, then the backoff of one run before
    ],
)
def test_an_unknown_send_the_sandbox_never_took_gets_the_status_of_its_new_answer(
    tmp_path: Path, status: int, expected: str, attempts: int, due_in: timedelta | None
) -> None:
    home, row = unknown_welcome(tmp_path / "home")
    with home_sandbox(home, tmp_path / "sandbox") as url, httpx.Client(base_url=url, headers=AUTH) as sandbox:
        fault = {"kind": "status", "status": status, "times": 20}
        assert sandbox.post("/api/faults", json=fault).status_code == 201
        now = row["next_attempt_at"]
        row = send_run(home, url, now)
        assert (row["status"], row["attempts"]) == (expected, attempts)
        assert row["last_error"].startswith(f"HTTP {status}")
        assert row["next_attempt_at"] == (None if due_in is None else now + due_in)
        calls = sandbox.get("/api/stats").json()["mail_send"]["total"]
        send_run(home, url, now + timedelta(seconds=10))  # not due: nothing asked, nothing sent
        assert sandbox.get("/api/stats").json()["mail_send"]["total"] == calls == attempts - 1
        assert sandbox.get("/api/messages").json() == []
