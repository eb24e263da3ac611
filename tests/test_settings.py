"""Configuration: defaults, .env, and errors that name the variable."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from orchestration.settings import Settings, SettingsError, parse_duration


def test_defaults_live_under_lakemail_home(tmp_path: Path) -> None:
    settings = Settings.from_env({"LAKEMAIL_HOME": str(tmp_path)}, dotenv=None)
    assert settings.lake_uri == str(tmp_path / "lake")
    assert settings.landing_uri == str(tmp_path / "landing")
    assert settings.dagster_home == tmp_path / "dagster_home"
    assert (settings.poll_seconds, settings.esp) == (2.0, "sandbox")


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
