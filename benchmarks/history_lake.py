"""A lake after thousands of small micro-batches: one commit and one small file per table and batch.

What each past batch committed, table by table, as the micro-batch job commits it: `events` (a file per
partition it touched), `quarantine`, `identities` (new edges), `ingest_log` (its landed file),
`profile_updates` (its partials; a fold removes them every 250k partials), `triggers` (its decisions)
and `trigger_state` (rewritten whole); the CRM and catalog files every few minutes. Commits go straight
into `_delta_log` (`deltalog.RawTable`), checkpoints where delta-rs would have left them. The landed
files stay in the landing zone, as lakemail leaves them, sparse: listing and stat see their sizes.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl

from benchmarks.deltalog import Action, Layout, RawTable, checkpoint, remove
from benchmarks.history_jobs import events_job, rows_job, updates_job
from benchmarks.parallel import people_path, read_people, run_jobs
from benchmarks.past import Past
from benchmarks.states import activity, profile_states
from benchmarks.tables import catalog_rows, customers_rows, decision_rows, ingest_log_rows
from resources.lake import LakeResource
from transforms.profiles.derive import derive
from transforms.profiles.tables import PROFILE_UPDATES_SCHEMA
from transforms.schema import (
    BATCH_APP,
    CATALOG_CHANGES_SCHEMA,
    CATALOG_SCHEMA,
    CUSTOMERS_SCHEMA,
    EVENTS_SCHEMA,
    FOLD_APP,
    FOLD_EVERY_ROWS,
    IDENTITIES_SCHEMA,
    INGEST_APP_ID,
    INGEST_LOG_SCHEMA,
    PROFILES_SCHEMA,
    QUARANTINE_SCHEMA,
    RUN_APP,
    TRIGGERS_SCHEMA,
    UPDATES_APP,
)

SCHEMAS: dict[str, dict[str, pl.DataType]] = {
    "events": EVENTS_SCHEMA,
    "quarantine": QUARANTINE_SCHEMA,
    "identities": IDENTITIES_SCHEMA,
    "ingest_log": INGEST_LOG_SCHEMA,
    "profile_updates": PROFILE_UPDATES_SCHEMA,
    "triggers": TRIGGERS_SCHEMA,
    "trigger_state": TRIGGERS_SCHEMA,
    "customers": CUSTOMERS_SCHEMA,
    "catalog": CATALOG_SCHEMA,
    "catalog_changes": CATALOG_CHANGES_SCHEMA,
}
BATCH_TABLES = ("quarantine", "events", "identities", "ingest_log", "triggers")  # a commit per batch
ROW_TABLES = ("quarantine", "ingest_log", "triggers")
RANGES = 4  # batch ranges per table, for the two worker processes


@dataclass(frozen=True)
class History:
    """`batches` past micro-batches of `events_per_batch` events, one every `every`, of `users` shoppers."""

    batches: int = 10_000
    events_per_batch: int = 1_000
    users: int = 100_000
    every: timedelta = timedelta(seconds=5)
    partials_per_batch: int = 700  # principals a 1,000-event simulated batch touches (about 700)
    pending: int = 2_000  # candidates waiting in trigger_state
    reference_every: int = 120  # batches between CRM and catalog files (10 simulated minutes)

    def past(self, seed: int, now: datetime) -> Past:
        events = self.batches * self.events_per_batch
        return Past(self.users, events, seed, now, self.every * self.batches, self.events_per_batch)


@dataclass(frozen=True)
class HistoryLake:
    """What was written: data files and commits, and the partials still waiting for a fold."""

    files: int
    commits: int
    waiting_partials: int
    folds: int


def fold_batches(batches: int, partials_per_batch: int, threshold: int = FOLD_EVERY_ROWS) -> list[int]:
    """The batches after which the profiles asset folded: every `threshold` partials, the last one so
    long ago that about half the threshold waits now (the average a measured run meets)."""
    every = -(-threshold // partials_per_batch)
    return list(range(batches - every // 2, 0, -every))[::-1]


def batch_ranges(batches: int, parts: int) -> list[tuple[int, int]]:
    """1..`batches` cut into `parts` consecutive (first, last) ranges."""
    cuts = [batches * i // parts for i in range(parts + 1)]
    return [(cuts[i] + 1, cuts[i + 1]) for i in range(parts) if cuts[i + 1] > cuts[i]]


def build_history_lake(home: Path, history: History, past: Past, say: Callable[[str], None]) -> HistoryLake:
    """Write `history` (as `past`) into `home/lake` and its landed files into `home/landing`.

    For the shoppers `prebuilt.write_shoppers` left in `home`; the data is made by worker processes.
    """
    lake = LakeResource(uri=str(home / "lake"))
    for name, schema in SCHEMAS.items():  # protocol, schema and table properties from the repo's writer
        partition = ["event_date"] if name == "events" else None
        lake.write(name, pl.DataFrame(schema=schema), partition_by=partition)
    raw = {name: RawTable(lake.table_uri(name)) for name in SCHEMAS}
    layouts = {name: table.layout for name, table in raw.items()}
    people, n = people_path(home), history.batches
    folds = fold_batches(n, history.partials_per_batch)
    folded = max(folds, default=0)
    jobs: list[Callable[[], Any]] = [
        functools.partial(_templates, layouts, people, past, history.pending),
        functools.partial(_write_state, lake.uri, people, past, folded),
    ]
    for batches in batch_ranges(n, RANGES):
        jobs.append(functools.partial(events_job, layouts, people, past, *batches))
        per_batch = history.partials_per_batch
        updates = layouts["profile_updates"]
        jobs.append(
            functools.partial(updates_job, updates, people, past, per_batch, batches, max(folds, default=0))
        )
        jobs += [functools.partial(rows_job, layouts[t], t, people, past, *batches) for t in ROW_TABLES]
    say(f"history: writing the files of {n:,} batches ({len(jobs)} jobs)")
    templates, _, *results = run_jobs(jobs, isolate=True)
    actions: dict[str, list[list[Action]]] = {name: [] for name in (*BATCH_TABLES, "profile_updates")}
    for result in results:
        for name, per_table in result.items():
            actions[name] += per_table
    say("history: committing")
    _commit_batches(raw, actions, templates, set(folds), past, history)
    versions = {t: table.last_checkpoint() for t, table in raw.items()}
    run_jobs(
        [functools.partial(checkpoint, str(raw[t].root), v) for t, v in versions.items() if v is not None]
    )
    land_past(home, ingest_log_rows(past))
    files = sum(1 for _ in (home / "lake").rglob("*.parquet"))
    waiting = (n - folded) * history.partials_per_batch
    return HistoryLake(files, sum(t.version for t in raw.values()), waiting, len(folds))


def _commit_batches(
    raw: dict[str, RawTable],
    per_batch: dict[str, list[list[Action]]],
    templates: dict[str, Action],
    folds: set[int],
    past: Past,
    history: History,
) -> None:
    """A commit per table and batch, in batch order, with the tags the job's assets write."""
    live: dict[str, Action | None] = dict.fromkeys(templates)
    live_updates: list[Action] = []
    for batch in range(1, history.batches + 1):
        tag = {INGEST_APP_ID: batch}
        for name in BATCH_TABLES:
            adds = per_batch[name][batch - 1]
            if adds:  # an empty append commits nothing (LakeResource.write)
                raw[name].commit(adds, txns={RUN_APP: batch} if name == "triggers" else tag)
        if batch % history.reference_every == 0:
            for name in ("catalog", "customers"):
                live[name] = _replace(raw[name], live[name], templates[name], tag)
            raw["catalog_changes"].append([_changes(batch, past)], txns=tag)
        live_updates += per_batch["profile_updates"][batch - 1]
        raw["profile_updates"].commit(per_batch["profile_updates"][batch - 1], txns={UPDATES_APP: batch})
        if batch in folds:
            raw["profile_updates"].commit([remove(a) for a in live_updates], operation="DELETE")
            live_updates = []
        state = {RUN_APP: batch, BATCH_APP: batch}
        live["trigger_state"] = _replace(
            raw["trigger_state"], live["trigger_state"], templates["trigger_state"], state
        )


def _templates(layouts: dict[str, Layout], people_file: str, past: Past, pending: int) -> dict[str, Action]:
    """The files each rewrite of trigger_state, catalog and customers copies (their content holds still)."""
    people = read_people(people_file)
    return {
        "trigger_state": layouts["trigger_state"].write_file(_pending(people, past, pending)),
        "catalog": layouts["catalog"].write_file(catalog_rows(past)),
        "customers": layouts["customers"].write_file(customers_rows(people, past)),
    }


def _replace(table: RawTable, live: Action | None, template: Action, txns: dict[str, int]) -> Action:
    """Overwrite the table with a copy of the `template` file (a new file, as a rewrite makes)."""
    add = table.copy_file(template)
    table.commit([*([remove(live)] if live else []), add], txns=txns, mode="Overwrite")
    return add


def _changes(batch: int, past: Past) -> pl.DataFrame:
    """A catalog file's changes: a restock and a markdown."""
    at = past.now - past.span + (past.span * batch) / past.batches
    return pl.DataFrame(
        {
            "product_id": ["p-00001", "p-00002"],
            "change": ["back_in_stock", "price_drop"],
            "old_value": [0.0, 40.0],
            "new_value": [12.0, 30.0],
            "changed_at": [at, at],
            "batch_id": [batch, batch],
        },
        schema=CATALOG_CHANGES_SCHEMA,
    )


def _pending(people: pl.DataFrame, past: Past, count: int) -> pl.DataFrame:
    """Candidates waiting in trigger_state: `held`, due after the measured batches."""
    rows = decision_rows(people, past, timedelta(0), salt=1).head(count)  # ids the log does not hold
    due = pl.lit(past.now, dtype=rows["due_at"].dtype) + pl.duration(hours=1)
    return rows.with_columns(
        pl.lit("held").alias("decision"),
        due.alias("due_at"),
        (due + pl.duration(hours=24)).alias("expires_at"),
    )


def _write_state(uri: str, people_file: str, past: Past, folded: int) -> None:
    """profile_state and profiles of the last fold, through the repo's writer."""
    lake, people = LakeResource(uri=uri), read_people(people_file)
    state = profile_states(people, past.events_per_user, seed=past.seed, window=activity(past))
    lake.write_tagged("profile_state", state, {FOLD_APP: folded}, mode="overwrite")
    crm = customers_rows(people, past)
    profiles = derive(state, crm, past.now).select(list(PROFILES_SCHEMA))
    lake.write_tagged("profiles", profiles, {FOLD_APP: folded}, mode="overwrite")


def land_past(home: Path, log: pl.DataFrame) -> None:
    """The past batches' landed files, sparse: their sizes without their bytes, and the mtimes their
    `ingest_log` rows recorded (`modified_at`): a landed file is known by its path, size and mtime, so one
    with another mtime is a new landing, which the aged lake's first run would take (10,000 files)."""
    folder = home / "landing" / "events"
    folder.mkdir(parents=True, exist_ok=True)
    for path, size, modified in log.select("source_file", "bytes", "modified_at").iter_rows():
        with open(home / "landing" / path, "wb") as handle:
            handle.truncate(size)
        os.utime(home / "landing" / path, ns=(_ns(modified), _ns(modified)))


def _ns(moment: datetime) -> int:
    return int(moment.timestamp()) * 1_000_000_000 + moment.microsecond * 1_000
