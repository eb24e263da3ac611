"""The sensor's decision logic and batch planning, as plain functions."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl
import pytest

from transforms.ingest.batch import LANDED_SCHEMA, batch_run_key, commit_groups, decide_batch, pending_files
from transforms.schema import INGEST_LOG_SCHEMA

AT = datetime(2026, 11, 22, tzinfo=UTC)


def landed(*files: tuple[str, int]) -> pl.DataFrame:
    return pl.DataFrame([(path, size, AT) for path, size in files], schema=LANDED_SCHEMA, orient="row")


def log(*files: tuple[str, int]) -> pl.DataFrame:
    frame = pl.DataFrame(schema=INGEST_LOG_SCHEMA)
    rows = pl.DataFrame(
        [(p, s) for p, s in files], schema={"source_file": pl.String, "bytes": pl.Int64}, orient="row"
    )
    return pl.concat([frame, rows], how="diagonal")


def test_pending_is_what_the_log_has_not_seen_at_that_size() -> None:
    pending = pending_files(
        landed(("events/b", 20), ("events/a", 10), ("events/c", 5)), log(("events/a", 10), ("events/c", 4))
    )
    assert pending["source_file"].to_list() == ["events/b", "events/c"]  # c landed again with other bytes


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


def test_commit_groups_bound_bytes_and_keep_order() -> None:
    pending = landed(("a", 40), ("b", 40), ("c", 40), ("d", 200), ("e", 10))
    assert commit_groups(pending, max_bytes=100) == [["a", "b"], ["c"], ["d"], ["e"]]
    assert commit_groups(landed(), max_bytes=100) == []
