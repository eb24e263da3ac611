"""The send stage's test harness: the sandbox as a test sees it, and micro-batch runs that mail through it."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import httpx
import orjson
import polars as pl

from orchestration.definitions import build_defs
from orchestration.jobs import MICROBATCH_JOB, microbatch_config
from orchestration.settings import Settings
from resources.email import EmailProviderResource
from resources.providers import SANDBOX_API_KEY
from services.sandbox.app import create_sandbox_app
from services.server import ServerThread
from tests.conftest import land, table
from tests.story import at, message
from transforms.triggers.policies import unit_hash

ROOT = Path(__file__).resolve().parents[2]
SHOPPERS = [u for u in (f"shopper-{i}" for i in range(1, 60)) if unit_hash(f"holdout:{u}") >= 0.05]


@dataclass
class Mailbox:
    """The sandbox as a test sees it: its messages, its request log, its fault script."""

    url: str
    http: httpx.Client

    def messages(self) -> list[dict[str, Any]]:
        return list(self.http.get("/api/messages").json())

    def requests(self, send_id: str | None = None) -> list[dict[str, Any]]:
        log = self.http.get("/api/stats").json()["requests"]
        return [r for r in log if send_id is None or r["send_id"] == send_id]

    def fault(self, fault: dict[str, Any]) -> None:
        assert self.http.post("/api/faults", json=fault).status_code == 201


@contextmanager
def open_mailbox(root: Path, settings: Settings) -> Iterator[Mailbox]:
    """A sandbox of the test's own under `root`, on a loopback port, beside `settings`' lake and landing."""
    app = create_sandbox_app(
        root,
        SANDBOX_API_KEY,
        lake_uri=settings.lake_uri,
        landing_uri=settings.landing_uri,
        secret="test-secret",
    )
    auth = {"Authorization": f"Bearer {SANDBOX_API_KEY}"}
    with ServerThread(app) as server, httpx.Client(base_url=server.url, timeout=10, headers=auth) as http:
        yield Mailbox(server.url, http)


def run(
    settings: Settings, instance: dg.DagsterInstance, minutes: float, **email: Any
) -> dg.ExecuteInProcessResult:
    """One micro-batch at T0 + `minutes`, with the sandbox provider configured by `email`."""
    resource = EmailProviderResource(
        esp="sandbox", url=settings.esp_url, api_key=email.pop("api_key", SANDBOX_API_KEY), **email
    )
    job = build_defs(settings, email=resource).resolve_job_def(MICROBATCH_JOB)
    result = job.execute_in_process(
        instance=instance, run_config=microbatch_config(None, 128, at(minutes).isoformat())
    )
    assert result.success
    return result


def sends_metadata(result: dg.ExecuteInProcessResult) -> dict[str, Any]:
    [event] = [
        e
        for e in result.get_asset_materialization_events()
        if e.asset_key and e.asset_key.to_user_string() == "sends"
    ]
    return {k: v.value for k, v in event.materialization.metadata.items()}


def signups(settings: Settings, users: list[str], name: str = "signup.ndjson", **traits: Any) -> None:
    """`users` identify with an address and consent at T0 (welcome is immediate; London is awake)."""
    lines = [
        message(
            "identify",
            at(0),
            user=user,
            email=f"{user}@example.com",
            marketing_consent=True,
            timezone="Europe/London",
            **({"first_name": f"Name{i}"} | traits),
        )
        for i, user in enumerate(users)
    ]
    land(settings, name, [orjson.dumps(m) for m in lines])


def declarations(style: str) -> list[str]:
    return [d.strip() for d in style.split(";") if d.strip()]


def style_rule(selector: str) -> list[str]:
    """The declarations of `selector` in the <style> block of the HTML layout template."""
    layout = (ROOT / "templates" / "layout.html.j2").read_text()
    [body] = re.findall(rf"^{re.escape(selector)} {{(.*)}}$", layout, re.MULTILINE)
    return declarations(body)


def assert_css_inlined(html: str) -> None:
    """The button carries every declaration of the layout's `.button` rule (email clients drop <style>),
    and only @media rules are left in a <style> element."""
    button = re.search(r'<a class="button" [^>]*style="([^"]*)"', html)
    assert button is not None and set(style_rule(".button")) <= set(declarations(button.group(1)))
    styles = re.findall(r"<style>(.*?)</style>", html, re.DOTALL)
    assert styles and all(block.strip().startswith("@media") for block in styles)


def sends(settings: Settings) -> pl.DataFrame:
    return table(settings, "sends").sort("send_id")
