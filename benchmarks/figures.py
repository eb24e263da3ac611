"""What a benchmark figure holds, independent of how it was measured or rendered."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from benchmarks.stats import Summary, Target, Verdict, judge, summarize


@dataclass(frozen=True)
class Row:
    metric: str
    unit: str
    summary: Summary


@dataclass
class Figure:
    """One figure of BENCHMARKS.md: a table of rows, targets judged on medians, commands and notes."""

    name: str
    title: str
    rows: list[Row] = field(default_factory=list)
    verdicts: list[Verdict] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, metric: str, unit: str, values: Sequence[float]) -> Summary:
        summary = summarize(values)
        self.rows.append(Row(metric, unit, summary))
        return summary

    def check(self, target: Target, summary: Summary) -> None:
        self.verdicts.append(judge(target, summary.median))

    def median(self, metric: str) -> float:
        return next(row.summary.median for row in self.rows if row.metric == metric)


@dataclass(frozen=True)
class Unmeasured:
    """A figure that cannot be measured yet, and why."""

    title: str
    reason: str


UNMEASURED: tuple[Unmeasured, ...] = (
    Unmeasured(
        "Backlog drain scaling with 100k / 1M / 5M users in `profiles`",
        "`profiles` (and triggers) are not built yet.",
    ),
    Unmeasured(
        "Micro-batch cost after 10k prior micro-batches",
        "needs the full chain (profiles, triggers, sends) to be meaningful; not built yet.",
    ),
    Unmeasured(
        "Landed -> email accepted latency",
        "triggers and sends (and the mail sink) are not built yet.",
    ),
    Unmeasured(
        "Spark Structured Streaming peer on the same files",
        "`make bench-peers` is not built yet.",
    ),
)
