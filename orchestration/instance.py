"""The persistent Dagster instance under `$LAKEMAIL_HOME/dagster_home`, and its `dagster.yaml`."""

from __future__ import annotations

import fcntl
from pathlib import Path

import dagster as dg

from orchestration.settings import process_environment

# DefaultRunCoordinator launches within the sensor tick (the queued coordinator waits up to 5 s more).
# A daemon-launched run worker that dies is reported by its code server, run retries re-run its batch
# (the lake's batch log makes that safe), and run monitoring fails a run that never starts. The
# DefaultRunLauncher offers no worker health check, so runs executed in-process (runner, process)
# and runs whose code server died too are judged by orchestration.leases when a micro-batch is due.
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


def prepare_dagster_home(path: Path) -> Path:
    """Create `path` with lakemail's dagster.yaml and point DAGSTER_HOME at it (for this process)."""
    path.mkdir(parents=True, exist_ok=True)
    config = path / "dagster.yaml"
    if not config.exists() or config.read_text() != DAGSTER_YAML:
        config.write_text(DAGSTER_YAML)
    process_environment()["DAGSTER_HOME"] = str(path)
    return path


def persistent_instance(path: Path) -> dg.DagsterInstance:
    """The instance the webserver and daemon use, so CLI runs show in the UI's history."""
    prepare_dagster_home(path)
    # Two processes opening a new SQLite instance at once both create its schema, and one fails
    # ("table ... already exists"): let one create it while the other waits.
    with open(path / ".lakemail-instance.lock", "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            return dg.DagsterInstance.get()
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
