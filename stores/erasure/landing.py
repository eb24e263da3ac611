"""GDPR erasure in the landing zone: blank the person's landed lines, keep `ingest_log` in step.

Every folder is visited (events, the CRM's customers in NDJSON or CSV, catalog, any other) but the
requests in `erasure/`, and every file in it, whatever the ingest takes there; a line is blanked in
place, so the other lines keep their numbers and a CSV its header. Each rewrite is a temp name renamed
over the file, with `ingest_log` describing the new bytes first, so the ingest neither takes the file
again nor reports it as changed.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import zlib
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from resources.lake import LakeResource
from resources.lake_config import writer_properties
from resources.landing import LandedFile, LandingResource
from resources.landing_read import NotLandingFile
from stores.erasure.lake import staged_rewrite, tag
from stores.profiles import lake_lookup
from transforms.erasure.claims import NOT_INGESTED
from transforms.erasure.landed import landed_aliases, landed_edges, landed_links
from transforms.erasure.match import Lines, blank_lines
from transforms.erasure.person import KEPT_FOLDERS, Person
from transforms.erasure.records import adjust_ingest_log
from transforms.profiles.aliases import Lookup
from transforms.schema import IDENTITIES_SCHEMA, INGEST_LOG_SCHEMA

REWRITTEN_SCHEMA: dict[str, pl.DataType] = {
    "source_file": pl.String(),
    "old_sha256": pl.String(),
    "new_bytes": pl.Int64(),
    "new_sha256": pl.String(),
    "blanked": pl.Int64(),
    "rows_blanked": pl.Int64(),
    "old_bytes": pl.Int64(),
}
UNREADABLE = (OSError, EOFError, zlib.error)  # gzip.BadGzipFile is an OSError
LOG_COLUMNS = ("bytes", "sha256", "lines", "accepted", "quarantined", "duplicates")


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class LandingRewrite:
    """A landed file holding lines of the person: its bytes before and after blanking them."""

    path: str
    old: bytes
    new: bytes
    blanked: list[int]
    rows_blanked: int = 0  # accepted rows the lake keeps by key, not by line (customers, catalog)


@dataclass(frozen=True)
class LandingScan:
    """The files to rewrite, the lines holding the person per file visited, and unreadable files; the lines
    left holding a shared or kept anonymous id of theirs (`transforms.erasure.claims`) per file."""

    rewrites: list[LandingRewrite]
    found: dict[str, int]
    unreadable: list[str]
    kept: dict[str, int]


def landed_files(landing: LandingResource) -> list[LandedFile]:
    """Every landed file an erasure visits: all folders (and the root) but the kept ones."""
    return [f for f in landing.list_files("") if f.path.split("/", 1)[0] not in KEPT_FOLDERS]


def _pending(lake: LakeResource, landing: LandingResource) -> Iterator[bytes]:
    """The content of each landed event file the ingest has not taken yet."""
    logged = set(lake.read("ingest_log", INGEST_LOG_SCHEMA, ["source_file", "bytes"]).iter_rows())
    for landed in landing.list_files("events"):
        if (landed.path, landed.size) in logged:
            continue  # ingested: its links are in identities and events
        try:
            yield landing.read(landed.path)[1]
        except (ValueError, *UNREADABLE):
            continue


def pending_links(
    lake: LakeResource, landing: LandingResource, user_ids: Collection[str]
) -> tuple[set[str], set[str]]:
    """Anonymous ids and emails linked to `user_ids` by landed event files the ingest has not taken yet."""
    anonymous: set[str] = set()
    emails: set[str] = set()
    for content in _pending(lake, landing):
        found = landed_links(content, *user_ids)
        anonymous |= found[0]
        emails |= found[1]
    return anonymous, emails


def pending_edges(
    lake: LakeResource, landing: LandingResource, user_ids: Collection[str], anonymous_ids: Collection[str]
) -> pl.DataFrame:
    """anonymous_id, user_id: links of `anonymous_ids` to users not of `user_ids` in files the ingest has
    not taken."""
    found: set[tuple[str, str]] = set()
    for content in _pending(lake, landing) if anonymous_ids else ():
        found |= landed_edges(content, anonymous_ids, *user_ids)
    schema = {"anonymous_id": pl.String(), "user_id": pl.String()}
    return pl.DataFrame(sorted(found), schema=schema, orient="row")


def pending_lookup(lake: LakeResource, landing: LandingResource) -> Lookup:
    """The lake's identities edges (`stores.profiles.lake_lookup`) and those the aliases of landed event
    files not ingested yet will make (`landed_aliases`; first seen and aliased after every ingested edge),
    as a claim walk's lookup."""
    found = sorted({edge for content in _pending(lake, landing) for edge in landed_aliases(content)})
    aliases = pl.DataFrame(found, schema=["anonymous_id", "user_id"], orient="row").select(
        pl.col("anonymous_id", "user_id").cast(pl.String()),
        *(pl.lit(NOT_INGESTED, IDENTITIES_SCHEMA[c]).alias(c) for c in ("first_seen_at", "aliased_at")),
    )
    lake_rows = lake_lookup(lake)

    def lookup(column: str, ids: pl.Series) -> pl.DataFrame:
        pending = aliases.filter(pl.col(column).is_in(ids.implode()))
        return pl.concat([lake_rows(column, ids).select(list(IDENTITIES_SCHEMA)), pending])

    return lookup


def _positions(rows: dict[str, pl.DataFrame | None]) -> dict[str, set[int]]:
    """Landed lines (file -> line numbers) behind the person's event and quarantine rows."""
    found: dict[str, set[int]] = {}
    for name in ("events", "quarantine"):
        frame = rows.get(name)
        if frame is not None:
            for path, line in frame.select("source_file", "source_line").iter_rows():
                found.setdefault(path, set()).add(line)
    return found


def _traces(data: bytes, lines: Lines) -> int:
    return sum(1 for line in data.split(b"\n") if line and lines.theirs(line))


def scan_landing(
    landing: LandingResource, person: Person, rows: dict[str, pl.DataFrame | None]
) -> LandingScan:
    """Landed files with lines of the person (by content or as their rows' source) to blank.

    Every regular file of the zone is read by its own encoding (gunzipped when it is gzip, whatever its
    name or folder; as it is otherwise), whether the ingest takes it or not (a misplaced export, a `.gz`
    in a folder that takes none): the person's landed bytes go wherever they are. A link, FIFO or device
    holds no landed bytes and is never opened through (a FIFO hung the erasure with both lane locks held;
    a link was followed out of the zone, or counted a file of the zone twice); a file that cannot be read
    (over the bound, a broken gzip, another compression) is listed, and fails the certificate.
    """
    lines = Lines.of(person)
    positions = _positions(rows)
    scan = LandingScan([], {}, [], {})
    for landed in landed_files(landing):
        try:
            old, content, packed = landing.read_decoded(landed.path)
        except NotLandingFile:
            scan.found[landed.path] = 0
            continue
        except UNREADABLE:  # FileTooLarge and UnknownCompression too
            scan.unreadable.append(landed.path)
            continue
        at = positions.get(landed.path, set())
        new, blanked = blank_lines(content, lines, at)
        scan.found[landed.path] = 0  # a blanked file is counted again once rewritten
        if kept := lines.count_kept(new):
            scan.kept[landed.path] = kept
        if blanked:
            data = gzip.compress(new, mtime=0) if packed else new  # compressed as it landed
            keyed = 0 if landed.path.startswith("events/") else len(set(blanked) - at)
            scan.rewrites.append(LandingRewrite(landed.path, old, data, blanked, keyed))
    return scan


def count_landing_traces(
    landing: LandingResource, rewrites: list[LandingRewrite], person: Person
) -> dict[str, int]:
    """Lines of the rewritten files that still hold the person, read back from the landing zone."""
    lines = Lines.of(person)
    return {r.path: _traces(landing.read_decoded(r.path)[1], lines) for r in rewrites}


def rewrite_landing(
    lake: LakeResource,
    landing: LandingResource,
    rewrites: list[LandingRewrite],
    rows: dict[str, pl.DataFrame | None],
    request_id: str,
) -> None:
    """Put the blanked files in place and make `ingest_log` describe them (size, hash, counts)."""
    temps: list[tuple[Path, Path]] = []
    for rewrite in rewrites:
        final = landing.root / rewrite.path
        # its mtime kept: with path and the new size in ingest_log, the same landing (not a new one to take);
        # its ctime moves, but a taken file's landed_at is the one ingest_log holds (`arrivals`)
        temps.append((staged_rewrite(final, rewrite.new), final))
    update_ingest_log(lake, rewrites, rows, request_id)
    for temp, final in temps:
        os.rename(temp, final)


def update_ingest_log(
    lake: LakeResource,
    rewrites: list[LandingRewrite],
    rows: dict[str, pl.DataFrame | None],
    request_id: str,
) -> None:
    """Merge new bytes, sha256 and counts into the ingest_log rows of the files the erasure touched."""
    table = lake.table("ingest_log")
    if table is None:
        return
    removed = _removed_per_file(rows)
    rewritten = pl.DataFrame(
        [
            (r.path, _sha(r.old), len(r.new), _sha(r.new), len(r.blanked), r.rows_blanked, len(r.old))
            for r in rewrites
        ],
        schema=REWRITTEN_SCHEMA,
        orient="row",
    )
    touched = set(removed["source_file"].to_list()) | set(rewritten["source_file"].to_list())
    # through `lake.scan`: a table from before a column was added (modified_at) reads it as null
    current = (
        lake.scan("ingest_log", INGEST_LOG_SCHEMA).filter(pl.col("source_file").is_in(touched)).collect()
    )
    updates = adjust_ingest_log(current, removed, rewritten)
    if updates.height == 0:
        return
    (
        table.merge(
            updates.select("source_file", "batch_id", *LOG_COLUMNS).to_arrow(
                compat_level=pl.CompatLevel.oldest()
            ),
            predicate="t.source_file = s.source_file AND t.batch_id = s.batch_id",
            source_alias="s",
            target_alias="t",
            streamed_exec=True,  # the non-streamed merge writes its source's value range into the log
            writer_properties=writer_properties(),
            commit_properties=tag(request_id),
        )
        .when_matched_update(updates={c: f"s.{c}" for c in LOG_COLUMNS})
        .execute()
    )


def _removed_per_file(rows: dict[str, pl.DataFrame | None]) -> pl.DataFrame:
    """source_file, events, quarantine: how many of the person's rows each landed file had."""
    frames = [
        frame.select("source_file", pl.lit(name).alias("table"))
        for name in ("events", "quarantine")
        if (frame := rows.get(name)) is not None
    ]
    stacked = (
        pl.concat(frames) if frames else pl.DataFrame(schema={"source_file": pl.String, "table": pl.String})
    )
    return stacked.group_by("source_file").agg(
        (pl.col("table") == name).sum().cast(pl.Int64).alias(name) for name in ("events", "quarantine")
    )
