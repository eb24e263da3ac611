"""Configuration from the environment (and `.env`), validated once at start-up."""

from __future__ import annotations

import difflib
import os
import secrets
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from orchestration.home_record import RecordError, read_record, write_record
from orchestration.settings_keys import (  # re-exported: the keys' names and checks live there
    API_KEY_VARIABLE,
    ESP_WEBHOOK_KEY_VARIABLE,
    SECRET_VARIABLE,
    SENDGRID_PUBLIC_KEY_VARIABLE,
    SERVER_WRITE_KEY_VARIABLE,
    WRITE_KEY_VARIABLE,
    check_keys,
    split_write_keys,
)
from orchestration.settings_links import click_url_for, public_url_for
from orchestration.settings_values import (  # re-exported: the values' grammar lives there
    SettingsError,
    check_dagster_storage,
    check_profile_api_key,
    dagster_pg_url,
    folder_uris,
    home_folder,
    parse_duration,
    parse_policy,
    parse_refresh,
    parse_window,
    positive,
    read_dotenv,
    whole_mb,
)
from resources.providers import ESPS, check_api_key, check_endpoint
from transforms.ingest.batch import DEFAULT_MAX_BATCH_MB
from transforms.sends.payloads import check_sender
from transforms.triggers.policies import Policy
from transforms.triggers.rules import RULES

PREFIX = "LAKEMAIL_"

# Every LAKEMAIL_* variable lakemail reads, one line each (the trigger delays come from the rules);
# any other LAKEMAIL_* variable stops start-up. A new setting is one line here.
KNOWN = {
    "LAKEMAIL_HOME",
    "LAKEMAIL_LAKE_URI",
    "LAKEMAIL_LANDING_URI",
    "LAKEMAIL_STATE_URI",
    "LAKEMAIL_PROFILES_REFRESH",  # how often profiles_job rewrites the `profiles` Delta table (2m)
    "LAKEMAIL_ESP",
    "LAKEMAIL_ESP_URL",
    "LAKEMAIL_ESP_API_KEY",
    "LAKEMAIL_FROM",
    "LAKEMAIL_SECRET",
    "LAKEMAIL_POLL_SECONDS",
    "LAKEMAIL_MAX_BATCH_MB",
    "LAKEMAIL_MAX_FILE_MB",
    "LAKEMAIL_PUBLIC_URL",
    "LAKEMAIL_CLICK_URL",
    "LAKEMAIL_ATTRIBUTION_WINDOW",
    "LAKEMAIL_QUIET_HOURS",
    "LAKEMAIL_FREQUENCY_CAP",
    "LAKEMAIL_WRITE_KEY",
    "LAKEMAIL_SERVER_WRITE_KEY",  # the collector's secret write keys (services/collector/write_keys.py)
    "LAKEMAIL_API_KEY",
    "LAKEMAIL_ESP_WEBHOOK_KEY",  # the providers' webhooks' secret (services/collector/esp_auth.py)
    "LAKEMAIL_SENDGRID_WEBHOOK_PUBLIC_KEY",  # SendGrid's Signed Event Webhook verification key
    "LAKEMAIL_SUPERVISOR_PID",  # set by `lakemail up` on what it starts (orchestration.homelock)
    "LAKEMAIL_DAGSTER_PG_URL",  # Dagster's storage in PostgreSQL (orchestration/instance.py)
}
# One delay variable per trigger kind, with the rule's own delay as its default.
DELAY_VARIABLES = {f"{PREFIX}{kind.upper()}_DELAY": rule.default_delay for kind, rule in RULES.items()}
# What the engine decides with: `lakemail up` records them for its home (orchestration/home_record.py).
DECISION_VARIABLES = (*DELAY_VARIABLES, "LAKEMAIL_QUIET_HOURS", "LAKEMAIL_FREQUENCY_CAP")


@dataclass(frozen=True)
class Settings:
    """Where things live and how often to poll; secrets are not kept here (they go through dg.EnvVar)."""

    home: Path
    lake_uri: str
    landing_uri: str
    poll_seconds: float = 2.0
    max_batch_mb: int = DEFAULT_MAX_BATCH_MB  # decompressed bytes one commit takes
    max_file_mb: int = 256  # decompressed bytes one landed file may hold; a bigger one fails with a reason
    esp: str = "sandbox"
    esp_url: str | None = None  # the provider's API base (None: its default; the sandbox's is :8025)
    public_url: str | None = None  # where recipients reach /unsubscribe (None: the sandbox)
    click_url: str = ""  # serves the click redirect /c/<token> (settings_links.click_url_for)
    attribution_window: timedelta = timedelta(days=5)
    sender: str = "Lakemail Demo Shop <shop@example.com>"
    delays: dict[str, timedelta] = field(default_factory=dict)
    policy: Policy = field(default_factory=Policy)
    decisions: dict[str, str] = field(default_factory=dict)  # the decision variables set, as text
    esp_api_key_set: bool = False  # whether LAKEMAIL_ESP_API_KEY is set (its value goes through dg.EnvVar)
    state_uri: str | None = None  # the state store (None: `$LAKEMAIL_HOME/state`)
    # Dagster's storage in PostgreSQL (None: SQLite in dagster_home); its password never in a repr
    dagster_pg_url: str | None = field(default=None, repr=False)
    profiles_refresh: timedelta = timedelta(minutes=2)

    @property
    def state_store_uri(self) -> str:
        return self.state_uri or str(self.home / "state")

    @property
    def dagster_home(self) -> Path:
        return self.home / "dagster_home"

    @classmethod
    def load(cls, *, recorded: bool = True) -> Settings:
        """Settings of this process (its environment over `.env`), deciding as `lakemail up` recorded
        for the home (`recorded=False`: `up` itself, which chooses and records them).

        What `.env` sets and the environment does not goes into the environment first: secrets are read
        from it (`dg.EnvVar`, the collector's keys, `LAKEMAIL_SECRET`) and children inherit it."""
        for name, value in read_dotenv(Path(".env")).items():
            os.environ.setdefault(name, value)
        return cls.from_env(os.environ, dotenv=None, recorded=recorded)

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str], dotenv: Path | None = Path(".env"), *, recorded: bool = False
    ) -> Settings:
        """Settings from `environ` over `.env` (and the home's record when `recorded`); raises
        SettingsError naming any bad variable."""
        env = {**(read_dotenv(dotenv) if dotenv else {}), **environ}
        check_names(env)
        home = home_folder(env)
        if recorded:
            env = with_record(env, home)
        pg_url = dagster_pg_url(env.get("LAKEMAIL_DAGSTER_PG_URL"))
        if recorded:  # `up` chooses the Dagster storage (orchestration/instance.py); the others follow it
            check_dagster_storage(home / "dagster_home", pg_url)
        esp = env.get("LAKEMAIL_ESP", "sandbox")
        if esp not in ESPS:
            raise SettingsError(f"LAKEMAIL_ESP={esp!r} must be one of {', '.join(ESPS)}")
        try:
            check_endpoint(esp, env.get("LAKEMAIL_ESP_URL") or None)  # else every send step failed
            check_api_key(env.get("LAKEMAIL_ESP_API_KEY", ""))
            check_sender(env.get("LAKEMAIL_FROM") or cls.sender)  # a bad one failed every email
        except ValueError as error:
            raise SettingsError(str(error)) from None
        check_keys(env)
        check_profile_api_key(env.get(API_KEY_VARIABLE, ""))
        lake_uri, landing_uri, state_uri = folder_uris(env, home)
        return cls(
            home=home,
            lake_uri=lake_uri,
            landing_uri=landing_uri,
            state_uri=state_uri,
            profiles_refresh=parse_refresh(
                "LAKEMAIL_PROFILES_REFRESH", env.get("LAKEMAIL_PROFILES_REFRESH", "2m")
            ),
            poll_seconds=positive(env, "LAKEMAIL_POLL_SECONDS", 2.0),
            max_batch_mb=whole_mb(env, "LAKEMAIL_MAX_BATCH_MB", DEFAULT_MAX_BATCH_MB),
            max_file_mb=whole_mb(env, "LAKEMAIL_MAX_FILE_MB", 256),
            esp=esp,
            esp_url=env.get("LAKEMAIL_ESP_URL") or None,
            public_url=public_url_for(esp, env.get("LAKEMAIL_PUBLIC_URL") or None),
            click_url=click_url_for(esp, env.get("LAKEMAIL_CLICK_URL"), env.get("LAKEMAIL_PUBLIC_URL")),
            attribution_window=parse_window(WINDOW_VARIABLE, env.get(WINDOW_VARIABLE, "5d")),
            sender=env.get("LAKEMAIL_FROM") or cls.sender,
            delays={k: parse_duration(k, v) for k, v in env.items() if k in DELAY_VARIABLES},
            policy=parse_policy(env),
            esp_api_key_set=bool(env.get("LAKEMAIL_ESP_API_KEY")),
            decisions={k: env[k] for k in DECISION_VARIABLES if k in env},
            dagster_pg_url=pg_url,
        )


def known_variables() -> frozenset[str]:
    """Every LAKEMAIL_* variable lakemail reads."""
    return frozenset(KNOWN) | frozenset(DELAY_VARIABLES)


def check_names(env: Mapping[str, str], known: frozenset[str] | None = None) -> None:
    """SettingsError naming the first LAKEMAIL_* variable of `env` that is not in `known` (a typo)."""
    known = known_variables() if known is None else known
    for name in sorted(env):
        if name.startswith(PREFIX) and name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"did you mean {close[0]}? " if close else ""
            raise SettingsError(f"{name} is not a lakemail setting ({hint}known: {', '.join(sorted(known))})")


def _decides_as(name: str, text: str | None) -> object:
    """What decision variable `name` set to `text` (None: unset) decides with: 60m and 1h are equal."""
    if name in DELAY_VARIABLES:
        return DELAY_VARIABLES[name] if text is None else parse_duration(name, text)
    return parse_policy({} if text is None else {name: text})


def with_record(env: Mapping[str, str], home: Path) -> dict[str, str]:
    """`env` with the decision settings `lakemail up` recorded for `home`.

    A decision variable of `env` that decides otherwise than the record is a start-up error: two
    processes of one home must not decide with different delays.
    """
    try:
        record = read_record(home)
    except RecordError as error:
        raise SettingsError(str(error)) from None
    if record is None:
        return dict(env)
    check_names(record.variables, frozenset(DECISION_VARIABLES))
    for name in DECISION_VARIABLES:
        mine, theirs = env.get(name), record.variables.get(name)
        if mine is not None and _decides_as(name, mine) != _decides_as(name, theirs):
            shown = "its default" if theirs is None else repr(theirs)
            raise SettingsError(
                f"{name}={mine!r} conflicts with {shown}, which `lakemail up` recorded for this home in "
                f"{record.path}; every process of a home decides with the same settings: unset {name}, "
                "or restart `lakemail up` with it (which records it)"
            )
    return {**env, **record.variables}


def record_decisions(settings: Settings, env: dict[str, str], *, demo: bool) -> Path:
    """What `lakemail up` decides with, into `env` (its children's) and the home's record.

    The environment and `.env` (`settings.decisions`) win over the demo values already in `env`.
    """
    chosen = {name: env[name] for name in DECISION_VARIABLES if name in env} | settings.decisions
    env.update(chosen)
    return write_record(settings.home, chosen, demo=demo)


def process_environment() -> MutableMapping[str, str]:
    """This process's environment: what child processes inherit (the one place lakemail reads it)."""
    return os.environ


def esp_api_key() -> str | None:
    """`LAKEMAIL_ESP_API_KEY` for the sandbox this process serves (runs read it through `dg.EnvVar`)."""
    return os.environ.get("LAKEMAIL_ESP_API_KEY") or None


DEMO_WRITE_KEY = "demo-write-key"  # what `lakemail up` gives the collector when LAKEMAIL_WRITE_KEY is unset


def write_keys(env: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """The collector's write keys: `LAKEMAIL_WRITE_KEY` of `env` (this process's environment by default),
    comma-separated (empty when unset)."""
    return split_write_keys((os.environ if env is None else env).get(WRITE_KEY_VARIABLE, ""))


def server_write_keys() -> tuple[str, ...]:
    """The collector's secret server write keys, `LAKEMAIL_SERVER_WRITE_KEY` (comma-separated; empty when
    unset): their messages may suppress shoppers, the public keys' may not."""
    return split_write_keys(os.environ.get(SERVER_WRITE_KEY_VARIABLE, ""))


def api_key() -> str | None:
    """The profile API's bearer key, `LAKEMAIL_API_KEY` (None when unset: the profile API is off)."""
    return os.environ.get(API_KEY_VARIABLE, "").strip() or None


def esp_webhook_key() -> str | None:
    """The providers' webhooks' secret, `LAKEMAIL_ESP_WEBHOOK_KEY` (None when unset: the webhooks 503)."""
    return os.environ.get(ESP_WEBHOOK_KEY_VARIABLE) or None


def sendgrid_webhook_public_key() -> str | None:
    """SendGrid's Signed Event Webhook key, `LAKEMAIL_SENDGRID_WEBHOOK_PUBLIC_KEY` (base64 DER), or None."""
    return os.environ.get(SENDGRID_PUBLIC_KEY_VARIABLE) or None


WINDOW_VARIABLE = "LAKEMAIL_ATTRIBUTION_WINDOW"


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
