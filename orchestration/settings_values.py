"""Values of single settings variables: durations, the policy, `.env` lines, Dagster's PostgreSQL URL;
SettingsError names the variable. The recipients' links are in `orchestration/settings_links.py`.

Parsing only: `orchestration/settings.py` reads the environment and hands each text here.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import replace
from datetime import time, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from resources.folders import local_folder
from transforms.triggers.policies import Policy

QUIET_HOURS = re.compile(r"(\d{1,2})-(\d{1,2})")
CAP_COUNT = re.compile(r"[0-9]{1,4}")  # longer, int() may refuse it (4300 digits), a traceback
MAX_CAP_COUNT = 1000  # emails per window: more is no cap at all
DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h|d)$")
INLINE_COMMENT = re.compile(r"\s#")  # a `.env` comment after a value
UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
MIN_API_KEY_CHARS = 16  # the profile API serves person data: a guessable key is refused at start-up
# The longest duration any setting takes: ten years. Past it, `now` plus or minus it may leave the calendar
# (the decisions' and the measures' arithmetic raised OverflowError), and nothing waits that long.
MAX_DURATION = timedelta(days=3650)


class SettingsError(ValueError):
    """A configuration variable is unknown or malformed; the message names it."""


def check_profile_api_key(text: str) -> None:
    """SettingsError naming LAKEMAIL_API_KEY (never its value) when it is set but too short. Every command
    checks it, so `lakemail up` stops before it says it is up, not after its collector refused it thrice."""
    if 0 < len(text.strip()) < MIN_API_KEY_CHARS:
        raise SettingsError(
            f"LAKEMAIL_API_KEY is shorter than {MIN_API_KEY_CHARS} characters (make one with "
            "python3 -c 'import secrets; print(secrets.token_urlsafe(24))')"
        )


def parse_duration(name: str, text: str) -> timedelta:
    """`90s`, `15m`, `1h`, `2d` (at most MAX_DURATION) -> timedelta; anything else raises SettingsError
    naming `name` (found by review: `99999999999d` stopped start-up with an OverflowError traceback)."""
    match = DURATION.match(text.strip())
    if match is None:
        raise SettingsError(f"{name}={text!r} is not a duration like 90s, 15m, 1h or 2d")
    seconds = float(match[1]) * UNITS[match[2]]  # inf for a number past what a float holds
    if not seconds <= MAX_DURATION.total_seconds():
        raise SettingsError(f"{name}={text!r} is longer than {MAX_DURATION.days}d (ten years)")
    return timedelta(seconds=seconds)


def parse_window(name: str, text: str) -> timedelta:
    """A duration something is counted over (the attribution window, a frequency cap's): longer than 0,
    since a window of 0 holds nothing (nothing credited, nobody capped)."""
    window = parse_duration(name, text)
    if window <= timedelta(0):
        raise SettingsError(f"{name}={text!r} must be longer than 0 (a window of 0 holds nothing)")
    return window


def parse_refresh(name: str, text: str) -> timedelta:
    """A duration a cron schedule can repeat evenly: minutes dividing 60, hours dividing 24, or 1d."""
    every = parse_duration(name, text)
    minutes, rest = divmod(every.total_seconds(), 60)
    fits = (
        not rest
        and minutes > 0
        and ((0 < minutes < 60 and 60 % minutes == 0) or (minutes % 60 == 0 and 24 * 60 % minutes == 0))
    )
    if not fits:
        raise SettingsError(
            f"{name}={text!r} cannot be a schedule: use whole minutes dividing 60 (1m, 2m, 5m, 15m, 30m), "
            "hours dividing 24 (1h, 2h, 3h, 4h, 6h, 8h, 12h) or 1d"
        )
    return every


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
        values[key.strip()] = dotenv_value(value)
    return values


def dotenv_value(text: str) -> str:
    """The value of a `.env` line after its `=`, as shells and python-dotenv read it: the text between
    matching quotes when only blanks or a comment follow them, else the text up to a `#` after a blank
    (found by review: `LAKEMAIL_WRITE_KEY=site-key  # the shop's` made `site-key  # the shop's` the key,
    refused to every client, and any quote at either end was stripped: `"Acme" <a@b.example>` lost one)."""
    value = text.strip()
    if value[:1] in ("'", '"'):
        end = value.find(value[0], 1)
        rest = value[end + 1 :].strip() if end > 0 else "-"
        if not rest or rest.startswith("#"):
            return value[1:end]
    return INLINE_COMMENT.split(value, maxsplit=1)[0].strip()


def parse_policy(env: Mapping[str, str]) -> Policy:
    """The policy: `LAKEMAIL_QUIET_HOURS` (`21-08`, `off`), `LAKEMAIL_FREQUENCY_CAP` (`1/16h,3/7d`)."""
    policy = Policy()
    quiet = env.get("LAKEMAIL_QUIET_HOURS", "").strip()
    if quiet.lower() == "off":
        policy = replace(policy, quiet_hours=False)
    elif quiet:
        start, end = _quiet_hours(quiet)
        policy = replace(policy, quiet_start=start, quiet_end=end)
    cap = env.get("LAKEMAIL_FREQUENCY_CAP", "").strip()
    if cap:
        caps = [_cap(cap, part.strip()) for part in cap.split(",")]
        if len(caps) != 2:
            raise SettingsError(
                f"LAKEMAIL_FREQUENCY_CAP={cap!r} needs a short and a long cap, like 1/16h,3/7d"
            )
        policy = replace(policy, cap_short=caps[0], cap_long=caps[1])
    return policy


def _quiet_hours(quiet: str) -> tuple[time, time]:
    """`21-08` -> (21:00, 08:00). The hours are compared as numbers (found by review: compared as text,
    `8-08` was taken, and quiet hours that end as they start never end: every marketing email was deferred
    to 08:00, again and again, until it expired)."""
    match = QUIET_HOURS.fullmatch(quiet)
    hours = [int(h) for h in match.groups()] if match is not None else []
    if len(hours) != 2 or not all(0 <= h <= 23 for h in hours) or hours[0] == hours[1]:
        raise SettingsError(f"LAKEMAIL_QUIET_HOURS={quiet!r} must be like 21-08 (two different hours) or off")
    return time(hours[0]), time(hours[1])


def _cap(cap: str, part: str) -> tuple[int, timedelta]:
    """One cap of `LAKEMAIL_FREQUENCY_CAP=cap`: `3/7d` -> (3, 7 days). A count int() cannot read (`²`, which
    isdigit() takes) was a traceback, and one past what Polars compares failed every decide run."""
    count, slash, window = part.partition("/")
    if not slash or CAP_COUNT.fullmatch(count) is None or not 1 <= int(count) <= MAX_CAP_COUNT:
        raise SettingsError(
            f"LAKEMAIL_FREQUENCY_CAP={cap!r} must be like 1/16h,3/7d (counts from 1 to {MAX_CAP_COUNT})"
        )
    return int(count), parse_window("LAKEMAIL_FREQUENCY_CAP", window)


def positive(env: Mapping[str, str], name: str, default: float) -> float:
    """`name`'s number (default: `default`), finite and greater than 0 (found by review: nan and inf were
    taken, and building the sensors raised ValueError / OverflowError at every start)."""
    text = env.get(name)
    if text is None:
        return default
    try:
        value = float(text)
    except ValueError:
        raise SettingsError(f"{name}={text!r} is not a number") from None
    if not math.isfinite(value) or value <= 0:
        raise SettingsError(f"{name}={text!r} must be a number greater than 0")
    return value


def whole_mb(env: Mapping[str, str], name: str, default: int) -> int:
    """`name`'s size in MB (default: `default`), a whole number of at least 1 (found by review: `0.5` was
    taken as 0 MB, and nan or inf stopped start-up with a traceback)."""
    text = env.get(name)
    if text is None:
        return default
    try:
        value = int(text.strip())
    except ValueError:
        value = 0
    if value < 1:
        raise SettingsError(f"{name}={text!r} must be a whole number of MB, at least 1")
    return value


PG_URL_VARIABLE = "LAKEMAIL_DAGSTER_PG_URL"
# dagster-postgres reaches PostgreSQL through SQLAlchemy with psycopg2 (the driver it installs);
# SQLAlchemy 2.1 would take a bare `postgresql://` for psycopg 3, so the URL names the driver.
PG_DRIVER = "postgresql+psycopg2"
PG_SCHEMES = ("postgresql", "postgres", PG_DRIVER)


def without_password(url: str) -> str:
    """`url` with its password shown as `***`: what an error message or a log may say of it. Everything
    from the user name's `:` to the last `@` is hidden, read as text (found by review: parsed as a URL, a
    password holding `#`, `?` or `/` ended the netloc early and was echoed whole, and a `[` raised)."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    userinfo, at, host = rest.rpartition("@")
    user, colon, _ = userinfo.partition(":")
    return f"{scheme}{sep}{user}:***@{host}" if at and colon else url


def dagster_pg_url(text: str | None) -> str | None:
    """`LAKEMAIL_DAGSTER_PG_URL` (`postgresql://user:password@host:5432/database`) naming its driver,
    or None when unset or empty."""
    if not text:
        return None
    try:
        parts = urlsplit(text.strip())
        _ = parts.port  # a malformed port raises ValueError
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in PG_SCHEMES or not parts.path.strip("/"):
        raise SettingsError(
            f"{PG_URL_VARIABLE}={without_password(text)!r} must be a PostgreSQL URL naming a "
            "database, like postgresql://user:password@host:5432/database"
        )
    return urlunsplit(parts._replace(scheme=PG_DRIVER))


def check_dagster_storage(dagster_home: Path, pg_url: str | None) -> None:
    """SettingsError when the home's dagster.yaml keeps Dagster's storage elsewhere than `pg_url` says:
    every process of a home opens the same instance, the one `lakemail up` chose."""
    config = dagster_home / "dagster.yaml"
    try:
        in_postgres = f"env: {PG_URL_VARIABLE}" in config.read_text()
    except FileNotFoundError:
        return
    if in_postgres and not pg_url:
        raise SettingsError(
            f"{PG_URL_VARIABLE} is not set, but this home keeps Dagster's storage in PostgreSQL ({config}): "
            "set it as `lakemail up` had it, or restart `lakemail up` without it to go back to SQLite"
        )
    if pg_url and not in_postgres:
        raise SettingsError(
            f"{PG_URL_VARIABLE} is set, but this home keeps Dagster's storage in SQLite ({config}): "
            "restart `lakemail up` with it to move the home to PostgreSQL, or unset it"
        )


def folder_uri(env: Mapping[str, str], name: str, default: Path) -> str:
    """`name`'s URI (default, also when empty: `default`): a local one must not name something other than a
    folder (a landing zone that was a file listed nothing, and every run reported success with no file
    taken). A relative one is made absolute here, against this process's folder (found by review: `up`'s
    children run in the project's folder, so `LAKEMAIL_LAKE_URI=lake` named another lake for each, and an
    empty value named the folder a command ran in)."""
    uri = env.get(name, "").strip() or str(default)
    folder = local_folder(uri)
    if folder is not None and folder.exists() and not folder.is_dir():
        raise SettingsError(f"{name}={uri!r} is not a folder")
    return str(folder.absolute()) if folder is not None and not folder.is_absolute() else uri


FOLDERS = {"LAKEMAIL_LAKE_URI": "lake", "LAKEMAIL_LANDING_URI": "landing", "LAKEMAIL_STATE_URI": "state"}


def home_folder(env: Mapping[str, str]) -> Path:
    """`LAKEMAIL_HOME` (default, also when empty: `./data`), absolute; SettingsError when it is a file (found
    by review: `lakemail up` stopped with a FileExistsError traceback, the others blamed settings.json)."""
    home = Path(env.get("LAKEMAIL_HOME", "").strip() or "data").absolute()
    if home.exists() and not home.is_dir():
        raise SettingsError(f"LAKEMAIL_HOME={str(home)!r} is not a folder")
    return home


def folder_uris(env: Mapping[str, str], home: Path) -> tuple[str, str, str]:
    """The lake's, the landing zone's and the state store's URIs (`home/lake`, ...; see folder_uri), each
    in a folder of its own: one inside another is a start-up error (found by review: with the landing zone
    in the lake, the landed `events/` files sat in the events table's folder, where the erasure's and the
    maintenance's full vacuum deletes every file no commit names)."""
    uris = {name: folder_uri(env, name, home / folder) for name, folder in FOLDERS.items()}
    paths = {
        name: folder.resolve() for name, uri in uris.items() if (folder := local_folder(uri)) is not None
    }
    for name, path in paths.items():
        for other, within in paths.items():
            if other != name and (path == within or path in within.parents):
                raise SettingsError(
                    f"{other}={uris[other]!r} is inside {name}={uris[name]!r}: the lake, the landing zone "
                    "and the state store need folders of their own"
                )
    lake, landing, state = uris.values()
    return lake, landing, state
