"""Where a run's time goes: median seconds per Dagster step, launch and bookkeeping, side by side."""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence

from benchmarks.figures import Table
from benchmarks.microbatch import BatchRun

LAUNCH = "launch: interpreter, imports, definitions, instance (wall - run)"
BETWEEN = "Dagster between steps (run - sum of steps)"


def step_order(runs: Sequence[BatchRun]) -> list[str]:
    """Step keys in the order the runs ran them (first seen first)."""
    return list(dict.fromkeys(key for run in runs for key in run.steps))


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else 0.0


def step_table(title: str, columns: Mapping[str, Sequence[BatchRun]], fmt: str = "{:.2f}") -> Table:
    """Median seconds of each step per column of runs, then launch, Dagster's share, run and wall."""
    steps = step_order([run for runs in columns.values() for run in runs])
    lines: list[tuple[str, list[float]]] = []
    for step in steps:
        lines.append(
            (f"step `{step}`", [median([r.steps.get(step, 0.0) for r in runs]) for runs in columns.values()])
        )
    between = [median([r.run_seconds - sum(r.steps.values()) for r in runs]) for runs in columns.values()]
    lines.append((BETWEEN, between))
    lines.append(
        ("**run** (Dagster run record)", [median([r.run_seconds for r in runs]) for runs in columns.values()])
    )
    lines.append((LAUNCH, [median([r.launch_seconds for r in runs]) for runs in columns.values()]))
    lines.append(
        (
            "**wall** (`lakemail process`)",
            [median([r.wall_seconds for r in runs]) for runs in columns.values()],
        )
    )
    rows = [[name, *(fmt.format(v) for v in values)] for name, values in lines]
    return Table(title, ["median seconds", *columns], rows)


def paired_ratios(numerators: Sequence[float], denominators: Sequence[float]) -> list[float]:
    """numerator / denominator of the i-th repeats (as many pairs as the shorter side has)."""
    return [a / b for a, b in zip(numerators, denominators, strict=False) if b > 0]


def load_note(runs: Sequence[BatchRun]) -> str:
    """How busy the machine was: the figures of a shared 2-core machine move with it."""
    loads = sorted(r.load for r in runs)
    return (
        f"1-minute load average when the measured runs started (this benchmark's own processes included): "
        f"{loads[0]:.1f} to {loads[-1]:.1f} (median "
        f"{loads[len(loads) // 2]:.1f}; 2.0 keeps both cores busy): runs that met a busier machine took "
        "longer."
    )
