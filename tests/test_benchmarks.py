"""The benchmark harness: its statistics, verdicts and rendering, and a tiny real floor run."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from benchmarks import build
from benchmarks.common import env_for, lakemail, simulate_argv
from benchmarks.drain import DrainRun, parse_output
from benchmarks.figures import UNMEASURED, Figure
from benchmarks.floor import FloorRun, parse_and_write, parseable_lines
from benchmarks.report import Machine, render
from benchmarks.stats import Target, describe, judge, percentile, summarize
from benchmarks.steady import SteadyRun

MACHINE = Machine(cores=2, memory_gb=8.0, cpu="Test CPU", versions={"python": "3.11.0", "polars": "9.9"})


@pytest.mark.parametrize(
    ("values", "low", "median", "high"),
    [([3.0], 3.0, 3.0, 3.0), ([5.0, 1.0, 3.0], 1.0, 3.0, 5.0), ([4.0, 1.0, 2.0, 10.0], 1.0, 3.0, 10.0)],
)
def test_summarize(values: list[float], low: float, median: float, high: float) -> None:
    summary = summarize(values)
    assert (summary.low, summary.median, summary.high, summary.n) == (low, median, high, len(values))


def test_summarize_refuses_nothing() -> None:
    with pytest.raises(ValueError):
        summarize([])


@pytest.mark.parametrize(
    ("q", "expected"),
    [(0, 1.0), (50, 5.5), (95, 9.55), (99, 9.91), (100, 10.0)],
)
def test_percentile_interpolates_between_ranks(q: float, expected: float) -> None:
    assert percentile([float(v) for v in range(10, 0, -1)], q) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("target", "value", "met", "margin", "text"),
    [
        (Target("rate", 150_000, at_least=True), 180_000, True, 0.2, "met (20% headroom)"),
        (Target("rate", 150_000, at_least=True), 90_000, False, -0.4, "**missed** by 40%"),
        (Target("p50", 3.0, at_least=False), 2.4, True, 0.2, "met (20% headroom)"),
        (Target("p99", 6.0, at_least=False), 9.0, False, -0.5, "**missed** by 50%"),
        (Target("rss", 2048, at_least=False), 2048, True, 0.0, "met (0% headroom)"),
    ],
)
def test_judge(target: Target, value: float, met: bool, margin: float, text: str) -> None:
    verdict = judge(target, value)
    assert verdict.met is met
    assert verdict.margin == pytest.approx(margin)
    assert describe(verdict) == text


def _figures() -> list[Figure]:
    floors = [FloorRun(900.0, rows, 1000, 2, 1, 2) for rows in (100_000.0, 200_000.0, 300_000.0)]
    drains = [DrainRun(1_000_000, 990_000, wall, wall - 2, 800.0) for wall in (10.0, 20.0, 40.0)]
    steady = [SteadyRun(latencies=[1.0, 2.0, 3.0, 8.0], backlog=[0, 3, 1], files=4)]
    return [
        build.floor_figure(floors, ["lakemail simulate ..."]),
        build.drain_figure(drains, floors, ["lakemail process"]),
        build.steady_figure(steady, 60, []),
    ]


def test_drain_ratio_pairs_repeats_within_the_run() -> None:
    drain = _figures()[1]
    # 100k/100k, 50k/200k, 25k/300k events/s over rows/s -> median 0.25
    assert drain.median("ratio to the floor's rows/s (paired by repeat)") == pytest.approx(0.25)
    assert [v.met for v in drain.verdicts] == [False, False, True]


def test_render_shows_machine_tables_verdicts_and_unmeasured() -> None:
    text = render(
        _figures(), MACHINE, date="2026-01-01 00:00 UTC", command="python -m benchmarks.run", seconds=90
    )
    assert "2 cores, 8.0 GB memory, Test CPU" in text
    assert "python 3.11.0, polars 9.9" in text
    assert (
        "| read_ndjson (explicit schema) + write_parquet, per file | rows/s | 100,000 | 200,000 | 300,000 |"
        in text
    )
    assert (
        "| events/s (wall, whole child) | >= 150,000 events/s | 50,000 events/s | **missed** by 67% |" in text
    )
    assert "| landed -> committed p50 | <= 3.00 s | 2.50 s | met (17% headroom) |" in text
    assert "Backlog samples, repeat 1 (files): 0 3 1" in text
    assert "`profiles` and triggers, which do not exist yet" in text
    for unmeasured in UNMEASURED:
        assert f"| {unmeasured.title} | {unmeasured.reason} |" in text


def test_parse_process_output() -> None:
    text = (
        "run abc: SUCCESS - 200 files, 1,000,000 lines, 993,132 accepted, 10 duplicates\n"
        "19.97 s, 50,077 lines/s, peak RSS 1,090 MB\n"
    )
    assert parse_output(text) == (1_000_000, 993_132, 19.97)
    with pytest.raises(RuntimeError):
        parse_output("run abc: FAILURE")


def test_parseable_lines_drops_only_bad_lines() -> None:
    clean, dropped = parseable_lines(b'{"a": "1"}\n{not json\n\xff\xfe\n[1]\n\n{"b": "2"}\n')
    assert clean == b'{"a": "1"}\n{"b": "2"}\n'
    assert dropped == 3


def test_floor_on_small_simulated_files(tmp_path: Path) -> None:
    home = tmp_path / "home"
    subprocess.run([lakemail(), *simulate_argv(3000, 7)], env=env_for(home), check=True, capture_output=True)
    files = sorted((home / "landing" / "events").glob("*.ndjson"))
    run = parse_and_write(files, tmp_path / "parquet")
    assert run.files == len(files) == 3
    assert run.rows + run.dropped_lines == 3000
    assert len(list((tmp_path / "parquet").glob("*.parquet"))) == 3
    assert run.read_mb_per_s > 0 and run.rows_per_s > 0
