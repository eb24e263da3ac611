"""A stopped runner's runs in flight: handed back (marked failed with the reason) for the next run of
their lane to take their work again (`orchestration.runner`)."""

from __future__ import annotations

import os

import dagster as dg

from orchestration.sensors import heartbeat_path
from orchestration.settings import Settings
from resources.lake import LakeResource


def say(message: str) -> None:
    print(f"lakemail runner: {message}", flush=True)


def hand_back(instance: dg.DagsterInstance, run_id: str, why: str) -> bool:
    """Mark the runner's unfinished run failed with `why`: its files (not in `ingest_log`) go to the next."""
    run = instance.get_run_by_id(run_id)
    if run is None or run.is_finished:
        return False
    message = f"lakemail runner: {why}; its work is taken again by the next run of its lane"
    instance.report_run_failed(run, message)
    return True


def abandon(
    settings: Settings,
    instance: dg.DagsterInstance,
    runs: dict[str, str],
    signal_name: str,
    lanes: tuple[str, ...],
    code: int,
) -> None:
    """The runs in flight did not finish in time (or a second signal came): hand them back and exit now."""
    why = f"stopped ({signal_name}) before this run finished"
    for lane, run_id in sorted(dict(runs).items()):
        if hand_back(instance, run_id, why):
            say(f"handed back {lane} run {run_id}: marked failed; the next {lane} run takes its work")
    beat = heartbeat_path(LakeResource(uri=settings.lake_uri), lanes[0] if len(lanes) == 1 else None)
    if beat is not None:
        beat.unlink(missing_ok=True)
    say("stopped with the runs in flight handed back")
    # The run's thread stops with the process, as after a SIGKILL, and the lake is made for that.
    os._exit(code)
