"""A real email's unsubscribe link, served by the collector on a real socket (found by a review: with a
real provider the links point at LAKEMAIL_PUBLIC_URL, where production runs the collector, and only the
loopback sandbox served `/unsubscribe`, so the collector's 404 left shoppers no way out and Gmail's and
Yahoo's one-click failed). GET asks and lands nothing; RFC 8058's one-click POST lands an `Unsubscribed`
event the ingest takes and that suppresses the shopper; a forged token lands nothing."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import dagster as dg
import httpx
import orjson
import polars as pl
import pytest
from deltalake import write_deltalake

from orchestration.collector import add_collector_options, collector_config
from orchestration.process import process_once
from orchestration.settings import Settings
from resources.lake import LakeResource
from resources.providers import SANDBOX_API_KEY
from resources.shop import ShopResource
from services.collector.app import create_collector_app
from services.sandbox.app import create_sandbox_app
from services.server import ServerThread
from stores.suppressions import suppressed_users
from tests.dagster.sends_harness import SHOPPERS, signups
from tests.story import at
from transforms.schema import SENDS_SCHEMA
from transforms.sends.message import send_id_for, unsubscribe_token

SECRET = "test-secret"  # tests.conftest's LAKEMAIL_SECRET
PUBLIC_URL = "https://mail.shop.example"
ERIN, OLGA = SHOPPERS[0], SHOPPERS[1]
ONE_CLICK = b"List-Unsubscribe=One-Click"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@dataclass(frozen=True)
class Mailed:
    settings: Settings
    send_id: str
    header: str  # the email's List-Unsubscribe
    path: str  # its https: link's path on the collector


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[str]:
    """A sandbox of this test's own: the shared one holds other tests' emails of the same send ids."""
    home = tmp_path / "sandbox"
    app = create_sandbox_app(
        home / "store",
        SANDBOX_API_KEY,
        lake_uri=str(home / "lake"),
        landing_uri=str(home / "landing"),
        secret=SECRET,
    )
    with ServerThread(app) as server:
        yield server.url


@pytest.fixture
def mailed(settings: Settings, sandbox: str, instance: dg.DagsterInstance) -> Mailed:
    """Erin and Olga sign up and get their welcome email, whose links point at PUBLIC_URL."""
    settings = replace(settings, public_url=PUBLIC_URL, esp_url=sandbox)
    signups(settings, [ERIN, OLGA])
    assert process_once(settings, instance, now=at(1).isoformat())["status"] == "SUCCESS"
    sends = pl.read_delta(f"{settings.lake_uri}/sends").filter(pl.col("user_id") == ERIN)
    [send_id] = sends["send_id"].to_list()
    auth = {"Authorization": f"Bearer {SANDBOX_API_KEY}"}
    found = httpx.get(f"{sandbox}/api/messages", params={"send_id": send_id}, headers=auth)
    [mail] = found.json()
    header = mail["headers"]["List-Unsubscribe"]
    [link] = [part.strip("<> ") for part in header.split(",") if PUBLIC_URL in part]
    assert mail["headers"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    return Mailed(settings, send_id, header, urlsplit(link).path)


def collector_app(settings: Settings, **changes: Any) -> Any:
    """The collector as `lakemail serve collector` configures it, its clock at T0 + 50 min."""
    parser = argparse.ArgumentParser()
    add_collector_options(parser)
    config = collector_config(settings, parser.parse_args([]), ("wk",))
    return create_collector_app(replace(config, linger=0.01, clock=lambda: at(50), **changes))


@pytest.fixture
def recorded(settings: Settings) -> Mailed:
    """Erin's email in `sends` only (no run: the tests of refusals need no real email)."""
    return record_send(settings)


def record_send(settings: Settings) -> Mailed:
    """Erin's email written into `sends`, its link made as the send stage makes it."""
    send_id = send_id_for("t-erin")
    row: dict[str, object] = {"send_id": send_id, "trigger_id": "t-erin", "user_id": ERIN, "status": "sent"}
    frame = pl.DataFrame({column: [row.get(column)] for column in SENDS_SCHEMA}, schema=SENDS_SCHEMA)
    write_deltalake(f"{settings.lake_uri}/sends", frame.to_arrow())
    link = ShopResource(public_url=PUBLIC_URL).unsubscribe_url(unsubscribe_token(send_id, SECRET))
    return Mailed(settings, send_id, f"<{link}>", urlsplit(link).path)


@pytest.fixture
def serve(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., httpx.Client]]:
    """Serves the collector of some settings on a real socket, as a client of it."""
    monkeypatch.delenv("LAKEMAIL_API_KEY", raising=False)
    with contextlib.ExitStack() as stack:

        def start(settings: Settings, **changes: Any) -> httpx.Client:
            server = stack.enter_context(ServerThread(collector_app(settings, **changes)))
            return stack.enter_context(httpx.Client(base_url=server.url))

        yield start


def collector_lines(settings: Settings) -> list[dict[str, Any]]:
    folder = Path(settings.landing_uri) / "events"
    files = sorted(folder.glob("collector-*.ndjson"))
    return [orjson.loads(line) for f in files for line in f.read_bytes().splitlines()]


def test_the_collector_serves_a_real_emails_unsubscribe_link(
    mailed: Mailed,
    serve: Callable[..., httpx.Client],
    instance: dg.DagsterInstance,
    caplog: pytest.LogCaptureFixture,
) -> None:
    collector = serve(mailed.settings)
    assert mailed.path == f"/unsubscribe/{unsubscribe_token(mailed.send_id, SECRET)}"
    assert "<mailto:unsubscribe@shop.example>" in mailed.header  # the mailto: way stays
    page = collector.get(mailed.path)
    assert page.status_code == 200 and '<form method="post">' in page.text
    assert page.headers["Referrer-Policy"] == "no-referrer" and collector_lines(mailed.settings) == []
    with caplog.at_level("DEBUG"):
        done = collector.post(mailed.path, content=ONE_CLICK, headers=FORM)
        again = collector.post(mailed.path, content=b"confirm=yes", headers=FORM)  # the page's button
    assert (done.status_code, again.status_code) == (200, 200) and "Unsubscribed" in done.text
    landed = collector_lines(mailed.settings)
    assert [(m["event"], m["userId"], m["messageId"]) for m in landed] == [
        ("Unsubscribed", ERIN, f"unsubscribe-{mailed.send_id}")
    ] * 2
    assert [m["properties"] for m in landed] == [
        {"send_id": mailed.send_id, "method": "one_click"},
        {"send_id": mailed.send_id, "method": "page"},
    ]
    assert landed[0]["timestamp"] == "2026-11-20T12:50:00.000Z"
    logged = " ".join(r.getMessage() for r in caplog.records if not r.name.startswith(("httpx", "httpcore")))
    assert "unsubscribe landed" in logged and not any(s in logged for s in (ERIN, mailed.send_id))
    metrics = collector.get("/metrics").text
    assert 'route="/unsubscribe/{token}"' in metrics and mailed.send_id not in metrics

    assert process_once(mailed.settings, instance, now=at(60).isoformat())["status"] == "SUCCESS"
    events = pl.read_delta(f"{mailed.settings.lake_uri}/events").filter(
        pl.col("event_name") == "Unsubscribed"
    )
    assert events["user_id"].to_list() == [ERIN]  # the replay is a duplicate
    shoppers = pl.DataFrame(
        {"user_id": [ERIN, OLGA], "email": [f"{ERIN}@example.com", f"{OLGA}@example.com"]}
    )
    assert suppressed_users(LakeResource(uri=mailed.settings.lake_uri), shoppers, SECRET) == {ERIN}


def test_a_forged_or_unknown_link_lands_nothing(recorded: Mailed, serve: Callable[..., httpx.Client]) -> None:
    mailed, collector = recorded, serve(recorded.settings)
    assert collector.get(mailed.path).status_code == 200  # the real link is served
    real = unsubscribe_token(mailed.send_id, SECRET)
    forged = [
        unsubscribe_token(mailed.send_id, "another-secret"),
        real[:-2] + ("AA" if not real.endswith("AA") else "BB"),
        "garbage",
        unsubscribe_token("x-not-a-send", SECRET),
    ]
    for token in forged:
        assert collector.get(f"/unsubscribe/{token}").status_code == 400
        assert collector.post(f"/unsubscribe/{token}", content=ONE_CLICK, headers=FORM).status_code == 400
    unknown = unsubscribe_token(send_id_for("a-trigger-never-sent"), SECRET)
    assert collector.post(f"/unsubscribe/{unknown}", content=ONE_CLICK, headers=FORM).status_code == 404
    assert collector.post(mailed.path, content=b"x" * 5000, headers=FORM).status_code == 413
    assert collector_lines(mailed.settings) == []


def test_an_unsubscribe_that_cannot_land_is_not_answered_200(
    recorded: Mailed, serve: Callable[..., httpx.Client]
) -> None:
    def full(folder: Path, name: str, data: bytes) -> Path:
        raise OSError("No space left on device")

    answer = serve(recorded.settings, writer=full).post(recorded.path, content=ONE_CLICK, headers=FORM)
    assert (answer.status_code, answer.headers["Retry-After"]) == (503, "5")
    assert collector_lines(recorded.settings) == []
