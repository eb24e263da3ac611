"""A pre-built lake: a synthetic past written with the application transactions the assets read.

Each table gets the Delta application transaction its asset checks before doing work (the ingest batch
number, the profile fold and update marks, the trigger engine's run and batch), so the first measured
micro-batch carries on from batch `Past.batches` as if the lake had lived through it. Tables are
written in large files, as maintenance leaves them; what small files cost is `batch_history`'s figure.
The big tables (`events`, `profile_state`, `profiles`) are written by two worker processes, file by
file, and committed in order by this one (`deltalog`); the others by the repo's own writer.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl

from benchmarks.common import lake_of
from benchmarks.deltalog import Action, Layout, RawTable
from benchmarks.parallel import people_path, read_people, run_jobs, save_people
from benchmarks.past import Past
from benchmarks.shop import day_events, shoppers
from benchmarks.states import QUIET, activity, pending_partials, profile_states
from benchmarks.tables import (
    catalog_rows,
    customers_rows,
    decision_rows,
    ingest_log_rows,
    quarantine_rows,
    suppressions_rows,
)
from orchestration.settings import ensure_secret
from resources.lake import LakeResource
from stores.profiles import waiting_updates
from transforms.profiles.derive import derive
from transforms.profiles.state import PARTIAL_SCHEMA
from transforms.profiles.tables import PROFILE_UPDATES_SCHEMA
from transforms.schema import (
    BATCH_APP,
    CATALOG_CHANGES_SCHEMA,
    EVENTS_SCHEMA,
    FOLD_APP,
    IDENTITIES_SCHEMA,
    PROFILES_SCHEMA,
    RUN_APP,
    TRIGGERS_SCHEMA,
    UPDATES_APP,
    UTC_TS,
)

EVENT_CHUNK = 2_000_000  # past events in one data file at most (a day of the span is one partition)
STATE_CHUNK = 1_000_000  # shoppers whose state and profile rows one job writes
PARTIALS_PER_BATCH = 3_000  # partials a 10k-event simulated batch appends (about 3,000 measured)


def folded_batch(past: Past, waiting: int) -> int:
    """The batch the base was folded up to, when `waiting` partials of later batches wait."""
    return max(0, past.batches - -(-waiting // PARTIALS_PER_BATCH))


def write_shoppers(home: Path, seed: int, users: int) -> None:
    """The lake's shoppers (`shop.shoppers`), for the jobs that build it (run it in a worker)."""
    save_people(shoppers(seed, users), home)


def build_lake(home: Path, past: Past, say: Callable[[str], None], *, waiting: int) -> None:
    """Write `past` into `home/lake`, for the shoppers `write_shoppers` left in `home`.

    `waiting` partials sit in `profile_updates`, from the last batches, not folded into the base yet.
    All the data is made in worker processes: this one only commits.
    """
    lake, folded, people = lake_of(home), folded_batch(past, waiting), people_path(home)
    lake.append(
        "events", pl.DataFrame(schema=EVENTS_SCHEMA), batch_id=past.batches, partition_by=["event_date"]
    )
    lake.write_tagged("profile_state", pl.DataFrame(schema=PARTIAL_SCHEMA), {FOLD_APP: folded})
    lake.write_tagged("profiles", pl.DataFrame(schema=PROFILES_SCHEMA), {FOLD_APP: folded})
    states, profiles = (Layout.of(lake.table_uri(t)) for t in ("profile_state", "profiles"))
    events = _event_jobs(lake, people, past, past.events, salt=0)
    chunks = [
        functools.partial(_state_chunk, states, profiles, people, past, start, start + STATE_CHUNK)
        for start in range(0, past.users, STATE_CHUNK)
    ]
    secret = ensure_secret(home, environ={})  # the key `lakemail process` will use for suppressions
    rest = functools.partial(_other_tables, lake.uri, people, past, secret, waiting, folded)
    say(f"  writing {len(events)} days of events, {len(chunks)} state chunks and the other tables")
    jobs: list[Callable[[], Any]] = [rest, *chunks, *events]
    results = run_jobs(jobs, isolate=True)
    table = RawTable(lake.table_uri("events"))
    for adds in results[1 + len(chunks) :]:
        table.commit(adds)
    state_table, profile_table = (RawTable(lake.table_uri(t)) for t in ("profile_state", "profiles"))
    for state_adds, profile_adds in results[1 : 1 + len(chunks)]:
        state_table.commit(state_adds, txns={FOLD_APP: folded})
        profile_table.commit(profile_adds, txns={FOLD_APP: folded})


def append_events(home: Path, past: Past, count: int, *, salt: int) -> None:
    """Append `count` more past events of the lake's shoppers, a file per day of the span."""
    lake = lake_of(home)
    table = RawTable(lake.table_uri("events"))
    for adds in run_jobs(_event_jobs(lake, people_path(home), past, count, salt=salt), isolate=True):
        table.commit(adds)


def _event_jobs(
    lake: LakeResource, people_path: str, past: Past, count: int, *, salt: int
) -> list[Callable[[], list[Action]]]:
    layout = Layout.of(lake.table_uri("events"))
    days = len(past.days())
    return [
        functools.partial(_events_day, layout, people_path, past, day, count, salt) for day in range(days)
    ]


def _events_day(
    layout: Layout, people_path: str, past: Past, day: int, count: int, salt: int
) -> list[Action]:
    """One day's share of `count` past events as data files (with salt 0 a 31st of shoppers identify)."""
    frame = day_events(read_people(people_path), past, count, day, salt=salt, identify=salt == 0)
    return layout.write_files(
        [frame.slice(offset, EVENT_CHUNK) for offset in range(0, frame.height, EVENT_CHUNK)]
    )


def _state_chunk(
    states: Layout, profiles: Layout, people_path: str, past: Past, start: int, stop: int
) -> tuple[list[Action], list[Action]]:
    """profile_state and profiles rows of shoppers start..stop as data files."""
    people = read_people(people_path)
    chunk = people.slice(start, stop - start)
    state = profile_states(chunk, past.events_per_user, seed=past.seed, window=activity(past))
    crm = customers_rows(chunk, past)
    rows = derive(state, crm, past.now - QUIET).select(list(PROFILES_SCHEMA))
    return states.write_files([state]), profiles.write_files([rows])


def _other_tables(uri: str, people_path: str, past: Past, secret: str, waiting: int, folded: int) -> None:
    """Every other table, through the repo's writer, with the tags the assets read."""
    lake, batch, people = LakeResource(uri=uri), past.batches, read_people(people_path)
    since = pl.lit(past.now - past.span, dtype=UTC_TS).alias("first_seen_at")
    edges = people.select("anonymous_id", "user_id", since).sort("anonymous_id")
    lake.append("identities", edges.select(list(IDENTITIES_SCHEMA)), batch_id=batch)
    lake.overwrite("customers", customers_rows(people, past), batch_id=batch)
    lake.overwrite("catalog", catalog_rows(past), batch_id=batch)
    lake.append("catalog_changes", pl.DataFrame(schema=CATALOG_CHANGES_SCHEMA), batch_id=batch)
    lake.append("quarantine", quarantine_rows(past), batch_id=batch)
    lake.write("suppressions", suppressions_rows(people, past, secret))
    lake.write_tagged("triggers", decision_rows(people, past, QUIET), {RUN_APP: batch})
    empty = pl.DataFrame(schema=TRIGGERS_SCHEMA)
    lake.write_tagged("trigger_state", empty, {RUN_APP: batch, BATCH_APP: batch}, mode="overwrite")
    partials = pending_partials(people, waiting, past=past, batches=(folded + 1, batch))
    lake.write_tagged("profile_updates", partials.select(list(PROFILE_UPDATES_SCHEMA)), {UPDATES_APP: batch})
    lake.append("ingest_log", ingest_log_rows(past), batch_id=batch)  # last, as a batch commits


def top_up_updates(home: Path, past: Past, rows: int) -> int:
    """Fill `profile_updates` up to `rows` partials (as from committed batches); returns rows added."""
    lake = lake_of(home)
    missing = rows - waiting_updates(lake)
    if missing <= 0:
        return 0
    batch = lake.committed_batch()
    people = read_people(people_path(home))
    partials = pending_partials(people, missing, past=past, batches=(batch, batch), salt=batch)
    lake.write_tagged("profile_updates", partials.select(list(PROFILE_UPDATES_SCHEMA)), {UPDATES_APP: batch})
    return missing
