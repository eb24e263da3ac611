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


@dataclass(frozen=True)
class Table:
    """A small markdown table shown under a figure's rows (e.g. seconds per step, side by side)."""

    title: str
    header: list[str]
    rows: list[list[str]]

    def markdown(self) -> list[str]:
        lines = [f"| {' | '.join(self.header)} |", "|---|" + "---:|" * (len(self.header) - 1)]
        return [self.title, "", *lines, *(f"| {' | '.join(row)} |" for row in self.rows)]


@dataclass
class Figure:
    """One figure of BENCHMARKS.md: a table of rows, targets judged on medians, commands and notes."""

    name: str
    title: str
    rows: list[Row] = field(default_factory=list)
    verdicts: list[Verdict] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    failed: bool = False  # its measurement raised: `make bench` still writes the others, then exits 1

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
        "Sensor wait and run launch of daemon-launched runs, per step",
        "`lakemail up` now takes micro-batches with `lakemail runner` (no daemon loop, no run launch); "
        "`scaling` and `batch_history` break down `lakemail process` runs (launch = interpreter, imports, "
        "definitions), `steady_state_ingest` the runner's wait and in-run time.",
    ),
)
