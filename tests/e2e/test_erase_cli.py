"""`lakemail erase --user-id ID` end to end: the real CLI, job, lake and landing zone."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import orjson

from orchestration.settings import Settings
from orchestration.sql import run_query
from resources.lake import LakeResource
from resources.landing import LandingResource
from stores.ingest import ingest
from tests.conftest import land
from tests.events_data import track

LAKEMAIL = str(Path(sys.executable).parent / "lakemail")


def identify(message_id: str, user: str, anon: str, email: str) -> bytes:
    return orjson.dumps(
        {
            "messageId": message_id,
            "type": "identify",
            "userId": user,
            "anonymousId": anon,
            "timestamp": "2026-11-22T10:00:00.000Z",
            "traits": {"email": email},
        }
    )


def test_erase_prints_a_passing_certificate_and_the_user_is_gone(
    settings: Settings, lake: LakeResource, landing: LandingResource
) -> None:
    land(
        settings,
        "a.ndjson",
        [
            track("m-1", user=None, anon="anon-gone"),
            identify("m-2", "user-gone", "anon-gone", "gone@example.com"),
            track("m-3", user="user-stays", anon="anon-stays"),
        ],
    )
    ingest(lake, landing)
    env = {"LAKEMAIL_HOME": str(settings.home), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [LAKEMAIL, "erase", "--user-id", "user-gone"],
        env=env,
        cwd=settings.home,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    certificate = json.loads(done.stdout[done.stdout.index("{") :])
    assert certificate["passed"] is True
    assert "user-gone" not in done.stdout and "gone@example.com" not in done.stdout
    assert sorted(run_query(settings.lake_uri, "select event_id from events")["event_id"]) == ["m-3"]
    assert (settings.home / ".secret").exists()  # made for a machine with no LAKEMAIL_SECRET
