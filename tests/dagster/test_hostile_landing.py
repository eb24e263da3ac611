"""The landing sensor over hostile entries (#13 point 3): it decides, the run reports them, it moves on."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

from orchestration.settings import Settings
from tests.conftest import land, table
from tests.dagster.test_microbatch import evaluate_sensor, execute
from tests.events_data import track


def test_the_sensor_takes_a_batch_with_a_name_that_is_not_utf8_and_then_skips(
    settings: Settings, instance: dg.DagsterInstance, tmp_path: Path
) -> None:
    # #13 point 3: the landing sensor raised UnicodeEncodeError on every tick, so nothing was ingested.
    land(settings, "good.ndjson", [track("m-1")])
    events = Path(settings.landing_uri) / "events"
    with open(os.fsencode(events) + b"/bad\xff.ndjson", "wb") as handle:
        handle.write(track("m-2") + b"\n")
    os.mkfifo(events / "pipe.ndjson")
    (tmp_path / "elsewhere.ndjson").write_bytes(track("m-3") + b"\n")
    os.symlink(tmp_path / "elsewhere.ndjson", events / "link.ndjson")
    request = evaluate_sensor(settings, instance)
    assert isinstance(request, dg.RunRequest)
    files = request.run_config["ops"]["ingest_stage"]["config"]["files"]
    assert files == [
        "events/bad\\xff.ndjson",
        "events/good.ndjson",
        "events/link.ndjson",
        "events/pipe.ndjson",
    ]
    assert execute(settings, instance, files).success
    log = dict(table(settings, "ingest_log").select("source_file", "status").iter_rows())
    assert log == {
        "events/bad\\xff.ndjson": "failed",
        "events/good.ndjson": "committed",
        "events/link.ndjson": "failed",
        "events/pipe.ndjson": "failed",
    }
    assert table(settings, "events")["event_id"].to_list() == ["m-1"]
    assert isinstance(evaluate_sensor(settings, instance, request.run_key), dg.SkipReason)
