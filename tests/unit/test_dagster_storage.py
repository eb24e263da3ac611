"""Dagster's storage (#18): SQLite under the home by default, PostgreSQL at LAKEMAIL_DAGSTER_PG_URL."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from orchestration.instance import DAGSTER_YAML, PG_URL_VARIABLE, POSTGRES_STORAGE, prepare_dagster_home
from orchestration.settings import Settings, SettingsError

PASSWORD = "s3cr3t-pw"


@pytest.mark.parametrize(
    ("given", "used"),
    [
        ("postgresql://u:pw@db:5432/dagster", "postgresql+psycopg2://u:pw@db:5432/dagster"),
        ("postgres://u@db/dagster", "postgresql+psycopg2://u@db/dagster"),
        (
            "postgresql+psycopg2://u@db/dagster?sslmode=require",
            "postgresql+psycopg2://u@db/dagster?sslmode=require",
        ),
        ("", None),
    ],
)
def test_the_url_names_the_driver_dagster_postgres_installs(given: str, used: str | None) -> None:
    # SQLAlchemy 2.1 takes a bare postgresql:// for psycopg 3, which dagster-postgres does not install.
    settings = Settings.from_env({PG_URL_VARIABLE: given}, dotenv=None)
    assert settings.dagster_pg_url == used


@pytest.mark.parametrize(
    "url",
    [
        f"mysql://u:{PASSWORD}@db/dagster",
        f"postgresql://u:{PASSWORD}@db:port/dagster",
        f"postgresql://u:{PASSWORD}@db:5432/",
        "db.example.com:5432",
    ],
)
def test_a_bad_url_fails_naming_the_variable_but_never_the_password(url: str) -> None:
    with pytest.raises(SettingsError, match=PG_URL_VARIABLE) as raised:
        Settings.from_env({PG_URL_VARIABLE: url}, dotenv=None)
    assert PASSWORD not in str(raised.value)


def test_dagster_yaml_names_the_variable_and_never_holds_the_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DAGSTER_HOME", "unset")  # restored afterwards: prepare_dagster_home sets both
    monkeypatch.setenv(PG_URL_VARIABLE, "unset")
    url = f"postgresql://lakemail:{PASSWORD}@db.internal:5432/dagster"
    # From `.env` only: the processes that open the instance still find it in their environment.
    (tmp_path / ".env").write_text(f"{PG_URL_VARIABLE}={url}\n")
    settings = Settings.from_env({"LAKEMAIL_HOME": str(tmp_path)}, dotenv=tmp_path / ".env")
    home = prepare_dagster_home(settings)
    text = (home / "dagster.yaml").read_text()
    assert PASSWORD not in text and "db.internal" not in text
    assert yaml.safe_load(text)["storage"] == POSTGRES_STORAGE
    assert text.startswith(DAGSTER_YAML)  # everything else as with SQLite
    assert (
        os.environ[PG_URL_VARIABLE] == f"postgresql+psycopg2://lakemail:{PASSWORD}@db.internal:5432/dagster"
    )


def test_sqlite_stays_the_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DAGSTER_HOME", "unset")
    settings = Settings.from_env({"LAKEMAIL_HOME": str(tmp_path)}, dotenv=None)
    config = yaml.safe_load((prepare_dagster_home(settings) / "dagster.yaml").read_text())
    assert settings.dagster_pg_url is None and "storage" not in config


def test_every_process_of_a_home_opens_the_storage_up_chose(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DAGSTER_HOME", "unset")
    monkeypatch.setenv(PG_URL_VARIABLE, "unset")
    home, url = {"LAKEMAIL_HOME": str(tmp_path)}, {PG_URL_VARIABLE: "postgresql://u@db/dagster"}
    prepare_dagster_home(Settings.from_env(home | url, dotenv=None))  # `up` chose PostgreSQL
    assert Settings.from_env(home | url, dotenv=None, recorded=True).dagster_pg_url
    with pytest.raises(SettingsError, match=f"{PG_URL_VARIABLE} is not set.*PostgreSQL"):
        Settings.from_env(home, dotenv=None, recorded=True)  # would open an empty SQLite history

    prepare_dagster_home(Settings.from_env(home, dotenv=None))  # `up` again, without it: SQLite
    with pytest.raises(SettingsError, match=f"{PG_URL_VARIABLE} is set.*SQLite"):
        Settings.from_env(home | url, dotenv=None, recorded=True)
    assert Settings.from_env(home | url, dotenv=None).dagster_pg_url  # `up` itself chooses
