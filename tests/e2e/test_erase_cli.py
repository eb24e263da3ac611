"""`lakemail erase --user-id ID` end to end: the real CLI, job, lake and landing zone."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from orchestration.settings import Settings
from orchestration.sql import run_query
from resources.lake import LakeResource
from resources.landing import LandingResource
from stores.ingest import ingest
from tests.conftest import land, storage_env
from tests.events_data import track
from transforms.spec import MAX_LINE_BYTES

LAKEMAIL = str(Path(sys.executable).parent / "lakemail")
ROOT = Path(__file__).resolve().parents[2]  # the child runs this checkout's code


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
    done = erase(settings, "user-gone", "--json")
    assert done.returncode == 0, done.stderr[-3000:]
    certificate = json.loads(done.stdout[done.stdout.index("{") :])
    assert certificate["passed"] is True
    assert "user-gone" not in done.stdout and "gone@example.com" not in done.stdout
    assert sorted(run_query(settings.lake_uri, "select event_id from events")["event_id"]) == ["m-3"]
    assert (settings.home / ".secret").exists()  # made for a machine with no LAKEMAIL_SECRET


def erase(settings: Settings, user_id: str, *flags: str) -> subprocess.CompletedProcess[str]:
    """`lakemail erase --user-id USER_ID` as an operator runs it, on the home of `settings`."""
    env = {"LAKEMAIL_HOME": str(settings.home), "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    env |= storage_env()
    return subprocess.run(
        [LAKEMAIL, "erase", "--user-id", user_id, *flags],
        env=env,
        cwd=settings.home,
        capture_output=True,
        text=True,
    )


def test_erase_prints_a_short_summary_by_default(
    settings: Settings, lake: LakeResource, landing: LandingResource
) -> None:
    """The certificate runs to hundreds of lines on a real lake: a summary unless --json (#13, 18)."""
    land(settings, "a.ndjson", [track(f"m-{i}", user="user-gone", anon="anon-gone") for i in range(300)])
    ingest(lake, landing)
    done = erase(settings, "user-gone")
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert lines[0].startswith("erasure erasure-") and lines[0].endswith("PASSED: no trace left")
    assert len(lines) <= 10
    # 300 events + 1 identity edge + the person's 1 profile partial (the ingest lane writes partials to
    # profile_updates, #15); every table the erasure knows is checked (it grows with the lake)
    summary = re.search(r"(\d+) checked, 302 rows removed from 3, 0 rows remaining", done.stdout)
    assert summary is not None and int(summary[1]) >= 10, done.stdout
    assert "300 lines blanked in 1 files, 0 lines remaining" in done.stdout
    assert "user-gone" not in done.stdout and "anon-gone" not in done.stdout


@pytest.mark.parametrize("user_id", ["", "   "])
def test_erase_of_an_empty_user_id_is_a_clear_error(settings: Settings, user_id: str) -> None:
    """No traceback and no request landed: the operator is told what is wrong (#13, point 18)."""
    done = erase(settings, user_id)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert "lakemail erase: --user-id: the user id is empty or blank; nothing was erased" in done.stderr
    assert not (settings.home / "landing" / "erasure").exists()


def test_erase_of_a_user_id_the_ingest_took_however_long(
    settings: Settings, lake: LakeResource, landing: LandingResource
) -> None:
    """The ingest takes any id a landed line holds; `lakemail erase` refused one over 256 characters
    (found by review). One over what a line can hold is still a clear error."""
    user = "sso-" + "7f3e" * 150  # 604 characters
    land(
        settings,
        "a.ndjson",
        [identify("m-1", user, "anon-long", "long@example.com"), track("m-2", user="u-stays")],
    )
    ingest(lake, landing)
    done = erase(settings, user)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.splitlines()[0].endswith("PASSED: no trace left")
    assert user not in done.stdout + done.stderr
    assert run_query(settings.lake_uri, "select event_id from events")["event_id"].to_list() == ["m-2"]
    too_long = erase(settings, "x" * (MAX_LINE_BYTES + 1))
    assert too_long.returncode == 2
    assert f"the user id is longer than {MAX_LINE_BYTES} bytes" in too_long.stderr
