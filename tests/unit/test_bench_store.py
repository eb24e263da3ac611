"""The benchmark's figures of issue #15: the state store's rebuild and lookups, the steady run on the
largest lake (spread, memory, the lag of `profiles`), the aged lake's two ratios, the steady targets."""

from __future__ import annotations

import pytest

from benchmarks import build, maintain
from benchmarks.build_scaling import rounds
from benchmarks.history import HistoryRuns
from benchmarks.history_lake import History
from benchmarks.loaded import LoadedRun, Refresh, lag
from benchmarks.microbatch import BatchRun
from benchmarks.report import Machine, render
from benchmarks.scaling import Point, Scaling
from benchmarks.steady import SteadyRun
from benchmarks.store import Lookups, RebuildRun, parse_rebuild

MACHINE = Machine(cores=2, memory_gb=8.0, cpu="Test CPU", versions={"python": "3.11.0"})
# What `lakemail state rebuild` prints (orchestration/state.py, rebuild_command)
REBUILD_OUTPUT = """\
landed_files           1,000
event_ids         50,000,000
profiles           5,000,000
customers          1,500,000
stamps: batch 5000, engine run 4999; 9,876.5 MB
rebuilt /tmp/home/state in 612.34 s, peak RSS 1,234 MB
"""


def _batch(run: float, rss: float = 500.0, **steps: float) -> BatchRun:
    return BatchRun(
        lines=10_000,
        wall_seconds=run + 2,
        reported_seconds=run + 1,
        run_seconds=run,
        steps=steps,
        peak_rss_mb=rss,
    )


def _rebuild(seconds: float) -> RebuildRun:
    return RebuildRun(seconds + 3, seconds, 900.0, 120.0, 1000, {"event_ids": 10, "profiles": 5})


def test_parse_rebuild_reads_what_the_command_prints() -> None:
    run = parse_rebuild(REBUILD_OUTPUT, wall_seconds=615.0)
    assert (run.wall_seconds, run.seconds, run.peak_rss_mb) == (615.0, 612.34, 1234.0)
    assert (run.size_mb, run.batch) == (9876.5, 5000)
    assert run.keys["event_ids"] == 50_000_000
    assert run.total_keys == 1_000 + 50_000_000 + 5_000_000 + 1_500_000


def test_parse_rebuild_refuses_an_unfinished_rebuild() -> None:
    with pytest.raises(RuntimeError, match="did not finish"):
        parse_rebuild("lakemail state: the lake has no ingest_log\n", wall_seconds=1.0)


@pytest.mark.parametrize(
    ("reflected", "expected"),
    [(7, 0.0), (6, 20.0), (5, 30.0), (4, 40.0), (0, 40.0)],
)
def test_profiles_lag_counts_from_the_oldest_batch_it_does_not_reflect(
    reflected: int, expected: float
) -> None:
    committed = {5: 50.0, 6: 60.0, 7: 70.0}  # batch -> when it committed (s)
    assert lag(reflected, committed, now=90.0) == expected
    assert lag(3, {}, now=90.0) == 0.0


def test_rounds_take_a_percentile_per_round() -> None:
    latencies = [1.0] * 10 + [2.0] * 10 + [3.0] * 10
    assert rounds(latencies, 50) == [1.0, 2.0, 3.0]
    assert rounds([4.0, 8.0], 50) == [6.0]  # fewer than a round each: one percentile of them all


def _scaling() -> tuple[Scaling, list[Point]]:
    points = [Point(100_000, 10_000_000), Point(5_000_000, 10_000_000), Point(5_000_000, 50_000_000)]
    loaded = LoadedRun(
        seconds=600.0,
        runs=[
            _batch(5.0, 900.0, ingest_stage=1.0),
            _batch(6.0, 1000.0, ingest_stage=2.0),
            _batch(20.0, 1600.0, ingest_stage=3.0),
        ],
        refreshes=[Refresh(0.0, 90.0, 1200.0, True, 3), Refresh(120.0, 30.0, 1100.0, False, 3)],
        lags=[10.0, 100.0, 400.0],
    )
    result = Scaling(
        runs={
            points[0]: [_batch(4.0, ingest_stage=1.0), _batch(5.0, ingest_stage=2.0)],
            points[1]: [_batch(5.0, ingest_stage=3.0), _batch(6.0, ingest_stage=3.0)],
            points[2]: [_batch(20.0, ingest_stage=9.0), _batch(18.0, ingest_stage=8.0)],
        },
        rebuilds={p: _rebuild(60.0 * (i + 1)) for i, p in enumerate(points)},
        build_seconds=dict.fromkeys(points, 60.0),
        lookups={
            points[0]: Lookups([0.1] * 30, 30),
            points[2]: Lookups([0.2] * 29 + [5.0], 30),
        },
        loaded={points[2]: loaded},
    )
    return result, points


def test_scaling_figure_judges_every_target_of_issue_15() -> None:
    result, points = _scaling()
    figure = build.scaling_figure(result, points, ["lakemail process"])
    verdicts = {v.target.label: (v.value, v.met) for v in figure.verdicts}
    # 5.0/4.0 and 6.0/5.0 -> median 1.225, within 1.3
    assert verdicts["largest-users batch / smallest-users batch (run seconds)"] == (
        pytest.approx(1.225),
        True,
    )
    # the largest lake's lookups: rounds of 10, p99 of the last one carries the 5 ms lookup
    value, met = verdicts["profile lookup from the store p99, largest lake"]
    assert value == pytest.approx(0.2) and met
    assert figure.median("5M users, 50M events: profile lookup p99") == pytest.approx(0.2)
    assert verdicts["steady run: slowest run / median run"] == (pytest.approx(20.0 / 6.0), False)
    assert verdicts["steady run: peak RSS of a micro-batch (largest)"] == (1600.0, False)
    assert verdicts["steady run: `profiles` behind the last batch (largest)"] == (400.0, False)
    assert figure.median("5M users, 50M events: `lakemail state rebuild` (as it reports)") == 180.0
    assert figure.median("5M users, 50M events, steady 10 min: `profiles_job` run") == 90.0
    text = render([figure], MACHINE, date="d", command="c", seconds=1)
    assert "| step `ingest_stage` | 1.50 | 3.00 | 8.50 | 2.00 |" in text  # the steady run's column last
    assert "1 `profiles_job` run(s) failed in the steady run" in text
    assert "`profiles_job` started at (seconds into the run, its duration): 0 s (90 s), 120 s (30 s)" in text


def test_scaling_figure_without_a_steady_run_or_lookups() -> None:
    result, points = _scaling()
    result.loaded, result.lookups = {}, {}
    figure = build.scaling_figure(result, points, [])
    assert [v.target.label for v in figure.verdicts] == [
        "largest-users batch / smallest-users batch (run seconds)"
    ]


def test_history_figure_judges_both_ratios() -> None:
    result = HistoryRuns(
        first=[_batch(2.0), _batch(2.0)],
        before=[_batch(3.0), _batch(5.0)],
        after=[_batch(2.2), _batch(2.6)],
        maintenance_seconds=40.0,
        rebuild=_rebuild(75.0),
    )
    figure = build.history_figure(result, History(), [])
    verdicts = {v.target.label: (v.value, v.met) for v in figure.verdicts}
    assert verdicts["after the past batches, maintained / fresh lake (run seconds)"] == (
        pytest.approx(1.2),
        True,
    )
    assert verdicts["after the past batches, no maintenance / fresh lake (run seconds)"] == (
        pytest.approx(2.0),
        True,
    )
    assert figure.median("`lakemail state rebuild` of the aged lake (as it reports)") == 75.0


def test_steady_figure_judges_issue_15s_targets_with_spark_beside() -> None:
    run = SteadyRun(
        latencies=[0.3, 0.5, 0.6, 2.0], backlog=[0, 1], files=4, email_latencies=[1.0, 1.2, 1.4, 1.6]
    )
    figure = build.steady_figure([run], 60, [], spark=[[0.4, 0.5], [0.3, 0.4]])
    assert figure.median("Spark Structured Streaming, same feed: landed -> committed p50") == pytest.approx(
        0.4
    )
    limits = {v.target.label: (v.target.limit, v.met) for v in figure.verdicts}
    assert limits["landed -> committed p50"] == (0.6, True)  # p50 0.55
    assert limits["landed -> committed p99"] == (1.5, False)  # p99 about 1.96
    assert limits["landed -> email accepted p50"] == (1.5, True)  # p50 1.3
    assert limits["landed -> email accepted p99"] == (3.0, True)


def test_the_job_runner_takes_only_scheduled_jobs(capsys: pytest.CaptureFixture[str]) -> None:
    assert maintain.main(["microbatch_job"]) == 2
    assert "one of maintenance_job, profiles_job" in capsys.readouterr().err
