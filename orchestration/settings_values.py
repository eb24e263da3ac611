"""The grammar of lakemail's setting values (durations, quiet hours, `.env` lines); no environment here."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

QUIET_HOURS = re.compile(r"^(\d{1,2})-(\d{1,2})$")
DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h|d)$")
UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


class SettingsError(ValueError):
    """A configuration variable is unknown or malformed; the message names it."""


def parse_duration(name: str, text: str) -> timedelta:
    """`90s`, `15m`, `1h`, `2d` -> timedelta; anything else raises SettingsError naming `name`."""
    match = DURATION.match(text.strip())
    if match is None:
        raise SettingsError(f"{name}={text!r} is not a duration like 90s, 15m, 1h or 2d")
    return timedelta(seconds=float(match[1]) * UNITS[match[2]])


def read_dotenv(path: Path) -> dict[str, str]:
    """KEY=VALUE lines of a `.env` file (comments, blank lines and `export ` allowed)."""
    values: dict[str, str] = {}
    if not path.is_file():
        return values
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        key, sep, value = stripped.removeprefix("export ").partition("=")
        if not sep:
            raise SettingsError(f"{path}:{number}: expected KEY=VALUE")
        values[key.strip()] = value.strip().strip("'\"")
    return values
