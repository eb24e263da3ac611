"""The ingest's two pipelines (#17): files read ahead on reader threads within a byte budget, and
validated outcomes produced on a thread of their own ahead of the commit: order kept, memory bounded,
errors raised to the consumer, a consumer that stops early stops the producer."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import orjson
import pytest

from stores.ingest_files import FileOutcome, produced_ahead, read_ahead, validated
from tests.story import message
from transforms.ingest.files import FileResult
from transforms.ingest.group import parse_file

AT = datetime(2026, 11, 20, 9, tzinfo=UTC)


class Tracked:
    """Counts the reads started and the largest number in flight past the consumer."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.started: list[int] = []
        self.consumed = 0
        self.most_ahead = 0

    def read(self, item: int) -> int:
        with self.lock:
            self.started.append(item)
            self.most_ahead = max(self.most_ahead, len(self.started) - self.consumed)
        return item * 10


def test_read_ahead_keeps_order_and_reads_ahead_within_the_budget() -> None:
    tracked = Tracked()
    out: list[int] = []
    for value in read_ahead(tracked.read, range(40), 2, budget=5, weight=lambda _: 1):
        time.sleep(0.001)  # the consumer is slower than the readers: they run ahead up to the budget
        tracked.consumed += 1
        out.append(value)
    assert out == [i * 10 for i in range(40)]
    assert 2 < tracked.most_ahead <= 6  # the budget (5) plus the one being consumed


def test_read_ahead_without_a_budget_keeps_workers_in_flight_only() -> None:
    tracked = Tracked()
    for _ in read_ahead(tracked.read, range(20), 2):
        time.sleep(0.001)
        tracked.consumed += 1
    assert tracked.most_ahead <= 3


def test_an_item_heavier_than_the_budget_is_still_read() -> None:
    assert list(read_ahead(lambda x: x, [1, 2, 3], 1, budget=10, weight=lambda _: 100)) == [1, 2, 3]


def test_produced_ahead_keeps_order_and_bounds_what_it_holds() -> None:
    held = []
    produced = [0]

    def items() -> Iterator[int]:
        for i in range(30):
            produced[0] += 1
            yield i

    out: list[int] = []
    for item in produced_ahead(items(), budget=4, weight=lambda _: 1):
        time.sleep(0.002)
        held.append(produced[0] - len(out) - 1)  # produced but not yet consumed, besides this one
        out.append(item)
    assert out == list(range(30))
    assert max(held) <= 5  # the budget, plus the one the producer waits to hand over
    assert max(held) >= 2  # it did run ahead


def test_produced_ahead_hands_an_error_to_the_consumer_after_the_items_before_it() -> None:
    def items() -> Iterator[int]:
        yield 1
        yield 2
        raise ValueError("bad pass")

    out: list[int] = []
    with pytest.raises(ValueError, match="bad pass"):
        for item in produced_ahead(items(), budget=10, weight=lambda _: 1):
            out.append(item)
    assert out == [1, 2]


def test_a_consumer_that_stops_early_stops_the_producer() -> None:
    produced = []

    def items() -> Iterator[int]:
        for i in range(1000):
            produced.append(i)
            yield i

    stream = produced_ahead(items(), budget=3, weight=lambda _: 1)
    assert next(stream) == 0
    stream.close()  # joins the producer: it stops at its budget
    assert len(produced) <= 6
    assert not any(t.name == "ingest-validate" for t in threading.enumerate())


def test_passes_validated_on_two_threads_give_what_one_gives_in_order() -> None:
    # Files of 300 lines (some bad), passes of 512 lines: several passes, each on either thread.
    def outcome(n: int) -> FileOutcome:
        lines = [
            orjson.dumps(
                message("Product Viewed", AT, user=f"u{n}-{i}", product_id="p1", message_id=f"m{n}-{i}")
            )
            if i % 97
            else b"{broken"
            for i in range(300)
        ]
        data = b"\n".join(lines) + b"\n"
        parsed = parse_file(data, source_file=f"events/f{n}.ndjson", landed_at=AT)
        return FileOutcome({"source_file": f"events/f{n}.ndjson"}, parsed, len(data))

    def rows(outcomes: Iterator[FileOutcome]) -> list[tuple[str, list[str], list[int]]]:
        found = []
        for o in outcomes:
            assert isinstance(o.result, FileResult)
            found.append(
                (
                    o.result.source_file,
                    o.result.events["event_id"].to_list(),
                    o.result.quarantine["source_line"].to_list(),
                )
            )
        return found

    files = [outcome(n) for n in range(12)]
    one = rows(validated(iter(files), lines=512, workers=1))
    assert rows(validated(iter(files), lines=512, workers=2)) == one
    assert [name for name, _, _ in one] == [f"events/f{n}.ndjson" for n in range(12)]
    assert sum(len(ids) for _, ids, _ in one) == 12 * (300 - 4) and all(
        q == [1, 98, 195, 292] for *_, q in one
    )
