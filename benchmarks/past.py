"""The past a pre-built lake holds: how many shoppers and events, over which span, in which batches."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl

from transforms.schema import UTC_TS

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Past:
    """What a pre-built lake holds: `users` shoppers, `events` rows in the `span` before `now`, in batches."""

    users: int
    events: int
    seed: int
    now: datetime
    span: timedelta = timedelta(days=30)
    events_per_batch: int = 10_000

    @property
    def batches(self) -> int:
        return max(1, self.events // self.events_per_batch)

    @property
    def events_per_user(self) -> float:
        return self.events / self.users

    @property
    def start(self) -> datetime:
        return self.now - self.span

    @property
    def end(self) -> datetime:
        return self.now - timedelta(minutes=1)  # the past ends just before the measured batches

    def batch_of(self, at_us: np.ndarray) -> np.ndarray:
        """The batch (1..batches) that committed an event of time `at_us`: batches spread evenly in time."""
        start, end = epoch_us(self.start), epoch_us(self.end)
        return 1 + (at_us - start) * self.batches // (end - start + 1)

    def batch_window(self, first: int, last: int) -> tuple[datetime, datetime]:
        """The times whose events batches first..last committed (`batch_of` maps them back)."""
        start, length = epoch_us(self.start), epoch_us(self.end) - epoch_us(self.start) + 1
        low = start + -(-(first - 1) * length // self.batches)
        high = start + -(-last * length // self.batches)
        return EPOCH + timedelta(microseconds=low), EPOCH + timedelta(microseconds=high)

    def batch_time(self, batch: pl.Expr) -> pl.Expr:
        """When batch `batch` committed (the end of its share of the span)."""
        start, length = epoch_us(self.start), epoch_us(self.end) - epoch_us(self.start)
        return (pl.lit(start) + batch * length // self.batches).cast(UTC_TS)

    def days(self) -> list[tuple[datetime, datetime]]:
        """The span cut at UTC midnights: one `events` partition each."""
        cuts, day = [self.start], datetime.combine(self.start.date(), datetime.min.time(), tzinfo=UTC)
        while (day := day + timedelta(days=1)) < self.end:
            cuts.append(day)
        return list(itertools.pairwise([*cuts, self.end]))


def epoch_us(moment: datetime) -> int:
    return (moment - EPOCH) // timedelta(microseconds=1)


def anchored(moment: datetime, after_midnight: timedelta) -> datetime:
    """The last time `after_midnight` (UTC) at or before `moment`, to the second.

    A past that ends at a fixed time of day fills today's `events` partition, which each batch's dedupe
    and checks read, the same way whenever the benchmark runs.
    """
    day = datetime.combine(moment.date(), datetime.min.time(), tzinfo=UTC) + after_midnight
    return day if day <= moment else day - timedelta(days=1)
