"""The sensor's decision logic and batch planning, as plain functions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from transforms.ingest.batch import (
    LANDED_SCHEMA,
    MAX_ATTEMPTS,
    arrivals,
    batch_run_key,
    commit_groups,
    decide_batch,
    failed_attempts,
    pending_files,
    reflected_until,
    retry_after,
)
from transforms.schema import INGEST_LOG_SCHEMA

AT = datetime(2026, 11, 22, tzinfo=UTC)


def landed(*files: tuple[str, int], at: datetime = AT, modified: datetime | None = None) -> pl.DataFrame:
    """Files listed as landed at `at` (their ctime) with the mtime `modified` (default: `at`)."""
    rows = [(path, size, at, modified or at) for path, size in files]
    return pl.DataFrame(rows, schema=LANDED_SCHEMA, orient="row")


def log(
    *files: tuple[str, int],
    status: str = "committed",
    batch: int = 1,
    at: datetime = AT,
    modified: datetime | None = AT,
) -> pl.DataFrame:
    """ingest_log rows landed at `at` with the mtime `modified` (None: a row from before it was kept)."""
    frame = pl.DataFrame(schema=INGEST_LOG_SCHEMA)
    rows = pl.DataFrame(
        [(p, s, status, batch, at, at, modified) for p, s in files],
        schema={
            "source_file": pl.String,
            "bytes": pl.Int64,
            "status": pl.String,
            "batch_id": pl.Int64,
            "landed_at": INGEST_LOG_SCHEMA["landed_at"],
            "committed_at": INGEST_LOG_SCHEMA["committed_at"],
            "modified_at": INGEST_LOG_SCHEMA["modified_at"],
        },
        orient="row",
    )
    return pl.concat([frame, rows], how="diagonal")


def test_pending_is_what_the_log_has_not_seen_at_that_size() -> None:
    pending = pending_files(
        landed(("events/b", 20), ("events/a", 10), ("events/c", 5)), log(("events/a", 10), ("events/c", 4))
    )
    assert pending["source_file"].to_list() == ["events/b", "events/c"]  # c landed again with other bytes


def test_a_file_renamed_into_place_again_at_the_same_size_is_pending() -> None:
    # #13 point 9: a re-land with the same size but other bytes was not even looked at.
    later = AT + timedelta(seconds=3)
    pending = pending_files(landed(("events/a", 10), at=later), log(("events/a", 10)))
    assert pending["source_file"].to_list() == ["events/a"]


def test_a_transient_failure_is_taken_again_after_a_growing_backoff_then_gives_up() -> None:
    # #13 point 9: a file that failed once stayed failed for ever.
    rows = [log(("events/a", 10), status="retrying", batch=b, at=AT) for b in (1, 2)]
    history = pl.concat(rows)
    assert failed_attempts(history).rows() == [("events/a", "retrying", 2, AT)]
    files = landed(("events/a", 10))
    wait = retry_after(2)
    assert retry_after(1) < wait < retry_after(3)
    assert pending_files(files, history, AT + wait - timedelta(seconds=1)).height == 0
    [due] = pending_files(files, history, AT + wait).rows(named=True)
    assert (due["source_file"], due["attempt"]) == ("events/a", 2)
    final = pl.concat([history, log(("events/a", 10), status="failed", batch=3)])
    assert pending_files(files, final, AT + timedelta(days=30)).height == 0  # failed: no more tries
    [again] = pending_files(files, final, AT, retry=["events/a"]).rows(named=True)
    assert again["attempt"] == 0  # the operator's retry starts the count again
    assert MAX_ATTEMPTS >= 3


def test_a_file_that_failed_and_lands_again_is_taken_again() -> None:
    later = AT + timedelta(seconds=3)
    pending = pending_files(landed(("events/a", 10), at=later), log(("events/a", 10), status="failed"))
    assert pending["source_file"].to_list() == ["events/a"]


def test_a_file_is_known_by_its_mtime_and_dated_by_when_it_was_first_taken() -> None:
    # review: the landing time was the mtime, which the producer sets; it is now the ctime, which moves on a
    # chmod or an erasure rewrite: that is no new landing, and the date first taken stays.
    moved = AT + timedelta(hours=5)
    files = landed(("events/a", 10), at=moved, modified=AT - timedelta(days=2))
    taken = log(("events/a", 10), at=AT, modified=AT - timedelta(days=2))
    assert pending_files(files, taken).height == 0
    assert arrivals(files, taken)["landed_at"].to_list() == [AT]
    assert (
        reflected_until(
            files, log(("events/a", 10), status="retrying", modified=AT - timedelta(days=2)), moved
        )
        == AT
    )
    new = landed(("events/b", 10), at=moved, modified=AT - timedelta(days=2))
    [row] = pending_files(new, taken).rows(named=True)
    assert (row["landed_at"], row["modified_at"]) == (
        moved,
        AT - timedelta(days=2),
    )  # not yet taken: its ctime


def test_a_row_from_before_the_mtime_was_kept_matches_by_its_landed_at() -> None:
    # Such a row's landed_at is the mtime: an upgrade takes nothing again.
    files = landed(("events/a", 10), at=AT + timedelta(hours=1), modified=AT)
    old = log(("events/a", 10), at=AT, modified=None)
    assert pending_files(files, old).height == 0
    assert pending_files(files, old.drop("modified_at")).height == 0
    assert arrivals(files, old)["landed_at"].to_list() == [AT]


def test_the_lake_reflects_landed_lines_up_to_the_oldest_file_not_taken_or_retrying() -> None:
    now, old, older = AT + timedelta(days=5), AT + timedelta(days=1), AT
    taken = landed(("events/a", 10), at=older)
    assert reflected_until(taken, log(("events/a", 10), at=older), now) == now  # all taken: current
    both = pl.concat([taken, landed(("events/b", 5), at=old)])
    assert reflected_until(both, log(("events/a", 10), at=older), now) == old  # b's lines are missing
    retrying = log(("events/a", 10), status="retrying", at=older)
    assert reflected_until(taken, retrying, now) == older  # still to come
    gave_up = pl.concat([retrying, log(("events/a", 10), status="failed", batch=2, at=older)])
    assert reflected_until(taken, gave_up, now) == now  # never to come: not waited for
    assert reflected_until(landed(("events/a", 10), at=now + timedelta(hours=1)), log(), now) == now


def test_one_run_for_everything_pending() -> None:
    decision = decide_batch(landed(("events/a", 1), ("events/b", 2)), run_in_flight=False)
    assert decision.files == ("events/a", "events/b")
    assert decision.run_key is not None and decision.skip_reason is None


@pytest.mark.parametrize(
    ("files", "in_flight", "reason_part"),
    [((("events/a", 1),), True, "in flight"), ((), False, "no new")],
)
def test_skips_while_a_run_is_in_flight_or_nothing_is_new(
    files: tuple[tuple[str, int], ...], in_flight: bool, reason_part: str
) -> None:
    decision = decide_batch(landed(*files), run_in_flight=in_flight)
    assert decision.run_key is None and decision.files == ()
    assert decision.skip_reason is not None and reason_part in decision.skip_reason


def test_run_key_is_deterministic_and_depends_on_files_and_sizes() -> None:
    key = batch_run_key(landed(("events/a", 1), ("events/b", 2)))
    assert key == batch_run_key(landed(("events/a", 1), ("events/b", 2)))
    assert key != batch_run_key(landed(("events/a", 1), ("events/b", 3)))
    assert key != batch_run_key(landed(("events/a", 1)))
    # the daemon dedupes run keys: a file landed again, or due again, needs a new one
    assert key != batch_run_key(landed(("events/a", 1), ("events/b", 2), at=AT + timedelta(seconds=1)))
    again = landed(("events/a", 1), ("events/b", 2)).with_columns(attempt=pl.lit(1, dtype=pl.Int64))
    assert key != batch_run_key(again)


def test_commit_groups_bound_bytes_and_keep_order() -> None:
    sized = [("a", 40), ("b", 40), ("c", 40), ("d", 200), ("e", 10)]
    assert list(commit_groups(sized, max_bytes=100)) == [["a", "b"], ["c"], ["d"], ["e"]]
    assert list(commit_groups([], max_bytes=100)) == []
