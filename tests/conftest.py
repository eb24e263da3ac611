"""Fixtures: a lake and landing zone under tmp_path, a throwaway Dagster instance, landing helpers.

Tests mirror the floors: `unit/` (pure, seconds), `lake/` (real Delta tables under tmp_path), `dagster/`
(real Dagster runs in-process), `e2e/` (subprocesses, servers, the daemon). Each folder's tests carry its
marker, so `pytest -m unit` (`make test-fast`) runs the fast tier.
"""

from __future__ import annotations

import gc
import os
import shutil
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import polars as pl
import pytest

from orchestration.settings_values import PG_URL_VARIABLE

# Dagster, the sandbox, SQLAlchemy and the resources are imported where a fixture or helper needs them:
# the xdist controller loads this module too, before it starts the workers, and needs none of them.
if TYPE_CHECKING:
    import dagster as dg

    from orchestration.settings import Settings
    from resources.lake import LakeResource
    from resources.landing import LandingResource
    from resources.state import StateResource

TIERS = ("unit", "lake", "dagster", "e2e")
# Set by `make test` and `make test-postgres` (tests/postgres.py) to a database holding Dagster's schema:
# a test whose Dagster storage is in PostgreSQL gets a copy of that database of its own.
PG_TEMPLATE_URL = os.environ.get(PG_URL_VARIABLE)
# Which tests: "all" (`make test-postgres`), or "dagster" (`make test`: each test runs once, the in-process
# Dagster tier and the tests that open an instance on PostgreSQL, the rest on SQLite as `make run` has it,
# and the e2e tests marked `postgres` on PostgreSQL too).
PG_SCOPE_VARIABLE = "PG_TEST_SCOPE"
PG_SCOPE = os.environ.get(PG_SCOPE_VARIABLE, "all")
# As lakemail's dagster.yaml has it: no raw stdout/stderr capture (no `tail` processes per run).
NO_CAPTURE = {"module": "dagster._core.storage.noop_compute_log_manager", "class": "NoOpComputeLogManager"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test with the tier of its folder (a test outside the tiers fails collection)."""
    for item in items:
        tier = item.path.parent.name
        if tier not in TIERS:
            raise pytest.UsageError(f"{item.nodeid}: tests live in one of tests/{{{','.join(TIERS)}}}/")
        item.add_marker(getattr(pytest.mark, tier))
        if "instance" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.dagster_instance)  # `make test-postgres` runs these


def pytest_collection_finish(session: pytest.Session) -> None:
    """What collection made lives as long as the worker (the imported modules, the test items: ~365,000
    objects in a fast-tier worker), and every full garbage collection walked all of it again: 13-16 a
    fast-tier run, 0.3-0.5 s each (5-7 s of a worker's CPU). It is set aside once (gc.freeze); what the
    tests make is collected as before."""
    gc.collect()
    gc.freeze()


@pytest.fixture(scope="module", autouse=True)
def close_state_stores() -> Iterator[None]:
    """The state stores a test module opened, closed when it ends. Each LMDB environment reserves
    MAP_SIZE (1 TB) of address space and the process keeps its environments open (resources.state_lmdb),
    so a test worker that had opened ~127 stores failed to open the next: `lmdb.MemoryError: Cannot
    allocate memory` (CI, 2026-12-05, 2238 tests on two workers). Module-scoped stores end with the module."""
    from resources.state_lmdb import close_environment, open_paths

    before = set(open_paths())
    yield
    for path in set(open_paths()) - before:
        close_environment(path)


@pytest.fixture(autouse=True)
def secret(monkeypatch: pytest.MonkeyPatch) -> str:
    """LAKEMAIL_SECRET for the runs a test starts (resources read it through dg.EnvVar)."""
    monkeypatch.setenv("LAKEMAIL_SECRET", "test-secret")
    return "test-secret"


@pytest.fixture(scope="session")
def shared_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One email-provider sandbox on loopback for the runs of tests that do not look at the mail."""
    from resources.providers import SANDBOX_API_KEY
    from services.sandbox.app import create_sandbox_app
    from services.server import ServerThread

    home = tmp_path_factory.mktemp("shared-sandbox")
    app = create_sandbox_app(
        home / "store",
        SANDBOX_API_KEY,
        lake_uri=str(home / "lake"),
        landing_uri=str(home / "landing"),
        secret="test-secret",
    )
    with ServerThread(app) as server:
        yield server.url


@pytest.fixture(autouse=True)
def dagster_pg_url(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str | None]:
    """Under `make test-postgres`, this test's own database, in LAKEMAIL_DAGSTER_PG_URL for the test and
    the processes it starts (unit tests open no instance: theirs is named, not made); else None."""
    if PG_TEMPLATE_URL is None:
        yield None
        return
    if not on_postgres(request.node):
        monkeypatch.delenv(PG_URL_VARIABLE, raising=False)  # SQLite in the test's home, as `make run`
        yield None
        return
    from tests.postgres import TEMPLATE, create_database, database_url, drop_database

    name = f"test_{uuid.uuid4().hex}"
    url = database_url(PG_TEMPLATE_URL, name)
    monkeypatch.setenv(PG_URL_VARIABLE, url)
    if request.node.get_closest_marker("unit"):
        yield url
        return
    create_database(PG_TEMPLATE_URL, name, template=TEMPLATE)
    try:
        yield url
    finally:
        drop_database(PG_TEMPLATE_URL, name)


def on_postgres(item: pytest.Item) -> bool:
    """Whether this test's Dagster storage is in PostgreSQL (when a server is given at all)."""
    if PG_SCOPE == "all":
        return True
    return any(item.get_closest_marker(m) for m in ("dagster", "dagster_instance", "postgres"))


def storage_overrides(home: Path) -> dict[str, Any]:
    """dagster.yaml's storage for a test instance in `home`, as lakemail's: its PostgreSQL block under
    `make test-postgres`, else SQLite with the event log in one database."""
    import yaml

    from orchestration.instance import POSTGRES_STORAGE, sqlite_history_yaml

    if os.environ.get(PG_URL_VARIABLE):
        return {"storage": POSTGRES_STORAGE}
    overrides: dict[str, Any] = yaml.safe_load(sqlite_history_yaml(home))
    return overrides


@contextmanager
def instance_at(home: Path, overrides: dict[str, Any] | None = None) -> Iterator[dg.DagsterInstance]:
    """`dg.instance_for_test` in `home` (DAGSTER_HOME for the processes a test starts), with this run's
    storage (SQLite in `home`, or the test's PostgreSQL database)."""
    import dagster as dg

    config = {**storage_overrides(home), **(overrides or {})}
    with dg.instance_for_test(temp_dir=str(home), overrides=config) as made:
        yield keep_connection(made)


def keep_connection(instance: dg.DagsterInstance) -> dg.DagsterInstance:
    """`instance`, keeping its PostgreSQL connection between statements (under `make test`). Dagster's
    PostgreSQL storages open one for every statement (NullPool): 3 ms each here, ~200 a micro-batch run,
    a third of an in-process run's time. A test's instance keeps one open as Dagster's webserver does
    (Dagster's own switch: the same statements, autocommit, no statement timeout); the processes a test
    starts keep lakemail's dagster.yaml and its NullPool."""
    if os.environ.get(PG_URL_VARIABLE):
        instance.optimize_for_webserver(statement_timeout=0, pool_recycle=3600, max_overflow=-1)
    return instance


def storage_env() -> dict[str, str]:
    """For a command a test starts with an environment of its own: the test's PostgreSQL database under
    `make test-postgres` (nothing otherwise: SQLite in its home)."""
    url = os.environ.get(PG_URL_VARIABLE)
    return {PG_URL_VARIABLE: url} if url else {}


def make_dagster_home(home: Path) -> Path:
    """An empty DAGSTER_HOME for the processes a test starts before it opens the instance (`instance_at`),
    with the dagster.yaml of its storage (under `make test-postgres`, the one naming the test's database)."""
    import yaml

    home.mkdir()
    (home / "dagster.yaml").write_text(yaml.safe_dump(storage_overrides(home)))
    return home


def lose_dagster_storage(home: Path) -> None:
    """What losing Dagster's storage is: DAGSTER_HOME gone, and under `make test-postgres` the database
    emptied (made again from the template)."""
    from tests.postgres import TEMPLATE, create_database, drop_database

    shutil.rmtree(home)
    url = os.environ.get(PG_URL_VARIABLE)
    if PG_TEMPLATE_URL is not None and url is not None:
        name = urlsplit(url).path.strip("/")
        drop_database(PG_TEMPLATE_URL, name)
        create_database(PG_TEMPLATE_URL, name, template=TEMPLATE)


@pytest.fixture
def settings(tmp_path: Path, shared_sandbox: str, dagster_pg_url: str | None) -> Settings:
    from orchestration.settings import Settings

    return Settings(
        home=tmp_path,
        lake_uri=str(tmp_path / "lake"),
        landing_uri=str(tmp_path / "landing"),
        esp_url=shared_sandbox,
        dagster_pg_url=dagster_pg_url,
    )


@pytest.fixture
def lake(settings: Settings) -> LakeResource:
    from resources.lake import LakeResource

    return LakeResource(uri=settings.lake_uri)


@pytest.fixture
def landing(settings: Settings) -> LandingResource:
    from resources.landing import LandingResource

    return LandingResource(uri=settings.landing_uri)


@pytest.fixture
def state(settings: Settings) -> StateResource:
    from resources.state import StateResource

    return StateResource(uri=settings.state_store_uri)


@pytest.fixture
def cli_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty LAKEMAIL_HOME the CLI runs in (also the current folder)."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.chdir(home)
    monkeypatch.setenv("LAKEMAIL_HOME", str(home))
    return home


@pytest.fixture
def instance(tmp_path: Path) -> Iterator[dg.DagsterInstance]:
    home = tmp_path / "dagster_home"
    home.mkdir()
    with instance_at(home, {"compute_logs": NO_CAPTURE}) as test_instance:
        yield test_instance


def land(settings: Settings, name: str, lines: Sequence[bytes] | bytes, *, replace: bool = False) -> Path:
    """Land `lines` (a newline after each) or bytes as `events/<name>`, as producers do."""
    from resources.landing import LandingResource

    data = lines if isinstance(lines, bytes) else b"".join(line + b"\n" for line in lines)
    return LandingResource(uri=settings.landing_uri).land(f"events/{name}", data, replace=replace)


def table(settings: Settings, name: str) -> pl.DataFrame:
    return pl.read_delta(f"{settings.lake_uri}/{name}")


def lake_snapshot(settings: Settings) -> dict[str, object]:
    """What must be identical between a clean run and a disturbed one (ids, counts, per-file log)."""
    events = table(settings, "events")
    log = table(settings, "ingest_log").sort("source_file")
    return {
        "event_ids": sorted(events["event_id"].to_list()),
        "events": events.height,
        "quarantine": sorted(
            table(settings, "quarantine").select("source_file", "source_line", "reason").rows()
        ),
        "identities": sorted(table(settings, "identities").select("anonymous_id", "user_id").rows()),
        "log": log.select("source_file", "lines", "accepted", "quarantined", "duplicates", "status").rows(),
    }
