"""Configuration: defaults, .env, and errors that name the variable."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from orchestration.definitions import build_defs, email_resource
from orchestration.schedules import profiles_schedule
from orchestration.settings import (
    DECISION_VARIABLES,
    Settings,
    SettingsError,
    api_key,
    ensure_secret,
    known_variables,
    parse_duration,
    read_dotenv,
    record_decisions,
    write_keys,
)
from orchestration.supervisor import DEMO_DELAYS, DEMO_POLICY, Plan, _environment
from resources.shop import ShopResource
from transforms.triggers.policies import Policy, quiet_until
from transforms.triggers.rules import RULES


def test_defaults_live_under_lakemail_home(tmp_path: Path) -> None:
    settings = Settings.from_env({"LAKEMAIL_HOME": str(tmp_path)}, dotenv=None)
    assert settings.lake_uri == str(tmp_path / "lake")
    assert settings.landing_uri == str(tmp_path / "landing")
    assert settings.dagster_home == tmp_path / "dagster_home"
    assert (settings.poll_seconds, settings.esp) == (2.0, "sandbox")
    assert (settings.max_batch_mb, settings.max_file_mb) == (192, 256)
    assert Settings.from_env({"LAKEMAIL_MAX_FILE_MB": "64"}, dotenv=None).max_file_mb == 64


def test_dotenv_is_read_and_the_environment_wins(tmp_path: Path) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text("# comment\nexport LAKEMAIL_POLL_SECONDS=3\nLAKEMAIL_LAKE_URI='/somewhere/lake'\n\n")
    settings = Settings.from_env({"LAKEMAIL_POLL_SECONDS": "1"}, dotenv=dotenv)
    assert (settings.poll_seconds, settings.lake_uri) == (1.0, "/somewhere/lake")


def test_secrets_in_dotenv_reach_the_readers_of_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`.env` reached Settings only, not the process environment the secrets are read from: with the
    provider's key there every run failed resolving dg.EnvVar, the collector refused to start without a
    write key, the profile API was off and a local secret replaced LAKEMAIL_SECRET."""
    dotenv = {
        "LAKEMAIL_HOME": str(tmp_path / "home"),
        "LAKEMAIL_ESP_API_KEY": "key-from-dotenv",
        "LAKEMAIL_WRITE_KEY": "write-key-from-dotenv",
        "LAKEMAIL_API_KEY": "profile-key-from-dotenv",
        "LAKEMAIL_SECRET": "secret-from-dotenv",
    }
    for name in dotenv:  # set, then deleted: monkeypatch removes what Settings.load sets afterwards
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    monkeypatch.setenv("LAKEMAIL_WRITE_KEY", "write-key-from-env")  # the environment wins
    (tmp_path / ".env").write_text("".join(f"{name}={value}\n" for name, value in dotenv.items()))
    monkeypatch.chdir(tmp_path)
    settings = Settings.load(recorded=False)
    assert dg.EnvVar("LAKEMAIL_ESP_API_KEY").get_value() == "key-from-dotenv"
    assert email_resource(settings).api_key == dg.EnvVar("LAKEMAIL_ESP_API_KEY")
    assert (write_keys(), api_key()) == (("write-key-from-env",), "profile-key-from-dotenv")
    assert ensure_secret(settings.home) == "secret-from-dotenv"
    assert not (settings.home / ".secret").exists()


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"LAKEMAIL_POLL_SECONDS": "often"}, "LAKEMAIL_POLL_SECONDS"),
        ({"LAKEMAIL_POLL_SECONDS": "0"}, "LAKEMAIL_POLL_SECONDS"),
        ({"LAKEMAIL_ESP": "carrier-pigeon"}, "LAKEMAIL_ESP"),
        ({"LAKEMAIL_POL_SECONDS": "2"}, "LAKEMAIL_POL_SECONDS"),
        ({"LAKEMAIL_ABANDONED_CART_DELAY": "soon"}, "LAKEMAIL_ABANDONED_CART_DELAY"),
        ({"LAKEMAIL_ABANDONED_CRAT_DELAY": "2m"}, "LAKEMAIL_ABANDONED_CRAT_DELAY"),
        ({"LAKEMAIL_NO_SUCH_KIND_DELAY": "2m"}, "LAKEMAIL_NO_SUCH_KIND_DELAY"),
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
    "sender",
    [
        "Acme",
        "Acme <shop>",
        "a@b.example, c@d.example",
        "Acme <a@b.example>, <c@d.example>",
        "A\n<a@b.example>",
    ],
)
def test_a_from_that_is_not_one_address_fails_at_start_up(sender: str) -> None:
    """Every email would be refused by the provider (`failed_permanent`), long after start-up."""
    with pytest.raises(SettingsError, match="LAKEMAIL_FROM"):
        Settings.from_env({"LAKEMAIL_FROM": sender}, dotenv=None)


def test_a_from_naming_a_shop_with_punctuation_is_taken() -> None:
    settings = Settings.from_env({"LAKEMAIL_FROM": "Acme, Inc. <shop@acme.example>"}, dotenv=None)
    assert settings.sender == "Acme, Inc. <shop@acme.example>"
    assert Settings.from_env({}, dotenv=None).sender == Settings.sender  # the default is one address


@pytest.mark.parametrize("key", ["pm-token\n", " pm-token", "SG.k\u2019", "SG k", "tok\x00"])
def test_a_malformed_provider_key_fails_naming_the_variable_not_the_key(key: str) -> None:
    """A header cannot carry it: every email failed (or the run crashed) long after start-up."""
    env = {"LAKEMAIL_ESP": "sandbox", "LAKEMAIL_ESP_API_KEY": key}
    with pytest.raises(SettingsError, match="LAKEMAIL_ESP_API_KEY must be printable ASCII") as raised:
        Settings.from_env(env, dotenv=None)
    assert key.strip() not in str(raised.value)
    ok = Settings.from_env({**env, "LAKEMAIL_ESP_API_KEY": "SG.a-b_c.D~9+/="}, dotenv=None)
    assert ok.esp_api_key_set


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


def test_a_misspelled_trigger_delay_is_named_with_the_likely_one() -> None:
    """The README promises unknown variables stop start-up; a typo'd delay was taken silently (#13)."""
    with pytest.raises(SettingsError) as error:
        Settings.from_env({"LAKEMAIL_ABANDONED_CRAT_DELAY": "2m"}, dotenv=None)
    assert str(error.value).startswith(
        "LAKEMAIL_ABANDONED_CRAT_DELAY is not a lakemail setting (did you mean LAKEMAIL_ABANDONED_CART_DELAY?"
    )


def test_every_trigger_kind_has_its_delay_variable() -> None:
    delays = {f"LAKEMAIL_{kind.upper()}_DELAY" for kind in RULES}
    assert delays <= known_variables() and delays <= set(DECISION_VARIABLES)
    settings = Settings.from_env(dict.fromkeys(delays, "5m"), dotenv=None)
    assert settings.delays == dict.fromkeys(delays, timedelta(minutes=5))


def home_env(tmp_path: Path, **variables: str) -> dict[str, str]:
    return {"LAKEMAIL_HOME": str(tmp_path), **variables}


def record_demo(tmp_path: Path, dotenv: dict[str, str] | None = None) -> None:
    """What `lakemail up` records with its demo delays (its children's environment has them)."""
    up = Settings.from_env(home_env(tmp_path, **(dotenv or {})), dotenv=None)
    record_decisions(up, {**DEMO_DELAYS, **DEMO_POLICY, "LAKEMAIL_HOME": str(tmp_path)}, demo=True)


def test_every_process_of_a_home_decides_with_what_up_recorded(tmp_path: Path) -> None:
    record_demo(tmp_path)
    alone = Settings.from_env(home_env(tmp_path), dotenv=None, recorded=True)
    assert alone.delays == {name: parse_duration(name, text) for name, text in DEMO_DELAYS.items()}
    assert not alone.policy.quiet_hours and alone.policy.cap_short == (1, timedelta(minutes=2))
    same = Settings.from_env(
        home_env(tmp_path, LAKEMAIL_ABANDONED_CART_DELAY="120s"), dotenv=None, recorded=True
    )
    assert same.delays == alone.delays  # the same delay, spelled otherwise
    # Elsewhere, or without asking for the record (`up` itself), the environment alone decides.
    assert Settings.from_env(home_env(tmp_path / "other"), dotenv=None, recorded=True).delays == {}
    assert Settings.from_env(home_env(tmp_path), dotenv=None).delays == {}


@pytest.mark.parametrize(
    ("variable", "value", "recorded"),
    [
        ("LAKEMAIL_ABANDONED_CART_DELAY", "1h", "'2m'"),
        ("LAKEMAIL_QUIET_HOURS", "21-08", "'off'"),
        ("LAKEMAIL_WELCOME_DELAY", "5m", "its default"),
    ],
)
def test_a_variable_that_decides_otherwise_than_the_record_fails(
    tmp_path: Path, variable: str, value: str, recorded: str
) -> None:
    record_demo(tmp_path)
    with pytest.raises(SettingsError) as error:
        Settings.from_env(home_env(tmp_path, **{variable: value}), dotenv=None, recorded=True)
    message = str(error.value)
    assert message.startswith(f"{variable}={value!r} conflicts with {recorded}, which `lakemail up` recorded")
    assert str(tmp_path / "settings.json") in message


def test_up_records_the_environment_and_dotenv_over_its_demo_values(tmp_path: Path) -> None:
    record_demo(tmp_path, {"LAKEMAIL_ABANDONED_CART_DELAY": "7m"})
    settings = Settings.from_env(home_env(tmp_path), dotenv=None, recorded=True)
    assert settings.delays["LAKEMAIL_ABANDONED_CART_DELAY"] == timedelta(minutes=7)
    assert settings.delays["LAKEMAIL_BROWSE_ABANDONMENT_DELAY"] == timedelta(minutes=3)
    assert not list(tmp_path.glob(".settings.json.*"))  # written through a temporary name


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ("{not json", "settings.json"),
        ('{"variables": {"LAKEMAIL_ABANDONED_CART_DELAY": 2}}', "settings.json"),
        ('{"variables": {"LAKEMAIL_X": "1"}}', "LAKEMAIL_X"),
    ],
)
def test_a_damaged_record_fails_naming_it(tmp_path: Path, body: str, named: str) -> None:
    (tmp_path / "settings.json").write_text(body)
    with pytest.raises(SettingsError, match=named):
        Settings.from_env(home_env(tmp_path), dotenv=None, recorded=True)


@pytest.mark.parametrize(
    ("esp", "public_url", "fails"),
    [
        ("sendgrid", None, True),  # the links named the provider's API or the local sandbox
        ("postmark", None, True),
        ("webhook", None, True),
        ("sendgrid", "http://shop.example.com", True),
        ("sendgrid", "https://", True),
        ("sendgrid", "ftp://shop.example.com", True),
        ("sendgrid", "https://shop.example.com", False),
        ("sandbox", None, False),
        ("sandbox", "http://127.0.0.1:8025", False),
        ("sandbox", "file:///etc", True),
    ],
)
def test_a_real_provider_needs_an_https_public_url_at_start_up(
    esp: str, public_url: str | None, fails: bool
) -> None:
    """With a real provider, unsubscribe links fell back to the provider's URL or the sandbox (#13, 13)."""
    env = {"LAKEMAIL_ESP": esp, "LAKEMAIL_ESP_URL": "https://api.example.com"}
    if public_url is not None:
        env["LAKEMAIL_PUBLIC_URL"] = public_url
    if fails:
        with pytest.raises(SettingsError, match="LAKEMAIL_PUBLIC_URL"):
            Settings.from_env(env, dotenv=None)
    else:
        assert Settings.from_env(env, dotenv=None).public_url == public_url


PUBLIC_OK = "https://mail.shop.example"


@pytest.mark.parametrize("name", ["LAKEMAIL_PUBLIC_URL", "LAKEMAIL_CLICK_URL"])
@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("https://mail.shop.example/?utm_source=mail", "query or a fragment"),  # token in the query
        ("https://mail.shop.example/#footer", "query or a fragment"),  # token in the fragment
        ("https://mail.shop.example/?", "query or a fragment"),
        ("https://mailer:s3cret@mail.shop.example", "without a user name or password"),
        ("https://mail.shop.example/links ", "spaces, quotes"),
        ("https://mail.shop.example/a b", "spaces, quotes"),
    ],
)
def test_a_link_base_no_email_could_carry_fails_at_start_up(name: str, url: str, says: str) -> None:
    """Found by review: a query or a fragment put every email's unsubscribe and click token after it (each
    link led to the base URL's own page, never to /unsubscribe/<token>: nobody could unsubscribe), and a
    user name or a space made the renderer abort every email (`invalid_unsubscribe_url`) when it was sent."""
    env = {"LAKEMAIL_ESP": "sendgrid", "LAKEMAIL_ESP_API_KEY": "k", "LAKEMAIL_PUBLIC_URL": PUBLIC_OK}
    with pytest.raises(SettingsError, match=f"{name}.*{says}") as refused:
        Settings.from_env({**env, name: url}, dotenv=None)
    assert "s3cret" not in str(refused.value)


@pytest.mark.parametrize(
    "url", [PUBLIC_OK, "https://mail.shop.example/lakemail/", "HTTPS://shop.example:8443"]
)
def test_a_link_base_with_a_path_or_a_port_is_taken(url: str) -> None:
    env = {"LAKEMAIL_ESP": "sendgrid", "LAKEMAIL_ESP_API_KEY": "k", "LAKEMAIL_PUBLIC_URL": url}
    settings = Settings.from_env(env, dotenv=None)
    assert (settings.public_url, settings.click_url) == (url, url)
    sandbox = {"LAKEMAIL_PUBLIC_URL": "http://127.0.0.1:8025", "LAKEMAIL_CLICK_URL": "http://127.0.0.1:8000"}
    assert Settings.from_env(sandbox, dotenv=None).click_url == "http://127.0.0.1:8000"


def test_definitions_never_link_to_the_providers_url(tmp_path: Path) -> None:
    settings = Settings(
        home=tmp_path,
        lake_uri=str(tmp_path / "lake"),
        landing_uri=str(tmp_path / "landing"),
        esp="sendgrid",
        esp_url="https://api.sendgrid.com",
    )
    with pytest.raises(SettingsError, match="LAKEMAIL_PUBLIC_URL"):
        build_defs(settings)
    shop = (build_defs(replace(settings, public_url="https://shop.example.com")).resources or {})["shop"]
    assert isinstance(shop, ShopResource)
    assert shop.unsubscribe_url("tok").startswith("https://shop.example.com/unsubscribe/")


@pytest.mark.parametrize("name", ["LAKEMAIL_LANDING_URI", "LAKEMAIL_LAKE_URI", "LAKEMAIL_STATE_URI"])
def test_a_folder_setting_that_names_a_file_is_a_start_up_error(tmp_path: Path, name: str) -> None:
    """A landing zone that was a file listed nothing: every run succeeded taking no file (found by QA)."""
    file = tmp_path / "not-a-folder"
    file.write_text("x")
    with pytest.raises(SettingsError, match=f"{name}=.*is not a folder"):
        Settings.from_env({"LAKEMAIL_HOME": str(tmp_path), name: str(file)}, dotenv=None)
    for fine in (str(tmp_path / "missing"), f"file://{tmp_path}/other", "s3://bucket/lake"):  # made when used
        assert Settings.from_env({"LAKEMAIL_HOME": str(tmp_path), name: fine}, dotenv=None)


@pytest.mark.parametrize("text", ["90m", "59m", "36h", "7d", "0m", "90s", "2.5m", "2d"])
def test_a_profiles_refresh_no_schedule_can_repeat_evenly_is_refused(text: str) -> None:
    env = {"LAKEMAIL_PROFILES_REFRESH": text}
    with pytest.raises(SettingsError, match=r"LAKEMAIL_PROFILES_REFRESH=.*dividing 60.*dividing 24.*1d"):
        Settings.from_env(env, dotenv=None)


@pytest.mark.parametrize(
    ("text", "cron"),
    [("1m", "*/1 * * * *"), ("15m", "*/15 * * * *"), ("60s", "*/1 * * * *"), ("6h", "0 */6 * * *")],
)
def test_a_profiles_refresh_that_divides_an_hour_or_a_day_is_its_schedule(text: str, cron: str) -> None:
    every = Settings.from_env({"LAKEMAIL_PROFILES_REFRESH": text}, dotenv=None).profiles_refresh
    assert profiles_schedule(every).cron_schedule == cron
    assert Settings.from_env({"LAKEMAIL_PROFILES_REFRESH": "1d"}, dotenv=None).profiles_refresh == timedelta(
        days=1
    )


DURATION_VARIABLES = [
    "LAKEMAIL_ATTRIBUTION_WINDOW",
    "LAKEMAIL_ABANDONED_CART_DELAY",
    "LAKEMAIL_WELCOME_DELAY",
    "LAKEMAIL_PROFILES_REFRESH",
    "LAKEMAIL_FREQUENCY_CAP",
]


def duration_env(name: str, text: str) -> dict[str, str]:
    return {name: f"1/{text},3/7d" if name == "LAKEMAIL_FREQUENCY_CAP" else text}


@pytest.mark.parametrize("name", DURATION_VARIABLES)
@pytest.mark.parametrize("text", ["99999999999d", "1000000d", "3651d", "87601h", "9" * 400 + "d"])
def test_a_duration_past_ten_years_fails_naming_the_variable(name: str, text: str) -> None:
    """Found by review: `99999999999d` stopped start-up with an OverflowError traceback, and `1000000d`
    was taken, to raise OverflowError in every decide run (the frequency cap's `now - window`)."""
    with pytest.raises(SettingsError, match=rf"{name}=.* is longer than 3650d \(ten years\)"):
        Settings.from_env(duration_env(name, text), dotenv=None)


def test_a_duration_of_ten_years_is_taken() -> None:
    assert parse_duration("X", "3650d") == timedelta(days=3650)
    settings = Settings.from_env({"LAKEMAIL_POST_PURCHASE_DELAY": "87600h"}, dotenv=None)
    assert settings.delays == {"LAKEMAIL_POST_PURCHASE_DELAY": timedelta(days=3650)}


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("LAKEMAIL_ATTRIBUTION_WINDOW", "0s"),
        ("LAKEMAIL_ATTRIBUTION_WINDOW", "0d"),
        ("LAKEMAIL_ATTRIBUTION_WINDOW", "0.0000001s"),  # under a microsecond: 0
        ("LAKEMAIL_FREQUENCY_CAP", "1/0s,3/7d"),
        ("LAKEMAIL_FREQUENCY_CAP", "1/16h,3/0m"),
    ],
)
def test_a_window_of_zero_fails_naming_the_variable(name: str, text: str) -> None:
    """Found by review: an attribution window of 0 credited no order to any email (PRODUCT.md section 7:
    the last send within the window before the order), and a frequency cap over 0 s capped nobody."""
    with pytest.raises(SettingsError, match=rf"{name}=.* must be longer than 0"):
        Settings.from_env({name: text}, dotenv=None)


def test_a_short_window_is_taken() -> None:
    assert Settings.from_env({"LAKEMAIL_ATTRIBUTION_WINDOW": "1ms"}, dotenv=None).attribution_window == (
        timedelta(milliseconds=1)
    )
    policy = Settings.from_env({"LAKEMAIL_FREQUENCY_CAP": "1/1s,3/1m"}, dotenv=None).policy
    assert (policy.cap_short, policy.cap_long) == ((1, timedelta(seconds=1)), (3, timedelta(minutes=1)))


@pytest.mark.parametrize("text", ["8-08", "08-8", "0-00"])
def test_quiet_hours_that_start_as_they_end_fail_naming_the_variable(text: str) -> None:
    """Found by review: `8-08` was taken (the hours compared as text), and quiet hours ending as they start
    never end: every marketing email was deferred to 08:00, again at 08:00, until it expired."""
    with pytest.raises(SettingsError, match=r"LAKEMAIL_QUIET_HOURS=.*two different hours"):
        Settings.from_env({"LAKEMAIL_QUIET_HOURS": text}, dotenv=None)


@pytest.mark.parametrize(
    "cap", ["\u00b2/16h,3/7d", "1/16h,1001/7d", f"1/16h,{10**40}/7d", "9" * 5000 + "/16h,3/7d"]
)
def test_a_frequency_cap_count_no_decision_can_use_fails_naming_the_variable(cap: str) -> None:
    """Found by review: `²` (which isdigit() takes) stopped start-up with a ValueError traceback, and a
    count past what Polars compares (10**40) was taken, to fail every decide run."""
    with pytest.raises(SettingsError, match=r"LAKEMAIL_FREQUENCY_CAP=.*counts from 1 to 1000"):
        Settings.from_env({"LAKEMAIL_FREQUENCY_CAP": cap}, dotenv=None)
    policy = Settings.from_env({"LAKEMAIL_FREQUENCY_CAP": "1000/1h,1000/1d"}, dotenv=None).policy
    assert (policy.cap_short[0], policy.cap_long[0]) == (1000, 1000)


@pytest.mark.parametrize("text", ["nan", "inf", "-inf", "NaN", "Infinity"])
def test_a_poll_interval_that_is_no_number_of_seconds_fails_naming_the_variable(text: str) -> None:
    """Found by review: nan and inf were taken, and building the sensors raised ValueError / OverflowError
    (round) each time a process started, a traceback naming no variable."""
    with pytest.raises(SettingsError, match=r"LAKEMAIL_POLL_SECONDS=.*must be a number greater than 0"):
        Settings.from_env({"LAKEMAIL_POLL_SECONDS": text}, dotenv=None)


@pytest.mark.parametrize("name", ["LAKEMAIL_MAX_BATCH_MB", "LAKEMAIL_MAX_FILE_MB"])
@pytest.mark.parametrize("text", ["0.5", "1.5", "nan", "inf", "-3", "0", "", "64MB"])
def test_a_size_that_is_no_whole_number_of_mb_fails_naming_the_variable(name: str, text: str) -> None:
    """Found by review: `0.5` was taken as 0 MB (`1.5` as 1), and nan or inf stopped start-up with a
    traceback naming no variable."""
    with pytest.raises(SettingsError, match=rf"{name}=.*must be a whole number of MB, at least 1"):
        Settings.from_env({name: text}, dotenv=None)


def test_sizes_and_the_poll_interval_are_taken() -> None:
    env = {"LAKEMAIL_MAX_BATCH_MB": " 64 ", "LAKEMAIL_MAX_FILE_MB": "1", "LAKEMAIL_POLL_SECONDS": "0.5"}
    settings = Settings.from_env(env, dotenv=None)
    assert (settings.max_batch_mb, settings.max_file_mb, settings.poll_seconds) == (64, 1, 0.5)


@pytest.mark.parametrize(
    "env",
    [
        {"LAKEMAIL_ESP_URL": "notaurl"},
        {"LAKEMAIL_ESP_URL": "ftp://sandbox.example"},
        {"LAKEMAIL_ESP_URL": "http://"},
        {
            "LAKEMAIL_ESP": "sendgrid",
            "LAKEMAIL_ESP_URL": "api.sendgrid.com",
            "LAKEMAIL_PUBLIC_URL": PUBLIC_OK,
        },
        {"LAKEMAIL_ESP": "webhook", "LAKEMAIL_PUBLIC_URL": PUBLIC_OK},
    ],
)
def test_a_provider_no_send_could_reach_fails_at_start_up(env: dict[str, str]) -> None:
    """Found by review: such a LAKEMAIL_ESP_URL, or the webhook provider without one, was taken at start-up,
    and then the provider refused it in every run's send step (each decide run failed)."""
    with pytest.raises(SettingsError, match="LAKEMAIL_ESP_URL"):
        Settings.from_env(env, dotenv=None)


def test_a_provider_url_is_taken_as_it_was() -> None:
    env = {
        "LAKEMAIL_ESP": "webhook",
        "LAKEMAIL_PUBLIC_URL": PUBLIC_OK,
        "LAKEMAIL_ESP_URL": "https://hook.example/x",
    }
    settings = Settings.from_env(env, dotenv=None)
    assert email_resource(settings).provider().name == "webhook"
    assert Settings.from_env({"LAKEMAIL_ESP_URL": "http://127.0.0.1:8025"}, dotenv=None).esp_url


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://lake:s3cret#x@db.example/dagster",
        "postgresql://lake:s3cret?x@db.example/dagster",
        "postgresql://lake:s3/cret@db.example/dagster",
        "postgresql://lake:s3cret@[db.example/dagster",
        "lake:s3cret@db.example:5432/dagster",
        "mysql://lake:s3cret@db.example/dagster",
    ],
)
def test_a_malformed_dagster_pg_url_fails_without_its_password(url: str) -> None:
    """Found by review: a password holding `#`, `?` or `/` (not percent-encoded) was echoed whole in the
    start-up error, as was one in a URL without a scheme, and a `[` raised ValueError (a traceback)."""
    with pytest.raises(SettingsError, match=r"LAKEMAIL_DAGSTER_PG_URL=.*must be a PostgreSQL URL") as refused:
        Settings.from_env({"LAKEMAIL_DAGSTER_PG_URL": url}, dotenv=None)
    assert "s3" not in str(refused.value) and "cret" not in str(refused.value)


def test_the_dagster_pg_url_is_never_in_the_settings_repr() -> None:
    env = {"LAKEMAIL_DAGSTER_PG_URL": "postgresql://lake:s3cret@db.example:5432/dagster"}
    settings = Settings.from_env(env, dotenv=None)
    assert settings.dagster_pg_url == "postgresql+psycopg2://lake:s3cret@db.example:5432/dagster"
    assert "s3cret" not in repr(settings)


def test_relative_folders_are_where_the_command_ran_for_up_and_its_children(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by review: relative folder URIs were kept as written, and `up`'s children (the runners, the
    daemon, the collector) run in the project's folder: `LAKEMAIL_LAKE_URI=lake` gave them another lake than
    `up`, `lakemail sql` and `status` run where the operator is."""
    env = {
        "LAKEMAIL_HOME": "home",
        "LAKEMAIL_LAKE_URI": "lake",
        "LAKEMAIL_LANDING_URI": "file://landing",
        "LAKEMAIL_STATE_URI": "./state",
    }
    monkeypatch.chdir(tmp_path)
    for name, value in env.items():  # `up`'s own environment, which its children inherit
        monkeypatch.setenv(name, value)
    settings = Settings.from_env(env, dotenv=None)
    folders = (settings.home, settings.lake_uri, settings.landing_uri, settings.state_store_uri)
    assert folders == (tmp_path / "home", *(str(tmp_path / name) for name in ("lake", "landing", "state")))
    plan = Plan(3000, 1, 1.0, False, 8025, demo_delays=False, runner=True, sandbox=False)
    children = _environment(settings, settings.dagster_home, plan)
    (tmp_path / "project").mkdir()
    monkeypatch.chdir(tmp_path / "project")  # where `up` starts them
    theirs = Settings.from_env(children, dotenv=None)
    assert (theirs.home, theirs.lake_uri, theirs.landing_uri, theirs.state_store_uri) == folders


def test_empty_folder_settings_are_their_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Found by review: an empty LAKEMAIL_HOME (`LAKEMAIL_HOME=` in `.env`) put the home in the folder a
    command ran in, not ./data, and an empty LAKEMAIL_LAKE_URI put the lake's tables there."""
    monkeypatch.chdir(tmp_path)
    empty = dict.fromkeys(["LAKEMAIL_HOME", "LAKEMAIL_LAKE_URI", "LAKEMAIL_STATE_URI"], "")
    settings = Settings.from_env({**empty, "LAKEMAIL_LANDING_URI": " "}, dotenv=None)
    home = tmp_path / "data"
    assert (settings.home, settings.lake_uri, settings.landing_uri, settings.state_store_uri) == (
        home,
        str(home / "lake"),
        str(home / "landing"),
        str(home / "state"),
    )


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"LAKEMAIL_WRITE_KEY": ""}, "LAKEMAIL_WRITE_KEY is set but holds no key"),
        ({"LAKEMAIL_WRITE_KEY": " , ,"}, "LAKEMAIL_WRITE_KEY is set but holds no key"),
        (
            {"LAKEMAIL_WRITE_KEY": "site-key, shop:s3cret"},
            "LAKEMAIL_WRITE_KEY must not hold a key with a ':'",
        ),
        (
            {
                "LAKEMAIL_WRITE_KEY": "site-key,s3cret-profile-key-0001",
                "LAKEMAIL_API_KEY": " s3cret-profile-key-0001",
            },
            "LAKEMAIL_API_KEY must not be a write key",
        ),
        (
            {"LAKEMAIL_WRITE_KEY": "s3cret-hmac", "LAKEMAIL_SECRET": "s3cret-hmac"},
            "LAKEMAIL_SECRET must not be a write key",
        ),
    ],
)
def test_write_keys_the_collector_cannot_take_or_that_give_a_secret_away_fail(
    env: dict[str, str], says: str
) -> None:
    """Found by review: an empty LAKEMAIL_WRITE_KEY was taken and `lakemail up` announced it while its
    collector exited for want of a key; a key with a `:` was taken, and every request of Segment's libraries
    (the key as HTTP Basic user, which ends at the first `:`) was refused 401; and a profile API key or
    LAKEMAIL_SECRET equal to a write key, which every page's snippet carries, was taken: anyone could read
    every shopper's profile, or sign an unsubscribe link for any shopper."""
    with pytest.raises(SettingsError, match=says) as refused:
        Settings.from_env(env, dotenv=None)
    assert "s3cret" not in str(refused.value)


def test_write_keys_with_blanks_around_them_are_taken() -> None:
    env = {"LAKEMAIL_WRITE_KEY": " site-key , app-key,", "LAKEMAIL_API_KEY": "another-key-0123456789"}
    assert Settings.from_env(env, dotenv=None).esp == "sandbox"
    assert write_keys(env) == ("site-key", "app-key")


def test_dotenv_values_are_read_as_shells_read_them(tmp_path: Path) -> None:
    """Found by review: a comment after a value was part of it (`site-key  # the shop's site` the write key,
    refused to every client), and quotes were stripped one by one at either end: `"Acme" <...>` became the
    sender `Acme" <...>`, a broken name in every email's From."""
    dotenv = tmp_path / ".env"
    dotenv.write_text(
        "LAKEMAIL_WRITE_KEY=site-key  # the shop's site\n"
        'LAKEMAIL_FROM="Acme" <shop@acme.example>\n'
        "LAKEMAIL_LAKE_URI='/somewhere/lake # not a comment'  # a comment\n"
        'LAKEMAIL_ESP_URL="https://api.example.com/#x"\n'
        "LAKEMAIL_API_KEY=key#with-a-hash-0123\n"
        "LAKEMAIL_PUBLIC_URL=\n"
    )
    settings = Settings.from_env({}, dotenv=dotenv)
    assert write_keys(read_dotenv(dotenv)) == ("site-key",)
    assert (settings.sender, settings.lake_uri) == (
        '"Acme" <shop@acme.example>',
        "/somewhere/lake # not a comment",
    )
    assert read_dotenv(dotenv)["LAKEMAIL_ESP_URL"] == "https://api.example.com/#x"
    assert read_dotenv(dotenv)["LAKEMAIL_API_KEY"] == "key#with-a-hash-0123"
    assert read_dotenv(dotenv)["LAKEMAIL_PUBLIC_URL"] == ""


@pytest.mark.parametrize(
    ("folders", "inner", "outer"),
    [
        (
            {"LAKEMAIL_LAKE_URI": "both", "LAKEMAIL_LANDING_URI": "both"},
            "LAKEMAIL_LANDING_URI",
            "LAKEMAIL_LAKE_URI",
        ),
        (
            {"LAKEMAIL_LAKE_URI": "lake", "LAKEMAIL_LANDING_URI": "lake/in"},
            "LAKEMAIL_LANDING_URI",
            "LAKEMAIL_LAKE_URI",
        ),
        ({"LAKEMAIL_STATE_URI": "home/landing/state"}, "LAKEMAIL_STATE_URI", "LAKEMAIL_LANDING_URI"),
        ({"LAKEMAIL_LAKE_URI": "file://state/../home/state/lake"}, "LAKEMAIL_LAKE_URI", "LAKEMAIL_STATE_URI"),
    ],
)
def test_folders_inside_one_another_fail_naming_both(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, folders: dict[str, str], inner: str, outer: str
) -> None:
    """Found by review: a landing zone in the lake was taken, and its landed `events/` files sat in the
    events table's folder, where the full vacuum of erasure and maintenance deletes what no commit names."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SettingsError, match=f"{inner}=.* is inside {outer}=.*folders of their own"):
        Settings.from_env({"LAKEMAIL_HOME": "home", **folders}, dotenv=None)


def test_folders_side_by_side_or_in_an_object_store_are_taken(tmp_path: Path) -> None:
    env = {"LAKEMAIL_HOME": str(tmp_path), "LAKEMAIL_LAKE_URI": "s3://bucket/lake"}
    assert Settings.from_env(env, dotenv=None).landing_uri == str(tmp_path / "landing")
    env = {
        "LAKEMAIL_LANDING_URI": str(tmp_path / "lake-landing"),
        "LAKEMAIL_LAKE_URI": str(tmp_path / "lake"),
    }
    assert Settings.from_env(env, dotenv=None).lake_uri == str(tmp_path / "lake")


def test_a_home_that_is_a_file_fails_naming_it(tmp_path: Path) -> None:
    """Found by review: `lakemail up` stopped with a FileExistsError traceback, the others blamed
    settings.json (`Not a directory`)."""
    (tmp_path / "home").write_text("x")
    for recorded in (False, True):
        with pytest.raises(SettingsError, match=r"LAKEMAIL_HOME=.* is not a folder"):
            Settings.from_env({"LAKEMAIL_HOME": str(tmp_path / "home")}, dotenv=None, recorded=recorded)


@pytest.mark.parametrize("port", ["0", "65536", "99999"])
@pytest.mark.parametrize("name", ["LAKEMAIL_PUBLIC_URL", "LAKEMAIL_CLICK_URL", "LAKEMAIL_ESP_URL"])
def test_a_url_with_a_port_no_link_or_send_can_reach_fails_naming_it(name: str, port: str) -> None:
    """Found by review: `https://mail.shop.example:99999` was taken, and every unsubscribe and click link
    pointed nowhere (nobody could unsubscribe); as LAKEMAIL_ESP_URL every send failed to connect."""
    env = {"LAKEMAIL_ESP": "sendgrid", "LAKEMAIL_ESP_API_KEY": "k", "LAKEMAIL_PUBLIC_URL": PUBLIC_OK}
    with pytest.raises(SettingsError, match=rf"{name}.*(port|ports) .*1 to 65535"):
        Settings.from_env({**env, name: f"https://mail.shop.example:{port}"}, dotenv=None)
    assert Settings.from_env({**env, name: "https://mail.shop.example:65535"}, dotenv=None)
