"""Hostile landing entries (#13 points 3-6): listed with a reason, never followed, never read past a bound."""

from __future__ import annotations

import bz2
import gzip
import lzma
import os
import threading
import zlib
from datetime import UTC, datetime
from pathlib import Path

import pytest

from resources.landing import LandingResource
from resources.landing_read import FileTooLarge, NotLandingFile, UnknownCompression, gunzip_bounded
from tests.events_data import track
from transforms.ingest.files import process_file, segments
from transforms.ingest.parse import split_lines

MB = 1024 * 1024


@pytest.fixture
def zone(tmp_path: Path) -> LandingResource:
    (tmp_path / "landing" / "events").mkdir(parents=True)
    (tmp_path / "landing" / "events" / "good.ndjson").write_bytes(b"{}\n")
    return LandingResource(uri=str(tmp_path / "landing"), max_file_mb=1)


def listed(zone: LandingResource) -> dict[str, str | None]:
    return {f.path: f.problem for f in zone.list_files("events")}


def test_a_name_that_is_not_utf8_is_listed_escaped_with_a_reason(zone: LandingResource) -> None:
    # #13 point 3: the surrogate-escaped name crashed every evaluation with UnicodeEncodeError.
    with open(os.fsencode(zone.root / "events") + b"/bad\xff.ndjson", "wb") as handle:
        handle.write(b"{}\n")
    found = listed(zone)
    assert found["events/good.ndjson"] is None
    assert "not valid UTF-8" in str(found["events/bad\\xff.ndjson"])
    assert all(path.encode("utf-8") for path in found)


def test_a_fifo_is_listed_with_a_reason_and_reading_it_never_blocks(zone: LandingResource) -> None:
    # #13 point 4: a FIFO named *.ndjson hung every run.
    os.mkfifo(zone.root / "events" / "pipe.ndjson")
    assert "FIFO" in str(listed(zone)["events/pipe.ndjson"])
    outcome: list[BaseException] = []

    def read() -> None:
        try:
            zone.read("events/pipe.ndjson")
        except BaseException as error:  # what the read raised is the outcome
            outcome.append(error)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout=5)
    assert not reader.is_alive(), "reading a FIFO blocked"
    assert isinstance(outcome[0], NotLandingFile)


@pytest.mark.parametrize("target", ["/dev/zero", "/etc/passwd", "outside.ndjson"])
def test_a_symlink_is_listed_with_a_reason_and_never_followed(
    zone: LandingResource, tmp_path: Path, target: str
) -> None:
    # #13 points 4 and 5: links to /dev/zero (OOM), /etc/shadow (into quarantine.raw) and to files
    # outside the zone (ingested as events) were followed.
    outside = tmp_path / "outside.ndjson"
    outside.write_bytes(b'{"secret": 1}\n')
    pointed = target if target.startswith("/") else str(outside)
    os.symlink(pointed, zone.root / "events" / "link.ndjson")
    entry = next(f for f in zone.list_files("events") if f.path == "events/link.ndjson")
    assert entry.problem is not None and "symlink" in entry.problem
    assert entry.size == os.lstat(zone.root / "events" / "link.ndjson").st_size  # the link, not its target
    with pytest.raises(NotLandingFile, match="symlink"):
        zone.read("events/link.ndjson")


def test_a_symlinked_folder_is_not_descended_and_not_read_through(
    zone: LandingResource, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "x.ndjson").write_bytes(b"{}\n")
    os.symlink(elsewhere, zone.root / "events" / "sub")
    assert "symlink" in str(listed(zone)["events/sub"])
    assert "events/sub/x.ndjson" not in listed(zone)
    with pytest.raises(NotLandingFile, match="symlink"):
        zone.read("events/sub/x.ndjson")  # a manifest naming a path through the link


def test_a_temp_named_folder_is_never_entered(zone: LandingResource) -> None:
    # review: a folder named `*.tmp` (a producer staging a drop) was listed and read half-written.
    for path in (
        "events/drop-42.tmp/part-1.ndjson",
        "events/.staging/part-0.ndjson",
        "events/ok/part-0.ndjson",
    ):
        (zone.root / path).parent.mkdir(parents=True, exist_ok=True)
        (zone.root / path).write_bytes(b"{}\n")
    assert sorted(listed(zone)) == ["events/good.ndjson", "events/ok/part-0.ndjson"]
    assert [f.path for f in zone.list_files("")] == ["events/good.ndjson", "events/ok/part-0.ndjson"]


@pytest.mark.parametrize(
    ("path", "takes"),
    [
        ("events/export.csv", "events/ takes .ndjson or .ndjson.gz"),
        ("events/request.json", "events/ takes .ndjson or .ndjson.gz"),
        ("customers/crm.ndjson.gz", "customers/ takes .ndjson or .csv"),
        ("catalog/products.json", "catalog/ takes .ndjson or .csv"),
        ("erasure/request.ndjson", "erasure/ takes .json"),
    ],
)
def test_a_file_its_folder_does_not_take_is_listed_with_a_reason_and_never_read(
    zone: LandingResource, path: str, takes: str
) -> None:
    # review: a `.csv` in events/ was read as NDJSON (its header quarantined, its lines committed).
    zone.land(path, b"user_id,email\n")
    [entry] = [f for f in zone.list_files(path.split("/")[0]) if f.path == path]
    assert entry.problem is not None and takes in entry.problem
    with pytest.raises(ValueError, match=takes):
        zone.read(path)


@pytest.mark.parametrize(
    "path", ["events/a.ndjson.gz", "customers/crm.csv", "catalog/p.ndjson", "erasure/r.json"]
)
def test_the_files_each_folder_takes_are_listed_without_a_problem(zone: LandingResource, path: str) -> None:
    zone.land(path, b"")
    assert [f.problem for f in zone.list_files(path.split("/")[0]) if f.path == path] == [None]


def test_a_top_folder_that_is_a_symlink_is_one_entry_never_listed_through(
    zone: LandingResource, tmp_path: Path
) -> None:
    # review: customers -> a folder outside the zone was listed through: ingest_log recorded the name and
    # size of every file there.
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "hr-salaries.ndjson").write_bytes(b"x" * 1234)
    os.symlink(outside, zone.root / "customers")
    [entry] = zone.list_files("customers")
    assert entry.path == "customers" and entry.size == os.lstat(zone.root / "customers").st_size
    assert entry.problem is not None and "customers/ is a symlink" in entry.problem
    assert "customers/hr-salaries.ndjson" not in [f.path for f in zone.list_files("")]
    (zone.root / "catalog").write_bytes(b"")  # a file where a folder belongs
    assert "not a folder" in str(zone.list_files("catalog")[0].problem)
    assert zone.list_files("nothing-here") == []


def test_a_hard_link_is_read_as_the_regular_file_it_is(zone: LandingResource, tmp_path: Path) -> None:
    """Kept on purpose: `ln` is a producer's atomic way to land a file (as a rename is), and a hard link
    gives no more than a copy would (with fs.protected_hardlinks, the default, only to a file its maker
    owns or may read and write), unlike a symlink, which is resolved with the reader's rights at read
    time. Its landing time is when it was linked (the link count change sets the ctime)."""
    staged = tmp_path / "staged.ndjson"
    staged.write_bytes(b"{}\n")
    os.utime(staged, (1, 1))
    os.link(staged, zone.root / "events" / "linked.ndjson")
    [entry] = [f for f in zone.list_files("events") if f.path == "events/linked.ndjson"]
    assert entry.problem is None and zone.read(entry.path)[1] == b"{}\n"
    assert entry.landed_at > datetime(2020, 1, 1, tzinfo=UTC) and entry.modified_at.timestamp() == 1


@pytest.mark.parametrize("path", ["../outside.ndjson", "/etc/passwd.ndjson", "events/../../outside.ndjson"])
def test_a_path_outside_the_zone_is_refused(zone: LandingResource, tmp_path: Path, path: str) -> None:
    (tmp_path / "outside.ndjson").write_bytes(b"{}\n")
    with pytest.raises(NotLandingFile):
        zone.read(path)
    assert zone.stat(path) is None


def bomb(size: int, member: bytes = b"\n" * MB) -> bytes:
    """A gzip member of `size` bytes of `member` repeated, built without holding them."""
    squeeze = zlib.compressobj(9, zlib.DEFLATED, 31)
    return b"".join(squeeze.compress(member) for _ in range(size // len(member))) + squeeze.flush()


def test_gzip_is_decompressed_in_chunks_and_stopped_at_the_bound() -> None:
    # #13 point 6: a bomb was decompressed whole (2 GB bombs OOM-killed every retry).
    data = bomb(64 * MB)
    assert len(data) < MB // 8
    with pytest.raises(FileTooLarge, match="LAKEMAIL_MAX_FILE_MB"):
        gunzip_bounded(data, 8 * MB)
    assert gunzip_bounded(data, 64 * MB) == b"\n" * (64 * MB)


def test_every_gzip_member_is_read_and_broken_gzip_raises() -> None:
    two = gzip.compress(b"a\n") + gzip.compress(b"b\n")
    assert gunzip_bounded(two, MB) == b"a\nb\n"
    with pytest.raises(gzip.BadGzipFile):
        gunzip_bounded(b"not gzip", MB)
    with pytest.raises(gzip.BadGzipFile, match="0 bytes"):  # Python's gzip reads it as empty
        gunzip_bounded(b"", MB)
    with pytest.raises(EOFError):
        gunzip_bounded(gzip.compress(b"a\n" * 1000)[:-12], MB)


def test_a_plain_file_over_the_bound_is_refused_unread(zone: LandingResource) -> None:
    (zone.root / "events" / "big.ndjson").write_bytes(b"{}\n" * (MB // 3 + 1))
    with pytest.raises(FileTooLarge):
        zone.read("events/big.ndjson")
    assert zone.read("events/good.ndjson") == (b"{}\n", b"{}\n")


def test_segments_cut_after_newlines_and_count_the_lines_before() -> None:
    data = b"".join(b"%d\n" % n for n in range(1000))
    parts = list(segments(data, size=100))
    assert b"".join(p for _, p in parts) == data
    assert all(p.endswith(b"\n") for _, p in parts)
    assert [before for before, _ in parts] == [
        sum(p.count(b"\n") for _, p in parts[:i]) for i in range(len(parts))
    ]
    assert list(segments(data, size=len(data))) == [(0, data)]  # a small file is one segment, not copied


def test_a_segment_never_starts_with_a_bom_that_was_inside_the_file() -> None:
    data = b"a\n" * 60 + b"\xef\xbb\xbfb\n" + b"c\n" * 60
    parts = list(segments(data, size=120))
    assert b"".join(p for _, p in parts) == data
    assert [line for _, p in parts for line in split_lines(p)] == split_lines(data)


def test_a_file_parsed_in_segments_gives_what_it_gives_whole() -> None:
    lines = [track(f"m-{n}") if n % 7 else b"{broken" for n in range(1, 300)]
    data = b"\n".join(lines[:150]) + b"\n\n\n" + b"\n".join(lines[150:]) + b"\n"
    at = datetime(2026, 11, 22, tzinfo=UTC)

    def parse(segment_bytes: int) -> tuple[object, ...]:
        result = process_file(
            data,
            source_file="events/a.ndjson",
            landed_at=at,
            ingested_at=at,
            batch_id=1,
            segment_bytes=segment_bytes,
        )
        return result.lines, result.events.rows(), result.quarantine.rows()

    whole = parse(len(data))
    assert len(list(segments(data, 1000))) > 10
    assert parse(1000) == whole


def test_the_whole_zone_lists_paths_relative_to_its_root(zone: LandingResource) -> None:
    """Erasure lists every folder with `list_files("")`: paths like `events/good.ndjson`, readable as such
    (the scandir listing first gave `/events/good.ndjson`, which `read` refuses as outside the zone)."""
    zone.land("customers/crm.csv", b"user_id,email\n")
    paths = [f.path for f in zone.list_files("")]
    assert paths == ["customers/crm.csv", "events/good.ndjson"]
    assert all(zone.read(path)[1] for path in paths)


@pytest.mark.parametrize(
    ("name", "data", "content", "packed"),
    [
        # A type customers/ refuses. mtime=0: a gzip's time is in its bytes, so in the test's id, and two
        # test workers collecting in different seconds saw different tests (`pytest -n 2` failed).
        ("customers/crm.ndjson.gz", gzip.compress(b"a\nb\n", mtime=0), b"a\nb\n", True),
        ("events/x.csv", b"id,email\n1,a@b.c\n", b"id,email\n1,a@b.c\n", False),
        ("misc/dump.ndjson", gzip.compress(b"a\n", mtime=0), b"a\n", True),  # gzip by its bytes, any name
        ("misc/plain.gz", b"not gzip\n", b"not gzip\n", False),
    ],
)
def test_erasure_reads_any_file_by_its_own_encoding(
    zone: LandingResource, name: str, data: bytes, content: bytes, packed: bool
) -> None:
    zone.land(name, data)
    assert zone.read_decoded(name) == (data, content, packed)


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (bz2.compress(b"a\n"), UnknownCompression),
        (lzma.compress(b"a\n"), UnknownCompression),
        (gzip.compress(b"a\n" * 1000, mtime=0)[:-12], EOFError),
        (bomb(2 * MB), FileTooLarge),  # the bound holds for any name
    ],
)
def test_what_erasure_cannot_decode_raises(
    zone: LandingResource, data: bytes, error: type[Exception]
) -> None:
    zone.land("misc/x.txt", data)
    with pytest.raises(error):
        zone.read_decoded("misc/x.txt")
