"""The data files of a lake's past micro-batches, written by worker processes a range of batches at a time.

Each job writes one table's files for batches first..last (a file per batch, per partition for
`events`) and returns their add actions per batch; `history_lake` commits them in batch order.
Statistics are computed for all of a job's files at once (`deltalog.grouped_stats`).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import numpy as np
import polars as pl

from benchmarks.deltalog import Action, Layout, grouped_stats
from benchmarks.parallel import read_people
from benchmarks.past import Past
from benchmarks.shop import past_events
from benchmarks.states import pending_partials
from benchmarks.tables import decision_rows, ingest_log_rows, quarantine_rows
from transforms.profiles.tables import PROFILE_UPDATES_SCHEMA


def slices_by(frame: pl.DataFrame, column: str, last: int, *, first: int = 1) -> Iterator[pl.DataFrame]:
    """The rows of each value first..`last` of integer `column`, in order (an empty frame when none)."""
    frame = frame.sort(column)
    bounds = np.searchsorted(frame[column].to_numpy(), np.arange(first, last + 2))
    for i in range(last - first + 1):
        start, end = int(bounds[i]), int(bounds[i + 1])
        yield frame.slice(start, end - start)


def events_job(
    layouts: dict[str, Layout], people_path: str, past: Past, first: int, last: int
) -> dict[str, list[list[Action]]]:
    """Events of batches first..last (a file per batch and day) and the identities edges they add."""
    people = read_people(people_path)
    start, stop = (people.height * (batch - 1) // past.batches for batch in (first, last + 1))
    share = people.slice(start, stop - start)  # shoppers who identify (sign up) in these batches
    count = past.events_per_batch * (last - first + 1)
    events = past_events(people, share, count, past=past, window=past.batch_window(first, last), salt=first)
    edges = events.filter(pl.col("event_type") == "identify").select(
        "anonymous_id", "user_id", pl.col("event_ts").alias("first_seen_at"), "batch_id"
    )
    event_stats = grouped_stats(events, ["batch_id", "event_date"], layouts["events"].stats_columns)
    edge_stats = grouped_stats(edges, ["batch_id"], layouts["identities"].stats_columns)
    out: dict[str, list[list[Action]]] = {"events": [], "identities": []}
    for batch, (rows, new) in enumerate(
        zip(*(slices_by(f, "batch_id", last, first=first) for f in (events, edges)), strict=True), start=first
    ):
        parts = rows.partition_by("event_date", as_dict=True) if rows.height else {}
        out["events"].append(
            [layouts["events"].write_file(part, event_stats[(batch, day)]) for (day,), part in parts.items()]
        )
        written = (
            [layouts["identities"].write_file(new.drop("batch_id"), edge_stats[(batch,)])]
            if new.height
            else []
        )
        out["identities"].append(written)
    return out


def rows_job(
    layout: Layout, table: str, people_path: str, past: Past, first: int, last: int
) -> dict[str, list[list[Action]]]:
    """Rows of `table` of batches first..last, a file per batch (the whole past is drawn, then cut)."""
    rows = {
        "quarantine": lambda: quarantine_rows(past),
        "ingest_log": lambda: ingest_log_rows(past),
        "triggers": lambda: decision_rows(read_people(people_path), past, timedelta(0)),
    }[table]()
    rows = rows.filter(pl.col("batch_id").is_between(first, last))
    stats = grouped_stats(rows, ["batch_id"], layout.stats_columns)
    parts = slices_by(rows, "batch_id", last, first=first)
    return {
        table: [
            [layout.write_file(part, stats[(b,)])] if part.height else []
            for b, part in enumerate(parts, start=first)
        ]
    }


def updates_job(
    layout: Layout, people_path: str, past: Past, per_batch: int, batches: tuple[int, int], folded: int
) -> dict[str, list[list[Action]]]:
    """Partials of the batches, a file each; those a fold removed since are copies of one file."""
    first, last = batches
    live = max(first, folded + 1)
    out: list[list[Action]] = []
    if live > first:  # folded batches: what they wrote is gone from the table, only its bytes stay
        template = layout.write_file(_partials(people_path, past, per_batch, (first, first)))
        out = [[template]] + [[layout.copy_file(template)] for _ in range(first + 1, min(live, last + 1))]
    if live <= last:
        partials = _partials(people_path, past, per_batch, (live, last))
        stats = grouped_stats(partials, ["batch_id"], layout.stats_columns)
        parts = slices_by(partials, "batch_id", last, first=live)
        out += [[layout.write_file(part, stats[(b,)])] for b, part in enumerate(parts, start=live)]
    return {"profile_updates": out}


def _partials(people_path: str, past: Past, per_batch: int, batches: tuple[int, int]) -> pl.DataFrame:
    """`per_batch` partials of each of the batches (PROFILE_UPDATES_SCHEMA)."""
    first, last = batches
    rows = per_batch * (last - first + 1)
    partials = pending_partials(read_people(people_path), rows, past=past, batches=batches, salt=first)
    batch = pl.int_range(pl.len(), dtype=pl.Int64) // per_batch + first
    return partials.with_columns(batch.alias("batch_id")).select(list(PROFILE_UPDATES_SCHEMA))
