"""Configuration: defaults, .env, and errors that name the variable."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from orchestration.settings import Settings, SettingsError, parse_duration
from transforms.triggers.policies import Policy, quiet_until


def test_defaults_live_under_lakemail_home(tmp_path: Path) -> None:
    settings = Settings.from_env({"LAKEMAIL_HOME": str(tmp_path)}, dotenv=None)
    assert settings.lake_uri == str(tmp_path / "lake")
    assert settings.landing_uri == str(tmp_path / "landing")
    assert settings.dagster_home == tmp_path / "dagster_home"
    assert (settings.poll_seconds, settings.esp) == (2.0, "sandbox")
    assert (settings.max_batch_mb, settings.max_file_mb) == (128, 256)
    assert Settings.from_env({"LAKEMAIL_MAX_FILE_MB": "64"}, dotenv=None).max_file_mb == 64


def test_dotenv_is_read_and_the_environment_wins(tmp_path: Path) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text("# comment\nexport LAKEMAIL_POLL_SECONDS=3\nLAKEMAIL_LAKE_URI='/somewhere/lake'\n\n")
    settings = Settings.from_env({"LAKEMAIL_POLL_SECONDS": "1"}, dotenv=dotenv)
    assert (settings.poll_seconds, settings.lake_uri) == (1.0, "/somewhere/lake")


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"LAKEMAIL_POLL_SECONDS": "often"}, "LAKEMAIL_POLL_SECONDS"),
        ({"LAKEMAIL_POLL_SECONDS": "0"}, "LAKEMAIL_POLL_SECONDS"),
        ({"LAKEMAIL_ESP": "carrier-pigeon"}, "LAKEMAIL_ESP"),
        ({"LAKEMAIL_POL_SECONDS": "2"}, "LAKEMAIL_POL_SECONDS"),
        ({"LAKEMAIL_ABANDONED_CART_DELAY": "soon"}, "LAKEMAIL_ABANDONED_CART_DELAY"),
        ({"LAKEMAIL_QUIET_HOURS": "9pm-8am"}, "LAKEMAIL_QUIET_HOURS"),
        ({"LAKEMAIL_QUIET_HOURS": "08-08"}, "LAKEMAIL_QUIET_HOURS"),
        ({"LAKEMAIL_FREQUENCY_CAP": "1/16h"}, "LAKEMAIL_FREQUENCY_CAP"),
        ({"LAKEMAIL_FREQUENCY_CAP": "0/16h,3/7d"}, "LAKEMAIL_FREQUENCY_CAP"),
        ({"LAKEMAIL_FREQUENCY_CAP": "1/soon,3/7d"}, "LAKEMAIL_FREQUENCY_CAP"),
        ({"LAKEMAIL_MAX_FILE_MB": "0"}, "LAKEMAIL_MAX_FILE_MB"),
    ],
)
def test_unknown_or_malformed_values_fail_naming_the_variable(env: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError, match=named):
        Settings.from_env(env, dotenv=None)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", timedelta(seconds=90)),
        ("15m", timedelta(minutes=15)),
        ("1h", timedelta(hours=1)),
        ("2d", timedelta(days=2)),
    ],
)
def test_durations(text: str, expected: timedelta) -> None:
    assert parse_duration("X", text) == expected


def test_trigger_delays_are_parsed() -> None:
    settings = Settings.from_env({"LAKEMAIL_ABANDONED_CART_DELAY": "2m"}, dotenv=None)
    assert settings.delays == {"LAKEMAIL_ABANDONED_CART_DELAY": timedelta(minutes=2)}


def test_quiet_hours_and_frequency_cap_are_configurable() -> None:
    default = Settings.from_env({}, dotenv=None).policy
    assert (default.quiet_hours, default.cap_short, default.cap_long) == (
        True,
        (1, timedelta(hours=16)),
        (3, timedelta(days=7)),
    )
    env = {"LAKEMAIL_QUIET_HOURS": "22-07", "LAKEMAIL_FREQUENCY_CAP": "2/1h,5/2d"}
    policy = Settings.from_env(env, dotenv=None).policy
    assert (policy.quiet_start.hour, policy.quiet_end.hour) == (22, 7)
    assert (policy.cap_short, policy.cap_long) == ((2, timedelta(hours=1)), (5, timedelta(days=2)))
    assert not Settings.from_env({"LAKEMAIL_QUIET_HOURS": "off"}, dotenv=None).policy.quiet_hours


def test_quiet_hours_off_defers_nobody() -> None:
    night = datetime(2026, 11, 20, 23, 30, tzinfo=UTC)  # 23:30 in London: quiet by default
    zones = pl.Series(["Europe/London"])
    assert quiet_until(night, zones, Policy())[0] is not None
    assert quiet_until(night, zones, Policy(quiet_hours=False)).to_list() == [None]
