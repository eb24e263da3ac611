"""A micro-batch run whose process is SIGKILLed right after one chosen Delta commit.

Run as `python -m tests.crashing LAKE LANDING TABLE [ESP_URL NOW leased|worker]` with DAGSTER_HOME set: it
executes the real `microbatch_job` against the persistent instance, and the lake resource kills the process
after it commits TABLE, before Dagster can record anything more about the run. Two outbox points:
`sends` dies right after the outbox commit (before any HTTP call); `sends:before-status` dies after
the HTTP calls, before their statuses are committed.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl

from orchestration.definitions import build_defs
from orchestration.jobs import microbatch_config
from orchestration.leases import execute_leased, worker_tags
from orchestration.settings import Settings
from resources.lake import LakeResource
from resources.lake_merge import HeldSince


class CrashingLakeResource(LakeResource):
    """The real lake resource, plus a SIGKILL of the whole process after committing `crash_after`."""

    crash_after: str

    def append(
        self, name: str, frame: pl.DataFrame, *, batch_id: int, partition_by: list[str] | None = None
    ) -> None:
        super().append(name, frame, batch_id=batch_id, partition_by=partition_by)
        self._maybe_crash(name)

    def write_tagged(self, name: str, frame: pl.DataFrame, tags: dict[str, int], **kwargs: Any) -> None:
        super().write_tagged(name, frame, tags, **kwargs)  # profile_updates: after the state store commit
        self._maybe_crash(name)

    def overwrite(self, name: str, frame: pl.DataFrame, *, batch_id: int) -> None:
        super().overwrite(name, frame, batch_id=batch_id)
        self._maybe_crash(name)

    def upsert(
        self,
        name: str,
        frame: pl.DataFrame,
        *,
        key: str,
        tags: dict[str, int] | None = None,
        insert_only: bool = False,
        whole: bool = False,
        since: str | None = None,
        held_since: HeldSince | None = None,
    ) -> None:
        if not insert_only and self.crash_after == f"{name}:before-status":
            os.kill(os.getpid(), signal.SIGKILL)
        modes = {"insert_only": insert_only, "whole": whole}
        super().upsert(name, frame, key=key, tags=tags, **modes, since=since, held_since=held_since)
        self._maybe_crash(name)

    def _maybe_crash(self, name: str) -> None:
        if name == self.crash_after:
            os.kill(os.getpid(), signal.SIGKILL)


def main(
    lake_uri: str, landing_uri: str, crash_after: str, esp_url: str = "", now: str = "", how: str = ""
) -> None:
    """`how`: "leased" executes as `lakemail runner` does (its pid and lease in the run's tags); "worker"
    as a run worker the daemon launched for the landing sensor (this host in its tags); else untagged."""
    settings = Settings(
        home=Path(landing_uri).parent, lake_uri=lake_uri, landing_uri=landing_uri, esp_url=esp_url or None
    )
    defs = build_defs(settings, lake=CrashingLakeResource(uri=lake_uri, crash_after=crash_after))
    job, config = defs.resolve_job_def("microbatch_job"), microbatch_config(None, 1, now or None)
    if how == "leased":
        execute_leased(job, dg.DagsterInstance.get(), config, "lakemail runner")
    else:
        tags = worker_tags() if how == "worker" else None
        job.execute_in_process(instance=dg.DagsterInstance.get(), run_config=config, tags=tags)


if __name__ == "__main__":
    main(*sys.argv[1:7])
