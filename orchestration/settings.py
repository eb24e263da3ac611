"""Configuration from the environment (and `.env`), validated once at start-up."""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field, replace
from datetime import time, timedelta
from pathlib import Path

from resources.providers import ESPS
from transforms.triggers.policies import Policy

PREFIX = "LAKEMAIL_"

KNOWN = {
    "LAKEMAIL_HOME",
    "LAKEMAIL_LAKE_URI",
    "LAKEMAIL_LANDING_URI",
    "LAKEMAIL_ESP",
    "LAKEMAIL_ESP_URL",
    "LAKEMAIL_ESP_API_KEY",
    "LAKEMAIL_FROM",
    "LAKEMAIL_SECRET",
    "LAKEMAIL_POLL_SECONDS",
    "LAKEMAIL_MAX_BATCH_MB",
    "LAKEMAIL_MAX_FILE_MB",
    "LAKEMAIL_PUBLIC_URL",
    "LAKEMAIL_QUIET_HOURS",
    "LAKEMAIL_FREQUENCY_CAP",
}
DELAY_VARIABLE = re.compile(r"^LAKEMAIL_[A-Z_]+_DELAY$")
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


@dataclass(frozen=True)
class Settings:
    """Where things live and how often to poll; secrets are not kept here (they go through dg.EnvVar)."""

    home: Path
    lake_uri: str
    landing_uri: str
    poll_seconds: float = 2.0
    max_batch_mb: int = 128  # decompressed bytes one commit takes
    max_file_mb: int = 256  # decompressed bytes one landed file may hold; a bigger one fails with a reason
    esp: str = "sandbox"
    esp_url: str | None = None  # the provider's API base (None: its default; the sandbox's is :8025)
    public_url: str | None = None  # where recipients reach /unsubscribe (None: the sandbox)
    sender: str = "Lakemail Demo Shop <shop@example.com>"
    delays: dict[str, timedelta] = field(default_factory=dict)
    policy: Policy = field(default_factory=Policy)
    esp_api_key_set: bool = False  # whether LAKEMAIL_ESP_API_KEY is set (its value goes through dg.EnvVar)

    @property
    def dagster_home(self) -> Path:
        return self.home / "dagster_home"

    @classmethod
    def load(cls) -> Settings:
        """Settings of this process (its environment over `.env`)."""
        return cls.from_env(os.environ)

    @classmethod
    def from_env(cls, environ: Mapping[str, str], dotenv: Path | None = Path(".env")) -> Settings:
        """Settings from `environ` over `.env`; raises SettingsError naming any bad variable."""
        env = {**(read_dotenv(dotenv) if dotenv else {}), **environ}
        for name in env:
            if name.startswith(PREFIX) and name not in KNOWN and not DELAY_VARIABLE.match(name):
                raise SettingsError(f"{name} is not a lakemail setting (known: {', '.join(sorted(KNOWN))})")
        home = Path(env.get("LAKEMAIL_HOME", "data")).absolute()
        esp = env.get("LAKEMAIL_ESP", "sandbox")
        if esp not in ESPS:
            raise SettingsError(f"LAKEMAIL_ESP={esp!r} must be one of {', '.join(ESPS)}")
        return cls(
            home=home,
            lake_uri=env.get("LAKEMAIL_LAKE_URI", str(home / "lake")),
            landing_uri=env.get("LAKEMAIL_LANDING_URI", str(home / "landing")),
            poll_seconds=_positive(env, "LAKEMAIL_POLL_SECONDS", 2.0),
            max_batch_mb=int(_positive(env, "LAKEMAIL_MAX_BATCH_MB", 128)),
            max_file_mb=int(_positive(env, "LAKEMAIL_MAX_FILE_MB", 256)),
            esp=esp,
            esp_url=env.get("LAKEMAIL_ESP_URL") or None,
            public_url=env.get("LAKEMAIL_PUBLIC_URL") or None,
            sender=env.get("LAKEMAIL_FROM") or cls.sender,
            delays={k: parse_duration(k, v) for k, v in env.items() if DELAY_VARIABLE.match(k)},
            policy=parse_policy(env),
            esp_api_key_set=bool(env.get("LAKEMAIL_ESP_API_KEY")),
        )


def parse_policy(env: Mapping[str, str]) -> Policy:
    """The policy: `LAKEMAIL_QUIET_HOURS` (`21-08`, `off`), `LAKEMAIL_FREQUENCY_CAP` (`1/16h,3/7d`)."""
    policy = Policy()
    quiet = env.get("LAKEMAIL_QUIET_HOURS", "").strip()
    if quiet.lower() == "off":
        policy = replace(policy, quiet_hours=False)
    elif quiet:
        match = QUIET_HOURS.match(quiet)
        if match is None or not all(0 <= int(h) <= 23 for h in match.groups()) or match[1] == match[2]:
            raise SettingsError(
                f"LAKEMAIL_QUIET_HOURS={quiet!r} must be like 21-08 (two different hours) or off"
            )
        policy = replace(policy, quiet_start=time(int(match[1])), quiet_end=time(int(match[2])))
    cap = env.get("LAKEMAIL_FREQUENCY_CAP", "").strip()
    if cap:
        parts = [p.strip() for p in cap.split(",")]
        caps = []
        for part in parts:
            count, slash, window = part.partition("/")
            if not slash or not count.isdigit() or int(count) < 1:
                raise SettingsError(f"LAKEMAIL_FREQUENCY_CAP={cap!r} must be like 1/16h,3/7d")
            caps.append((int(count), parse_duration("LAKEMAIL_FREQUENCY_CAP", window)))
        if len(caps) != 2:
            raise SettingsError(
                f"LAKEMAIL_FREQUENCY_CAP={cap!r} needs a short and a long cap, like 1/16h,3/7d"
            )
        policy = replace(policy, cap_short=caps[0], cap_long=caps[1])
    return policy


def _positive(env: Mapping[str, str], name: str, default: float) -> float:
    text = env.get(name)
    if text is None:
        return default
    try:
        value = float(text)
    except ValueError:
        raise SettingsError(f"{name}={text!r} is not a number") from None
    if value <= 0:
        raise SettingsError(f"{name}={text!r} must be greater than 0")
    return value


def process_environment() -> MutableMapping[str, str]:
    """This process's environment: what child processes inherit (the one place lakemail reads it)."""
    return os.environ


def esp_api_key() -> str | None:
    """`LAKEMAIL_ESP_API_KEY` for the sandbox this process serves (runs read it through `dg.EnvVar`)."""
    return os.environ.get("LAKEMAIL_ESP_API_KEY") or None


SECRET_VARIABLE = "LAKEMAIL_SECRET"


def ensure_secret(home: Path, environ: MutableMapping[str, str] | None = None) -> str:
    """The secret from `environ`, else from `home/.secret` (made 0600 on first use), exported to `environ`."""
    environ = os.environ if environ is None else environ
    value = environ.get(SECRET_VARIABLE)
    if value:
        return value
    path = home / ".secret"
    if not path.exists():
        home.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32))
    value = path.read_text().strip()
    environ[SECRET_VARIABLE] = value
    return value
