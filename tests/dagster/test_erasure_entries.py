"""An erasure meets landing-zone entries that are not regular files (found by QA, 2026-12-05).

The ingest never reads a link, FIFO or device (`resources.landing_read`); the erasure read them with
`Path.read_bytes`: a FIFO hung it for good with both lanes' locks held (so the ingest stalled too), a
link was followed out of the zone (a request file linked to another one erased whoever that named), and
a link to a file of the zone counted that file's lines again from the bytes before the rewrite, failing
a certificate that a second erasure then passed. Each erasure here runs on a thread that the test can
free (a writer opens the FIFO), so a hang fails the test instead of the suite.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TypeVar

import orjson

from orchestration.settings import Settings
from resources.lake import LakeResource
from resources.landing import LandingResource
from stores.erasure.requests import erase_user, process_request
from stores.ingest import ingest
from tests.conftest import land, table
from tests.dagster.test_erasure import EMAIL, SECRET, USER, identify, message

T = TypeVar("T")
HANG = 60  # seconds: the erasures here take one or two


def _world(settings: Settings) -> None:
    land(settings, "a.ndjson", [identify("m-1", USER, "anon-e", EMAIL), message("m-2", user=USER)])
    land(settings, "b.ndjson", [message("m-3", user="u-olga"), message("m-4", user="u-olga")])
    ingest(LakeResource(uri=settings.lake_uri), LandingResource(uri=settings.landing_uri))


def _unhung(call: Callable[[], T], fifos: list[Path]) -> T:
    """`call()` on a thread; if it is still running after HANG seconds, the FIFOs get writers (freeing a
    reader blocked on one) and the test fails."""
    done: list[T] = []
    worker = threading.Thread(target=lambda: done.append(call()), daemon=True)
    worker.start()
    worker.join(HANG)
    if worker.is_alive():
        for _ in range(10):  # a reader freed from one FIFO may block on the next
            for fifo in fifos:
                with contextlib.suppress(OSError):  # ENXIO: nobody reads this one now
                    os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
            worker.join(1)
        raise AssertionError("hung on a FIFO in the landing zone")
    assert done, "the call raised (see the thread's exception above)"
    return done[0]


def test_fifos_in_the_landing_zone_neither_hang_nor_fail_an_erasure(
    settings: Settings, lake: LakeResource, landing: LandingResource
) -> None:
    _world(settings)
    events = Path(settings.landing_uri) / "events"
    fifos = [events / "pipe.ndjson", events / "pipe.txt"]  # a landing name and one the ingest never takes
    for fifo in fifos:
        os.mkfifo(fifo)
    certificate = _unhung(lambda: erase_user(lake, landing, USER, secret=SECRET), fifos)
    assert certificate.passed, certificate.to_json()
    assert certificate.landing_unreadable == []
    assert certificate.landing_files == {"events/a.ndjson": 2}
    assert all(fifo.exists() for fifo in fifos)  # left as they are: the ingest lists them as failed


def test_links_in_the_landing_zone_are_not_followed_by_an_erasure(
    settings: Settings, lake: LakeResource, landing: LandingResource, tmp_path: Path
) -> None:
    _world(settings)
    outside = tmp_path / "outside.txt"
    outside.write_bytes(message("x-1", user=USER) + b"\n")  # not in the zone: not ours to read or rewrite
    events = Path(settings.landing_uri) / "events"
    (events / "out.ndjson").symlink_to(outside)
    (events / "out.log").symlink_to(outside)
    (events / "twin.ndjson").symlink_to(events / "a.ndjson")  # the file itself is visited on its own
    certificate = erase_user(lake, landing, USER, secret=SECRET)
    assert certificate.passed, certificate.to_json()  # the first time, not only a second one
    assert certificate.landing_files == {"events/a.ndjson": 2}
    assert outside.read_bytes() == message("x-1", user=USER) + b"\n"
    assert (events / "twin.ndjson").is_symlink() and (events / "out.ndjson").is_symlink()


def test_request_entries_that_are_not_regular_files_are_set_aside_unread(
    settings: Settings, lake: LakeResource, landing: LandingResource, tmp_path: Path
) -> None:
    _world(settings)
    requests = Path(settings.landing_uri) / "erasure"
    requests.mkdir()
    decoy = tmp_path / "decoy.json"
    decoy.write_bytes(orjson.dumps({"user_id": "u-olga"}))  # someone else's request, outside the zone
    (requests / "link.json").symlink_to(decoy)
    os.mkfifo(requests / "pipe.json")
    outcomes = {
        path: _unhung(partial(process_request, lake, landing, path, secret=SECRET), [requests / "pipe.json"])
        for path in ("erasure/link.json", "erasure/pipe.json")
    }
    assert {p: o.status for p, o in outcomes.items()} == {p: "rejected" for p in outcomes}
    assert "symlink" in (outcomes["erasure/link.json"].detail or "")
    assert "FIFO" in (outcomes["erasure/pipe.json"].detail or "")
    assert sorted(p.name for p in (requests / "rejected").iterdir()) == ["link.json", "pipe.json"]
    assert decoy.exists()
    assert table(settings, "events").filter(user_id="u-olga").height == 2  # nobody was erased


def test_an_oversized_request_file_is_set_aside(
    settings: Settings, lake: LakeResource, landing: LandingResource
) -> None:
    _world(settings)
    requests = Path(settings.landing_uri) / "erasure"
    requests.mkdir()
    (requests / "big.json").write_bytes(b'{"user_id": "u-olga", "pad": "' + b"x" * 100_000 + b'"}')
    outcome = process_request(lake, landing, "erasure/big.json", secret=SECRET)
    assert outcome.status == "rejected" and "over the bound" in (outcome.detail or "")
    assert table(settings, "events").filter(user_id="u-olga").height == 2
