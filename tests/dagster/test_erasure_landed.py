"""Erasure reads every landed file by its own encoding, whatever its folder takes (found by review).

Since each landing folder takes only its own suffixes, `customers/` and `catalog/` refuse `.ndjson.gz`
and `events/` a `.csv`: the ingest lists such a file as `failed`, never read. The erasure treated it as a
stray: it searched a gzip file's COMPRESSED bytes for the person (found nothing, so the certificate said
"PASSED: no trace left" with her CRM row still landed) and only counted a plain misplaced file's lines
(the certificate failed, and no erasure could ever blank them). A gz CRM file that a release before
took (committed) was left holding her as well.
"""

from __future__ import annotations

import bz2
import gzip
import os
from pathlib import Path

import orjson
import polars as pl
import pytest

from orchestration.settings import Settings
from resources.lake import LakeResource
from resources.landing import LANDING_SUFFIXES, LandingResource
from resources.state import StateResource
from stores.erasure.requests import erase_user
from stores.ingest import ingest
from tests.conftest import table
from tests.dagster.test_erasure import EMAIL, SECRET, USER, identify, message

OLGA_ROW = {"user_id": "u-olga", "email": "olga@example.com", "first_name": "Olga"}
CRM = [{"user_id": USER, "email": EMAIL, "first_name": "Erin", "marketing_consent": True}, OLGA_ROW]
FEED = [
    {"product_id": "p-9", "name": f"Gift wrap for {EMAIL}", "price": 3.0},  # a shop's hand-made export
    {"product_id": "p-1", "name": "Mug", "price": 9.5},
]
MISPLACED = {  # files no folder's ingest takes, each holding the person on one line
    "customers/crm.ndjson.gz": gzip.compress(b"".join(orjson.dumps(r) + b"\n" for r in CRM)),
    "catalog/feed.ndjson.gz": gzip.compress(b"".join(orjson.dumps(r) + b"\n" for r in FEED)),
    "events/export.csv": f"user_id,email\n{USER},{EMAIL}\nu-olga,olga@example.com\n".encode(),
    "misc/notes.txt": f"call {EMAIL} back\nnothing here\n".encode(),  # a folder the ingest never lists
}
FAILED = sorted(path for path in MISPLACED if not path.startswith("misc/"))


def decoded(path: Path) -> bytes:
    data = path.read_bytes()
    return gzip.decompress(data) if data.startswith(b"\x1f\x8b") else data


def holding_her(landing: LandingResource) -> dict[str, int]:
    """Lines of every file of the landing zone (decompressed) holding the person's id or email."""
    found = {}
    for path in sorted(p for p in landing.root.rglob("*") if p.is_file()):
        lines = decoded(path).lower().split(b"\n")
        hits = sum(1 for line in lines if USER.encode() in line or EMAIL.lower().encode() in line)
        if hits:
            found[path.relative_to(landing.root).as_posix()] = hits
    return found


@pytest.mark.parametrize("with_store", [False, True])
def test_files_no_folder_takes_are_blanked_by_their_own_encoding(
    settings: Settings, lake: LakeResource, landing: LandingResource, with_store: bool
) -> None:
    state = StateResource(uri=settings.state_store_uri) if with_store else None
    landing.land("events/a.ndjson", identify("m-1", USER, "anon-e", EMAIL) + b"\n" + message("m-2") + b"\n")
    for path, data in MISPLACED.items():
        landing.land(path, data)
    times = {path: os.stat(landing.root / path).st_mtime_ns for path in MISPLACED}
    report = ingest(lake, landing, state=state)
    assert sorted(report.failed_files) == FAILED  # never read by the ingest
    assert holding_her(landing) == {"events/a.ndjson": 1, **dict.fromkeys(MISPLACED, 1)}

    certificate = erase_user(lake, landing, USER, secret=SECRET, state=state)
    assert holding_her(landing) == {}  # no landed byte, decompressed, holds her
    assert certificate.passed, certificate.to_json()
    assert certificate.landing_files == {"events/a.ndjson": 1, **dict.fromkeys(MISPLACED, 1)}
    assert set(certificate.checks["landing"].values()) == {0} and certificate.landing_unreadable == []
    for path in MISPLACED:  # compressed as landed, other lines kept, mtime kept (the same landing)
        assert (landing.root / path).read_bytes().startswith(b"\x1f\x8b") == path.endswith(".gz")
        assert os.stat(landing.root / path).st_mtime_ns == times[path]
    assert b"olga@example.com" in decoded(landing.root / "customers/crm.ndjson.gz")
    assert decoded(landing.root / "misc/notes.txt") == b"\nnothing here\n"

    assert ingest(lake, landing, state=state).files == 0  # ingest_log knows the new sizes: failed once
    log = table(settings, "ingest_log").sort("source_file")
    assert log.select("source_file", "status").rows() == [
        (path, "failed" if path in MISPLACED else "committed")
        for path in sorted([*FAILED, "events/a.ndjson"])
    ]
    sizes = {path: (landing.root / path).stat().st_size for path in FAILED}
    assert dict(log.filter(pl.col("status") == "failed").select("source_file", "bytes").rows()) == sizes


def test_a_landed_file_the_erasure_cannot_decode_fails_the_certificate(
    lake: LakeResource, landing: LandingResource
) -> None:
    crm = b"".join(orjson.dumps(r) + b"\n" for r in CRM) * 50
    packed = gzip.compress(crm)
    landing.land("customers/broken.ndjson.gz", packed[: len(packed) // 2])  # cut short
    landing.land("events/old.ndjson.bz2", bz2.compress(crm))
    landing.land("events/a.ndjson", identify("m-1", USER, "anon-e", EMAIL) + b"\n")
    ingest(lake, landing)
    certificate = erase_user(lake, landing, USER, secret=SECRET)
    assert not certificate.passed  # her bytes may be in there: it cannot say "no trace left"
    assert certificate.landing_unreadable == ["customers/broken.ndjson.gz", "events/old.ndjson.bz2"]
    assert certificate.landing_files == {"events/a.ndjson": 1}


def test_a_gz_crm_file_an_older_release_took_is_blanked(
    settings: Settings, lake: LakeResource, landing: LandingResource, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Releases before per-folder suffixes took `.ndjson.gz` in customers/: her row is in `customers` and
    # the file is `committed` in ingest_log; the erasure runs with today's suffixes.
    with monkeypatch.context() as older:
        older.setitem(LANDING_SUFFIXES, "customers", (".ndjson", ".ndjson.gz", ".csv"))
        landing.land("customers/crm.ndjson.gz", MISPLACED["customers/crm.ndjson.gz"])
        assert ingest(lake, landing).reference_rows == 2
    assert table(settings, "customers").height == 2
    certificate = erase_user(lake, landing, USER, secret=SECRET)
    assert holding_her(landing) == {}
    assert certificate.passed and certificate.landing_files == {"customers/crm.ndjson.gz": 1}
    assert table(settings, "customers")["user_id"].to_list() == ["u-olga"]
    log = table(settings, "ingest_log")
    assert log.select("status", "lines", "accepted").rows() == [("committed", 1, 1)]
    assert log["bytes"].to_list() == [(landing.root / "customers/crm.ndjson.gz").stat().st_size]
    assert ingest(lake, landing).files == 0
