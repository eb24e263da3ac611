"""When a file landed: the moment it appeared in the landing zone on this host (its ctime), never its
mtime, which the producer sets (`cp -p`, `rsync -t`, a host with a slow or fast clock); and that moment
kept as first taken when the ctime moves later (a chmod, erasure blanking a line)."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta

import orjson
import polars as pl
import pytest
from deltalake import DeltaTable

from orchestration.settings import Settings
from resources.lake import LakeResource
from resources.landing import LandingResource
from resources.state import StateResource
from stores.erasure.requests import erase_user
from stores.ingest import backlog, ingest
from stores.operations.probe import Probe, Scope
from stores.state.rebuild import check
from tests.conftest import land, table
from transforms.operations.checks import Thresholds
from transforms.state import StateChanges

SECRET = "test-secret"
CLOCK = timedelta(seconds=1)  # the kernel stamps ctime from a coarser clock than datetime.now


def message(message_id: str, at: datetime, user: str = "u-1") -> bytes:
    stamp = at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    body = {"messageId": message_id, "type": "track", "event": "Product Viewed", "timestamp": stamp}
    return orjson.dumps({**body, "userId": user, "properties": {"product_id": "p-1"}})


def test_a_file_with_an_old_mtime_is_judged_by_when_it_landed(
    settings: Settings, lake: LakeResource, landing: LandingResource
) -> None:
    # review: a file landed now with its mtime two days back (cp -p, rsync -t, a slow clock) holding an
    # event stamped now was quarantined timestamp_out_of_range, and ingest_log said it landed 2 days ago.
    before = datetime.now(UTC)
    path = land(settings, "skewed_host.ndjson", [message("m-1", before)])
    old = time.time() - 2 * 86400
    os.utime(path, (old, old))
    report = ingest(lake, landing)
    after = datetime.now(UTC)
    assert (report.accepted, sum(report.quarantined.values())) == (1, 0)
    [row] = table(settings, "ingest_log").rows(named=True)
    assert before - CLOCK <= row["landed_at"] <= after
    assert abs(row["modified_at"].timestamp() - old) < 0.01  # kept: what tells this landing from the next
    assert table(settings, "events")["landed_at"].to_list() == [row["landed_at"]]
    assert backlog(lake, landing)[1].height == 0 and ingest(lake, landing).files == 0


def test_a_future_mtime_does_not_stretch_the_24h_rule(
    settings: Settings, lake: LakeResource, landing: LandingResource
) -> None:
    # review: a file's mtime in the future loosened the rule by as much.
    ahead = datetime.now(UTC) + timedelta(hours=36)
    path = land(settings, "fast_host.ndjson", [message("m-1", ahead)])
    dated = (ahead + timedelta(hours=12)).timestamp()
    os.utime(path, (dated, dated))
    report = ingest(lake, landing)
    assert report.accepted == 0 and dict(report.quarantined) == {"timestamp_out_of_range": 1}


@pytest.mark.parametrize("with_store", [False, True])
def test_a_moved_ctime_is_no_new_landing_and_keeps_its_landing_time(
    settings: Settings, lake: LakeResource, landing: LandingResource, with_store: bool
) -> None:
    # A chmod and erasure's rewrite (a temp file renamed over the landed one) move the ctime: the file is
    # neither taken again nor dated anew (latency, freshness, `reflected_until` read that date).
    state = StateResource(uri=settings.state_store_uri) if with_store else None
    now = datetime.now(UTC)
    path = land(settings, "a.ndjson", [message("m-1", now, "u-erin"), message("m-2", now, "u-olga")])
    ingest(lake, landing, state=state)
    [logged] = table(settings, "ingest_log")["landed_at"].to_list()
    time.sleep(0.05)
    os.chmod(path, 0o640)
    certificate = erase_user(lake, landing, "u-erin", secret=SECRET, state=state)
    assert certificate.passed and certificate.landing_files == {"events/a.ndjson": 1}
    [listed] = landing.list_files("events")
    assert listed.landed_at > logged  # the ctime moved
    landed, pending = backlog(lake, landing)
    assert pending.height == 0 and landed["landed_at"].to_list() == [logged]
    assert Probe(lake, landing, Scope(), Thresholds()).landed_at == [logged]  # freshness checks
    assert ingest(lake, landing, state=state).files == 0
    log = table(settings, "ingest_log")
    assert log.select("status", "landed_at").rows() == [("committed", logged)]
    assert log.filter(pl.col("accepted") == 1).height == 1


def test_a_store_record_from_before_modified_at_checks_equal_to_the_lake(
    settings: Settings, lake: LakeResource, landing: LandingResource
) -> None:
    # review: after an upgrade `lakemail state check` said "landed_files: ... 6 different" for good (until
    # `state rebuild`, which stops both lanes): the store's records of files taken before modified_at lack
    # the field, the lake's rows of them read it as null, and the bytes were compared.
    state = StateResource(uri=settings.state_store_uri)
    now = datetime.now(UTC)
    land(settings, "a.ndjson", [message("m-1", now)])
    land(settings, "b.ndjson", [message("m-2", now)])
    ingest(lake, landing, state=state)
    DeltaTable(lake.table_uri("ingest_log")).update({"modified_at": "NULL"})  # rows from before the column
    old_way = StateChanges()  # records as the releases before wrote them: no modified_at at all
    for key, value in state.store().scan("landed_files"):
        records = orjson.loads(value)["records"]
        old_way.put(
            "landed_files", key, orjson.dumps({"records": [without(r, "modified_at") for r in records]})
        )
    state.commit(lake.committed_batch(), old_way)
    assert all(b"modified_at" not in value for _, value in state.store().scan("landed_files"))
    assert check(lake, state).equal
    [(key, value)] = [(k, v) for k, v in state.store().scan("landed_files") if k.endswith("b.ndjson")]
    changed = StateChanges()
    changed.put("landed_files", key, value.replace(b'"bytes":', b'"bytes":1'))  # still found different
    state.commit(lake.committed_batch(), changed)
    report = check(lake, state)
    assert (report.namespaces["landed_files"].different, report.equal) == (1, False)


def without(record: dict[str, object], name: str) -> dict[str, object]:
    return {field: value for field, value in record.items() if field != name}
