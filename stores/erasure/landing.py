"""GDPR erasure in the landing zone: blank the person's landed lines, keep `ingest_log` in step."""

from __future__ import annotations

import gzip
import hashlib
import os
import re
import zlib
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from resources.lake import LakeResource, writer_properties
from resources.landing import LandingResource
from stores.erasure.lake import staged_rewrite, tag
from transforms.erasure.person import LANDING_FOLDERS, Person, blank_lines, text_pattern
from transforms.erasure.records import adjust_ingest_log
from transforms.schema import INGEST_LOG_SCHEMA

REWRITTEN_SCHEMA: dict[str, pl.DataType] = {
    "source_file": pl.String(),
    "old_sha256": pl.String(),
    "new_bytes": pl.Int64(),
    "new_sha256": pl.String(),
    "blanked": pl.Int64(),
}
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


def _positions(rows: dict[str, pl.DataFrame | None]) -> dict[str, set[int]]:
    """Landed lines (file -> line numbers) behind the person's event and quarantine rows."""
    found: dict[str, set[int]] = {}
    for name in ("events", "quarantine"):
        frame = rows.get(name)
        if frame is not None:
            for path, line in frame.select("source_file", "source_line").iter_rows():
                found.setdefault(path, set()).add(line)
    return found


def scan_landing(
    landing: LandingResource, person: Person, rows: dict[str, pl.DataFrame | None]
) -> tuple[list[LandingRewrite], list[str]]:
    """Landed files with lines of the person (by content or as their rows' source); unreadable files."""
    pattern = re.compile(text_pattern(person).encode())
    positions = _positions(rows)
    rewrites: list[LandingRewrite] = []
    unreadable: list[str] = []
    for folder in LANDING_FOLDERS:
        for landed in landing.list_files(folder):
            try:
                old, content = landing.read(landed.path)
            except ValueError:
                continue  # not a landing data file: the ingest does not read it either
            except (OSError, EOFError, zlib.error):  # gzip.BadGzipFile is an OSError
                unreadable.append(landed.path)
                continue
            new, blanked = blank_lines(content, pattern, positions.get(landed.path, set()))
            if blanked:
                data = gzip.compress(new, mtime=0) if landed.path.endswith(".gz") else new
                rewrites.append(LandingRewrite(landed.path, old, data, blanked))
    return rewrites, unreadable


def count_landing_traces(landing: LandingResource, rewrites: list[LandingRewrite], person: Person) -> int:
    """Lines of the rewritten files that still hold the person (the landing zero-line check)."""
    pattern = re.compile(text_pattern(person).encode())
    return sum(1 for r in rewrites for line in landing.read(r.path)[1].split(b"\n") if pattern.search(line))


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
        temps.append((staged_rewrite(final, rewrite.new), final))  # landed_at stays the landing time
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
        [(r.path, _sha(r.old), len(r.new), _sha(r.new), len(r.blanked)) for r in rewrites],
        schema=REWRITTEN_SCHEMA,
        orient="row",
    )
    touched = set(removed["source_file"].to_list()) | set(rewritten["source_file"].to_list())
    current = pl.scan_delta(table).filter(pl.col("source_file").is_in(touched)).collect()
    updates = adjust_ingest_log(current.select(list(INGEST_LOG_SCHEMA)), removed, rewritten)
    if updates.height == 0:
        return
    (
        table.merge(
            updates.to_arrow(compat_level=pl.CompatLevel.oldest()),
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
