"""A throwaway PostgreSQL server for the tests, and a fresh database per test (issue #18).

`python -m tests.postgres CMD ...` (what `make test-postgres` runs): start a cluster of Debian's
`postgresql` package in a temporary folder, listening on 127.0.0.1 and a free port; create the
database `lakemail` with Dagster's schema; run CMD with LAKEMAIL_DAGSTER_PG_URL pointing at it; stop the
cluster and delete its folder, whatever CMD did. The suite's fixtures (tests/conftest.py) give each test
its own database, copied from that one (`CREATE DATABASE ... TEMPLATE`: milliseconds, no migration).
As root, the server runs as the package's `postgres` user (initdb refuses root).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import dagster as dg
import sqlalchemy as sa

from orchestration.instance import PG_URL_VARIABLE
from orchestration.settings_values import PG_DRIVER
from tests.processes import log_tail, reserve_port

USER = "lakemail"
TEMPLATE = "lakemail"  # the database the command is given; each test's is a copy of it
SERVER_USER = "postgres"  # the package's system user: the server's owner when we are root
# Throwaway data: no fsync, no full-page writes; room for a test's webserver, daemon, code servers and
# run workers on two xdist workers at once.
SERVER_OPTIONS = (
    "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=400 "
    "-c shared_buffers=64MB -c log_min_messages=warning"
)


def bin_dir() -> Path:
    """The newest installed server's programs (Debian: /usr/lib/postgresql/<major>/bin)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: int(p.parts[-3]))
    if not found:
        raise RuntimeError("no PostgreSQL server: `make postgres` installs Debian's postgresql package")
    return found[-1].parent


def _as_server_user(argv: list[str]) -> list[str]:
    runuser = shutil.which("runuser") or "/usr/sbin/runuser"
    return [runuser, "-u", SERVER_USER, "--", *argv] if os.geteuid() == 0 else argv


def database_url(url: str, database: str) -> str:
    """`url` naming `database` instead of its own."""
    return urlunsplit(urlsplit(url)._replace(path=f"/{database}"))


@contextmanager
def server() -> Iterator[str]:
    """A fresh cluster on 127.0.0.1, trusting local connections: yields its `postgres` database's URL."""
    folder = Path(tempfile.mkdtemp(prefix="lakemail-pg-"))
    data, programs = folder / "data", bin_dir()
    if os.geteuid() == 0:
        shutil.chown(folder, SERVER_USER)
    initdb = [str(programs / "initdb"), "-D", str(data), "-U", USER, "-A", "trust", "-E", "UTF8", "--no-sync"]
    subprocess.run(_as_server_user(initdb), check=True, capture_output=True, cwd=folder)
    port = reserve_port()  # nobody else's while the server starts (it binds with SO_REUSEADDR)
    options = f"-h 127.0.0.1 -p {port} -k {folder} {SERVER_OPTIONS}"
    start = [str(programs / "pg_ctl"), "-D", str(data), "-l", str(folder / "server.log"), "-o", options]
    try:
        started = subprocess.run(_as_server_user([*start, "-s", "-w", "-t", "60", "start"]), cwd=folder)
        if started.returncode != 0:
            raise RuntimeError(f"PostgreSQL did not start: {log_tail(folder / 'server.log')}")
        yield f"{PG_DRIVER}://{USER}@127.0.0.1:{port}/postgres"
    finally:
        stop = [str(programs / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"]
        subprocess.run(_as_server_user(stop), capture_output=True, cwd=folder)
        shutil.rmtree(folder, ignore_errors=True)


def _admin(url: str) -> sa.Engine:
    """The server's `postgres` database, a statement at a time (CREATE DATABASE is outside transactions)."""
    admin = database_url(url, "postgres")
    return sa.create_engine(admin, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)


def create_database(url: str, name: str, template: str | None = None) -> str:
    """A new database `name` on the server of `url` (a copy of `template` when given); its URL."""
    copy = f" TEMPLATE {template}" if template else ""
    with _admin(url).connect() as connection:
        for attempt in range(50):
            try:
                connection.execute(sa.text(f'CREATE DATABASE "{name}"{copy}'))
                break
            except sa.exc.OperationalError as error:  # another test's copy of the template is under way
                if "is being accessed by other users" not in str(error) or attempt == 49:
                    raise
                time.sleep(0.1)
    return database_url(url, name)


def drop_database(url: str, name: str) -> None:
    """Drop `name`, ending what is still connected to it (a test's leftover run worker, say)."""
    with _admin(url).connect() as connection:
        connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def migrate(url: str) -> None:
    """Create Dagster's schema (runs, event logs, schedules) in the database of `url`."""
    with tempfile.TemporaryDirectory() as home:
        Path(home, "dagster.yaml").write_text(f"storage:\n  postgres:\n    postgres_url: {url}\n")
        dg.DagsterInstance.from_config(home).dispose()


@contextmanager
def dagster_database() -> Iterator[str]:
    """A throwaway server with a `lakemail` database that holds Dagster's schema: yields its URL."""
    with server() as admin:
        url = create_database(admin, TEMPLATE)
        migrate(url)
        yield url


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: python -m tests.postgres CMD [ARG ...]", file=sys.stderr)
        return 2
    # Stopped (CI's timeout, kill): unwind, so the server is stopped and its folder removed.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    started = time.monotonic()
    with dagster_database() as url:
        print(f"PostgreSQL ready in {time.monotonic() - started:.1f} s: {PG_URL_VARIABLE}={url}", flush=True)
        return subprocess.run(argv, env={**os.environ, PG_URL_VARIABLE: url}).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
