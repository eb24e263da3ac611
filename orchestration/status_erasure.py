"""`lakemail status` on GDPR erasure: requests that wait in the landing zone with no run to take them,
and erasures whose certificate found traces left.

A request is taken by `erasure_sensor` within seconds of landing, and again after a failed run (its run
key's next generation), so one waiting longer than the max lag with no erasure run queued or running is
taken by nothing: the daemon is down or the sensor turned off, or the failed run that status judged was
pruned by maintenance (finished runs older than its retention go) with the request still there. Only a
count and an age are said: a file may be named after the person until the sensor renames it.

An erasure that left traces (a stray file the ingest never reads) still ends as a successful run: the
certificate, stored in `erasures` whatever its verdict, is the record, and the request file is gone with
it. So the lake says it: a person (user key) whose newest certificate failed, until a later erasure of
them is certified clean.
"""

from __future__ import annotations

from datetime import datetime

import dagster as dg
import polars as pl

from orchestration.jobs import ERASURE_JOB
from orchestration.lanes import runs_in_flight
from orchestration.leases import gone_reason
from resources.lake import LakeResource
from resources.landing import LandingResource
from stores.erasure.requests import pending_requests
from transforms.operations.status import ErasureWaiting, FailedCertificate
from transforms.schema import ERASURES_SCHEMA


def erasure_waiting(
    landing: LandingResource, instance: dg.DagsterInstance | None, now: datetime
) -> ErasureWaiting:
    """The requests waiting in `erasure/` and since when, and the erasure runs queued or running with a
    live worker (a dead one takes nothing: the sensor marks it failed and asks again)."""
    pending = pending_requests(landing)
    oldest = min((f.landed_at for f in pending), default=None)
    age = None if oldest is None else round(max(0.0, (now - oldest).total_seconds()), 3)
    flying = 0
    if instance is not None:  # alive: judged as `orchestration.leases` judges the lanes' runs
        flying = sum(1 for r in runs_in_flight(instance, (ERASURE_JOB,)) if gone_reason(instance, r) is None)
    return ErasureWaiting(len(pending), age, flying)


def failed_certificates(lake: LakeResource, now: datetime) -> list[FailedCertificate]:
    """Each person's newest certificate when it failed (oldest first): no later erasure of them passed."""
    if lake.version("erasures") is None:
        return []
    stored = lake.read("erasures", ERASURES_SCHEMA, ["request_id", "user_key", "erased_at", "passed"])
    newest = stored.sort("erased_at", "request_id").group_by("user_key", maintain_order=True).last()
    failed = newest.filter(~pl.col("passed")).sort("erased_at")
    return [
        FailedCertificate(request, round(max(0.0, (now - erased).total_seconds()), 3))
        for request, erased in failed.select("request_id", "erased_at").iter_rows()
    ]
