"""GDPR erasure on lake tables: find the person's rows, delete them by surrogate key, vacuum, scrub logs.

No Delta predicate names the person: rows go by non-personal keys, or the table is rewritten without
them. Old versions lose the files that held them (vacuum), and commitInfo provenance that an engine
filled with personal values is redacted.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path

import polars as pl
from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake

from resources.lake import LakeResource
from resources.lake_config import writer_properties
from stores.erasure.history import OldVersions, log_actions
from transforms.erasure.logs import scrub_log
from transforms.erasure.match import kept, mentions
from transforms.erasure.person import ErasureTable, Person, key_predicate, names_person
from transforms.erasure.records import (
    COMMIT_TAG,
    TableErasure,
    daily_counts,
    needs_vacuum,
    unreadable_versions,
)
from transforms.schema import STATS_COLUMNS

log = logging.getLogger(__name__)


def tag(request_id: str) -> CommitProperties:
    # Every erasure commit says so in its commitInfo (the request id only), for audits and `needs_vacuum`.
    return CommitProperties(custom_metadata={COMMIT_TAG: request_id})


def matching_rows(lake: LakeResource, name: str, person: Person) -> pl.DataFrame | None:
    """The rows of table `name` that hold the person (None when the table does not exist)."""
    table = lake.table(name)
    if table is None:
        return None
    lazy = pl.scan_delta(table)
    return lazy.filter(mentions(lazy.collect_schema(), person)).collect()


def append_table(lake: LakeResource, name: str, frame: pl.DataFrame, request_id: str) -> None:
    """Append to a table of this stage, created with only non-personal columns in its statistics."""
    lake.write(name, frame, commit_properties=tag(request_id))


AGGREGATE = "erased_events_daily"
AGGREGATE_KEY = (
    "t.event_date = s.event_date AND t.event_type = s.event_type"
    " AND t.event_name IS NOT DISTINCT FROM s.event_name"
)


def fold_into_aggregate(lake: LakeResource, events: pl.DataFrame | None, request_id: str) -> int:
    """Add the person's events to the running totals of `erased_events_daily`, once per request.

    Totals, not a row set per erasure, and the version before is vacuumed: the person's own counts
    cannot be read back by request, by key or by diffing versions.
    """
    if events is None or events.height == 0:
        return 0
    app_id = f"{COMMIT_TAG}:{request_id}"  # a retry after a crash must not count twice
    commit = CommitProperties(
        app_transactions=[Transaction(app_id, 1)], custom_metadata={COMMIT_TAG: request_id}
    )
    table = lake.table(AGGREGATE)
    counts = daily_counts(events).to_arrow(compat_level=pl.CompatLevel.oldest())
    if table is None:
        lake.write(AGGREGATE, daily_counts(events), commit_properties=commit)
    elif table.transaction_version(app_id) is None:
        # streamed_exec: the non-streamed merge writes its source's value range into the log.
        (
            table.merge(counts, AGGREGATE_KEY, source_alias="s", target_alias="t", streamed_exec=True,
                        writer_properties=writer_properties(), commit_properties=commit)
            .when_matched_update(updates={"events": "t.events + s.events"})
            .when_not_matched_insert_all()
            .execute()
        )  # fmt: skip
        _vacuum(lake.table(AGGREGATE) or table, request_id)
    return events.height


def _vacuum(table: DeltaTable, request_id: str) -> list[str]:
    return table.vacuum(
        retention_hours=0,
        dry_run=False,
        enforce_retention_duration=False,
        full=True,  # also files removed before the last checkpoint, and orphans of crashed writes
        commit_properties=tag(request_id),
    )


def erase_table(
    lake: LakeResource,
    spec: ErasureTable,
    rows: pl.DataFrame | None,
    person: Person,
    request_id: str,
    old: OldVersions,
) -> TableErasure:
    """Delete the person's `rows` from one table, then vacuum the files that held them: those of the
    current version, or when it holds none of theirs, the files only old versions still read (`old`)."""
    table = lake.table(spec.name)
    if table is None or rows is None:
        return TableErasure(spec.name, "missing table")
    before = table.version()
    unfinished = needs_vacuum(table.history())  # an erasure died before its vacuum: vacuum, nothing to read
    old_rows = 0 if rows.height or unfinished else old.rows(lake, spec.name)  # else vacuumed anyway
    if rows.height == 0 and not unfinished and old_rows == 0:
        return TableErasure(spec.name, "no rows", version_before=before, version_after=before)
    method = delete_rows(table, spec, rows, person, request_id) if rows.height else "vacuum"
    table = lake.table(spec.name) or table  # a rewrite commits through the uri: reload
    removed = sorted(_vacuum(table, request_id))
    after = lake.table(spec.name) or table
    return TableErasure(
        spec.name,
        "erased",
        method,
        rows_deleted=rows.height,
        version_before=before,
        version_after=after.version(),
        files_removed=removed,
        versions_unreadable=unreadable_versions(log_actions(lake.table_uri(spec.name)), removed, before),
        old_rows=old_rows,
    )  # rows_remaining, old_rows_remaining: from the certificate's final check of every table


def delete_rows(
    table: DeltaTable, spec: ErasureTable, rows: pl.DataFrame, person: Person, request_id: str
) -> str:
    """Delete by surrogate key when the table has one that does not name the person, else rewrite it."""
    if spec.key:
        predicate = key_predicate(rows, spec.key)
        if not names_person(predicate, person):  # the predicate is kept in the Delta log
            table.delete(predicate, writer_properties=writer_properties(), commit_properties=tag(request_id))
            return "delete"
    lazy = pl.scan_delta(table)
    keep = lazy.filter(~mentions(lazy.collect_schema(), person)).collect()
    write_deltalake(
        table.table_uri,
        keep.to_arrow(compat_level=pl.CompatLevel.oldest()),
        mode="overwrite",
        partition_by=table.metadata().partition_columns or None,
        writer_properties=writer_properties(),
        commit_properties=tag(request_id),
    )
    return "rewrite"


def lake_tables(lake: LakeResource, registry: Iterable[str]) -> list[str]:
    """Every table of the lake (on an object store, which cannot be listed: the `registry` and the
    tables of the contract), those never written left out."""
    names = set(lake.table_names()) | set(registry) | set(STATS_COLUMNS)
    return sorted(name for name in names if lake.table(name) is not None)


def check_tables(
    lake: LakeResource, names: Iterable[str], person: Person
) -> tuple[dict[str, int], dict[str, int]]:
    """Rows of each table that still hold one of the person's keys in any string or nested column, and
    (where any) rows holding an anonymous id of theirs that another user shares, left on purpose."""
    found: dict[str, int] = {}
    left: dict[str, int] = {}
    for name in names:
        table = lake.table(name)
        if table is None:
            continue
        lazy = pl.scan_delta(table)
        schema = lazy.collect_schema()
        counts = lazy.select(
            mentions(schema, person).sum().alias("theirs"), kept(schema, person).sum().alias("kept")
        )
        found[name], shared = (int(n) for n in counts.collect().row(0))
        if shared:
            left[name] = shared
    return found, left


def scrub_delta_logs(lake: LakeResource, person: Person) -> tuple[list[str], int]:
    """Redact the person from commitInfo of every commit in the lake; the files rewritten, traces left."""
    root = lake.root
    if root is None:
        log.warning("delta log scrub skipped: only local lakes can have commit files rewritten")
        return [], 0
    scrubbed: list[str] = []
    left = 0
    for commit in sorted(root.glob("*/_delta_log/*.json")):
        content = commit.read_bytes()
        if not names_person(content.decode("utf-8", errors="replace"), person):
            continue
        clean, remaining = scrub_log(content, person)
        left += remaining
        if clean != content:
            os.rename(staged_rewrite(commit, clean), commit)
            scrubbed.append(commit.relative_to(root).as_posix())
    return scrubbed, left


def staged_rewrite(path: Path, data: bytes) -> Path:
    """`data` next to `path` under a temp name that readers skip, with `path`'s access and modification
    times: renamed over `path`, it changes the content only (time travel by timestamp reads the mtime; a
    landed file's mtime, with its path and size, is what the ingest knows that landing by)."""
    temp = path.with_name(f".{path.name}.erasure.tmp")
    temp.write_bytes(data)
    stat = path.stat()
    os.utime(temp, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    return temp
