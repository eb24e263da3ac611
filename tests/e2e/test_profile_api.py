"""`lakemail serve collector` serving the profile API (#16.3) from the home's state store, in its own process:
auth, profiles, a rebuild that replaces the store under it, an erasure another process commits, the
metrics' labels, and no user id or address in anything it logged."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx

from orchestration.settings import Settings
from resources.lake import LakeResource
from resources.landing import LandingResource
from resources.state import StateResource
from stores.erasure.requests import erase_user
from stores.ingest import ingest
from stores.state.rebuild import check, rebuild
from tests.processes import SERVING, Child, wait_for
from tests.profile_shop import ADA, API_KEY, GHOST, NONAME, added, build_shop, headers, message

ROOT = Path(__file__).resolve().parents[2]
PII = (ADA, NONAME, GHOST, "u-late", "ada@example.com", "noname@example.com")


@contextlib.contextmanager
def collector(settings: Settings, **env: str) -> Iterator[tuple[str, Path]]:
    """The collector process of this home, on a port of its choosing; its URL once it answers, and the file
    of what it logged."""
    child_env = {
        "LAKEMAIL_HOME": str(settings.home),
        "LAKEMAIL_LAKE_URI": settings.lake_uri,
        "LAKEMAIL_LANDING_URI": settings.landing_uri,
        "LAKEMAIL_STATE_URI": settings.state_store_uri,
        "LAKEMAIL_WRITE_KEY": "wk-profile-e2e",
        "LAKEMAIL_SECRET": "test-secret",
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(ROOT),
        **env,
    }
    argv = [sys.executable, "-m", "orchestration.cli", "serve", "collector", "--port", "0"]
    child = Child(argv, child_env, settings.home / "collector.log").start()
    try:
        url = f"http://127.0.0.1:{child.port(SERVING, 90)}"
        wait_for(
            lambda: httpx.get(f"{url}/health", timeout=1).status_code == 200, 90, "the collector", [child]
        )
        yield url, child.log
    finally:
        child.stop()


def test_the_collector_process_serves_profiles_through_a_rebuild_and_an_erasure(
    settings: Settings, lake: LakeResource, landing: LandingResource, state: StateResource
) -> None:
    build_shop(lake, landing, state)
    with collector(settings, LAKEMAIL_API_KEY=API_KEY) as (url, log), httpx.Client(base_url=url) as http:
        ada = http.get(f"/v1/profiles/{ADA}", headers=headers())
        assert ada.status_code == 200 and ada.json()["cart_id"] == "cart-ada" and ada.json()["batch"] == 1
        assert http.get(f"/v1/profiles/{ADA}").status_code == 401
        assert http.get(f"/v1/profiles/{ADA}", headers=headers("not-the-key-at-all")).status_code == 401
        assert http.get(f"/v1/profiles/{GHOST}", headers=headers()).status_code == 404
        content = http.get(f"/v1/profiles/{NONAME}/content", headers=headers()).json()
        assert {"block": "greeting", "reason": "no_first_name"} in content["fallbacks"]

        later = [
            added(10, "p-2", "cart-late", anon="anon-late"),
            message("identify", 5, user="u-late", anon="anon-late", email="late@example.com"),
        ]
        landing.land("events/second.ndjson", b"\n".join(later) + b"\n")
        ingest(lake, landing)
        assert http.get("/v1/profiles/u-late", headers=headers()).status_code == 404  # not in the store yet
        rebuild(lake, state)  # in this process: a new store file in place of the one the collector reads
        late = http.get("/v1/profiles/u-late", headers=headers())
        assert late.status_code == 200 and late.json()["cart_id"] == "cart-late" and late.json()["batch"] == 2

        # Committed by this process, read by the collector's:
        assert erase_user(lake, landing, ADA, secret="test-secret", state=state).passed
        assert http.get(f"/v1/profiles/{ADA}", headers=headers()).status_code == 404
        assert http.get(f"/v1/profiles/{ADA}/content", headers=headers()).status_code == 404
        assert check(lake, state).equal

        metrics = http.get("/metrics").text
    found = {line.split(" ")[0] for line in metrics.splitlines() if "profile" in line and line[0] != "#"}
    assert 'lakemail_http_requests_total{code="401",method="GET",route="/v1/profiles/{user_id}"}' in found
    assert 'lakemail_profile_lookups_total{outcome="not_found",route="/v1/profiles/{user_id}"}' in found
    assert 'lakemail_profile_lookups_total{outcome="found",route="/v1/profiles/{user_id}/content"}' in found
    assert not [p for p in PII if p in metrics]
    logged = log.read_text()
    assert "serving on" in logged and not [p for p in PII if p in logged]


def test_without_a_key_the_profile_api_is_off_and_says_so(settings: Settings) -> None:
    with collector(settings) as (url, log):
        answer = httpx.get(f"{url}/v1/profiles/{ADA}", headers=headers())
        assert answer.status_code == 503 and answer.json()["code"] == "profile_api_disabled"
        assert httpx.get(f"{url}/health").json()["accepting"] is True  # tracking is served all the same
    assert "the profile API is off" in log.read_text()


def test_a_short_key_stops_the_start_with_a_reason(settings: Settings) -> None:
    env = {"LAKEMAIL_HOME": str(settings.home), "LAKEMAIL_WRITE_KEY": "wk", "LAKEMAIL_API_KEY": "short"}
    argv = [sys.executable, "-m", "orchestration.cli", "serve", "collector", "--port", "0"]
    done = subprocess.run(
        argv, env={**env, "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}, capture_output=True, timeout=120
    )
    assert done.returncode == 2 and b"LAKEMAIL_API_KEY is shorter than 16 characters" in done.stderr
