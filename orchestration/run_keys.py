"""The sensors' run keys: the key of the work (the lanes': the lake's, `batch_run_key`, `decide-b…-e…`;
erasure's: the request file's path, size and landing time), and a new generation of it once every run
under the current one has failed for good.

Dagster never launches a sensor's run key twice, whatever became of its run (`dagster._daemon.sensor`),
so without generations a batch whose run and Dagster's run retries all failed (a full disk, a killed
worker) would wait until new files land or a new batch comes, and an erasure request whose runs failed
would never be carried out. The lake (an erasure's progress record), not the key, makes a second run
safe; the key only tells Dagster which requests are the same.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import dagster as dg

from transforms.ingest.batch import SensorDecision

BATCH_KEY_TAG = "lakemail/batch_key"  # the key of a run's work (see above), whatever its generation
SENSOR_NAME_TAG = "dagster/sensor_name"  # Dagster's tags on a sensor's runs, kept by their run retries
RUN_KEY_TAG = "dagster/run_key"
# After a failed run, its lane waits this long before the next (doubling up to the cap; reset by a success),
# so that a lane failing at every try (a broken provider account) does not start four runs a second.
FAILURE_BACKOFF_S, FAILURE_BACKOFF_MAX_S = 1.0, 60.0


def failure_backoff(failures: int) -> float:
    """Seconds to wait after `failures` failed runs in a row: none, then 1 s doubling up to 60 s."""
    if failures <= 0:
        return 0.0
    return min(FAILURE_BACKOFF_MAX_S, FAILURE_BACKOFF_S * 2.0 ** min(failures - 1, 32))


def generation_key(base: str, failures: int) -> str:
    """The run key of `base`'s work after `failures` failed runs (the base itself before any)."""
    return base if failures == 0 else f"{base}-r{failures}"


def sensor_runs(instance: dg.DagsterInstance, sensor: str, base: str) -> list[dg.RunRecord]:
    """The runs `sensor` requested for the work keyed `base`, any generation, and their retries, newest
    first: by our tag, and by Dagster's run key for a run without it (the base is its first key)."""
    found = {
        r.dagster_run.run_id: r
        for tag in (BATCH_KEY_TAG, RUN_KEY_TAG)
        for r in instance.get_run_records(filters=dg.RunsFilter(tags={SENSOR_NAME_TAG: sensor, tag: base}))
    }
    return sorted(found.values(), key=lambda r: r.storage_id, reverse=True)


def _ended_at(record: dg.RunRecord) -> float:
    return record.end_time if record.end_time is not None else record.update_timestamp.timestamp()


def failed_for_good(run: dg.DagsterRun) -> bool:
    """The run failed and Dagster's run retries will not take it again (none left, or one launched)."""
    return run.status == dg.DagsterRunStatus.FAILURE and not run.is_complete_and_waiting_to_retry


def with_generation(decision: SensorDecision, runs: Sequence[dg.RunRecord], now: datetime) -> SensorDecision:
    """`decision` under the run key of its generation: the base key until a run is requested; that run's
    key while a run is in flight, waits for a run retry, or has ended otherwise (succeeded, canceled: Dagster
    skips it); once all of them failed for good, a new key counting the failures, `failure_backoff` after
    the last one ended (a skip before)."""
    base = decision.run_key
    if base is None or not runs:
        return decision
    if not all(failed_for_good(r.dagster_run) for r in runs):
        return replace(decision, run_key=runs[0].dagster_run.tags.get(RUN_KEY_TAG, base))
    failures = len(runs)
    due = datetime.fromtimestamp(max(map(_ended_at, runs)), UTC) + timedelta(
        seconds=failure_backoff(failures)
    )
    if now < due:
        return SensorDecision(
            skip_reason=f"{failures} run(s) of {base} failed, retries included; it is requested again at "
            f"{due.isoformat(timespec='seconds')}"
        )
    return replace(decision, run_key=generation_key(base, failures))
