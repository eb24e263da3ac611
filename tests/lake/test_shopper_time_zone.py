"""One shopper's `timezone` stopped every decision and every email (found by review): a trait or an event's
`context.timezone` naming a folder of the tz database (`America`, `Etc`) made ZoneInfo raise an OSError
out of the quiet-hours check, so the engine run, and the send stage's re-check before each call, failed
for everyone, run after run. Anyone holding the public write key can send such a trait. Such a zone is
now UTC, as an unknown one always was."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from pathlib import Path

import httpx
import polars as pl

from stores.sends import run_sends
from tests.lake.test_unsubscribe_anonymous import SECRET, Home, _signup
from tests.story import at
from tests.unit.test_plan import sender_for
from transforms.schema import SENDS_SCHEMA


def _in_zone(user: str, when: datetime, zone: str) -> dict:
    signup = _signup(user, when)
    return {**signup, "traits": {**signup["traits"], "timezone": zone}}


def _send(home: Home, now: datetime) -> list[tuple[str, str]]:
    """Run the send stage at `now` against a provider that takes every email; (user, status) by user."""

    def provider(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":  # the sandbox's look-up: nothing taken before
            return httpx.Response(200, json=[])
        return httpx.Response(202, headers={"X-Message-Id": "m-1"})

    with httpx.Client(transport=httpx.MockTransport(provider)) as client, home.lake.decide_lock():
        run_sends(home.lake, home.state, home.landing, replace(sender_for(client), secret=SECRET), now=now)
    return home.lake.read("sends", SENDS_SCHEMA).sort("user_id").select("user_id", "status").rows()


def test_a_time_zone_naming_a_folder_decides_and_sends_as_utc(tmp_path: Path) -> None:
    home = Home(tmp_path)
    home.batch("0", at(0), _signup("u-1", at(0)), _in_zone("u-2", at(0), "America"))
    home.engine(at(1))
    assert home.decisions("u-1") == home.decisions("u-2") == [("welcome", "send")]
    assert _send(home, at(1)) == [("u-1", "sent"), ("u-2", "sent")]


def test_a_time_zone_changed_to_a_folder_before_the_send_does_not_stop_the_send_stage(
    tmp_path: Path,
) -> None:
    """Decided with a good zone; the re-check right before the call reads the new one."""
    home = Home(tmp_path)
    home.batch("0", at(0), _signup("u-1", at(0)), _signup("u-2", at(0)))
    home.engine(at(1))
    home.batch("1", at(1), _in_zone("u-2", at(1), "Etc"))
    assert _send(home, at(1)) == [("u-1", "sent"), ("u-2", "sent")]
    sent = home.lake.read("sends", SENDS_SCHEMA).filter(pl.col("status") == "sent")
    assert sent["attempts"].to_list() == [1, 1]
