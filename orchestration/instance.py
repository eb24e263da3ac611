"""The persistent Dagster instance under `$LAKEMAIL_HOME/dagster_home`, and its `dagster.yaml`."""

from __future__ import annotations

import fcntl
import json
from pathlib import Path

import dagster as dg

from orchestration.settings import Settings, process_environment
from orchestration.settings_values import PG_URL_VARIABLE

# Run, event-log and schedule storage in PostgreSQL (dagster-postgres). The URL, password included,
# stays in the environment: dagster.yaml names the variable, the processes that open the instance
# (webserver, daemon, code servers, run workers, lakemail's commands) read it from their environment.
POSTGRES_STORAGE = {"postgres": {"postgres_url": {"env": PG_URL_VARIABLE}}}

# DefaultRunCoordinator launches within the sensor tick (the queued coordinator waits up to 5 s more).
# A daemon-launched run worker that dies is reported by its code server, run retries re-run its batch
# (the lake's batch log makes that safe), and run monitoring fails a run that never starts. The
# DefaultRunLauncher offers no worker health check, so runs executed in-process (runner, process)
# and runs whose code server died too are judged by orchestration.leases when a micro-batch is due
# (erasure runs: when the erasure sensor evaluates).
DAGSTER_YAML = """\
# Written by `lakemail up` / `lakemail process`; edits are overwritten.
telemetry:
  enabled: false
run_coordinator:
  module: dagster._core.run_coordinator
  class: DefaultRunCoordinator
run_retries:
  enabled: true
  max_retries: 2
run_monitoring:
  enabled: true
  poll_interval_seconds: 5
  start_timeout_seconds: 120
  max_resume_run_attempts: 0
sensors:
  use_threads: true
  num_workers: 2
schedules:
  use_threads: true
  num_workers: 2
# No raw stdout/stderr capture: it starts `tail` and a watcher interpreter per stream for every run
# (four processes each micro-batch on two cores), and a slow `tail` exit held the resident runner
# for 60 s. What lakemail's steps say goes to the event log through `context.log`, shown in the UI.
compute_logs:
  module: dagster._core.storage.noop_compute_log_manager
  class: NoOpComputeLogManager
"""
# Appended when LAKEMAIL_DAGSTER_PG_URL is set (the same as POSTGRES_STORAGE); SQLite otherwise.
POSTGRES_YAML = f"""\
# Runs, event logs and schedules in PostgreSQL, at the URL in ${PG_URL_VARIABLE} (never written here).
storage:
  postgres:
    postgres_url:
      env: {PG_URL_VARIABLE}
"""


def sqlite_history_yaml(dagster_home: Path) -> str:
    """The run and event storage of a SQLite home (`orchestration.history_storage`): Dagster's SQLite
    storages with each process's connections kept, the event log in one database (`history/event_log.db`,
    WAL) in place of Dagster's default of one database per run plus an index.

    The default opens the run's database and the index for every event, creating an engine and, for a
    new run, its schema and migration stamp: a micro-batch's 30-60 events cost 0.3-0.6 s of its
    1.5-2 s (#17, profiled). One database takes each event in one write."""
    base_dir = json.dumps(str(dagster_home / "history"))  # a JSON string is a YAML string, quoted
    return f"""\
# Runs and event logs in SQLite under history/, one database each, connections kept open.
run_storage:
  module: orchestration.history_storage
  class: LakemailRunStorage
  config:
    base_dir: {base_dir}
event_log_storage:
  module: orchestration.history_storage
  class: LakemailEventLogStorage
  config:
    base_dir: {base_dir}
"""


def dagster_yaml(settings: Settings) -> str:
    """lakemail's dagster.yaml for `settings`: SQLite under the home, or PostgreSQL."""
    if settings.dagster_pg_url:
        return DAGSTER_YAML + POSTGRES_YAML
    return DAGSTER_YAML + sqlite_history_yaml(settings.dagster_home)


def prepare_dagster_home(settings: Settings) -> Path:
    """Create the Dagster home of `settings` with lakemail's dagster.yaml and point DAGSTER_HOME at it,
    and LAKEMAIL_DAGSTER_PG_URL when set (`.env` included), for this process and its children."""
    path = settings.dagster_home
    path.mkdir(parents=True, exist_ok=True)
    config, text = path / "dagster.yaml", dagster_yaml(settings)
    if not config.exists() or config.read_text() != text:
        config.write_text(text)
    export_storage(settings)
    process_environment()["DAGSTER_HOME"] = str(path)
    return path


def export_storage(settings: Settings) -> None:
    """Put the PostgreSQL URL of `settings` where dagster.yaml reads it: this process's environment."""
    if settings.dagster_pg_url:
        process_environment()[PG_URL_VARIABLE] = settings.dagster_pg_url


def persistent_instance(settings: Settings) -> dg.DagsterInstance:
    """The instance the webserver and daemon use, so CLI runs show in the UI's history."""
    path = prepare_dagster_home(settings)
    # Two processes opening a new SQLite instance at once both create its schema, and one fails
    # ("table ... already exists"): let one create it while the other waits.
    with open(path / ".lakemail-instance.lock", "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            return dg.DagsterInstance.get()
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def existing_instance(settings: Settings) -> dg.DagsterInstance | None:
    """The instance `lakemail up` or a command made for `settings`, as it is; None before there is one."""
    config = settings.dagster_home / "dagster.yaml"
    if not config.exists():
        return None
    export_storage(settings)
    return dg.DagsterInstance.from_config(str(settings.dagster_home))
