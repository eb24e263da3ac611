"""The benchmark harness: its statistics, verdicts and rendering, and a tiny real floor run."""

from __future__ import annotations

import itertools
import json
import subprocess
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dagster as dg
import numpy as np
import orjson
import polars as pl
import pytest
import yaml

from benchmarks import build, parse_paths
from benchmarks.common import env_for, lakemail, simulate_argv
from benchmarks.dagster_history import clone_runs, renumber, shift_stamp
from benchmarks.deltalog import RawTable, stat_value
from benchmarks.drain import DrainRun, parse_output
from benchmarks.figures import UNMEASURED, Figure
from benchmarks.floor import (
    NESTED_SCHEMA,
    FloorRun,
    both_floors,
    parse_and_write,
    parseable_lines,
    read_group,
    screened,
)
from benchmarks.history_jobs import slices_by
from benchmarks.history_lake import batch_ranges, fold_batches, land_past
from benchmarks.microbatch import BatchRun, parse_process, step_seconds
from benchmarks.past import Past, anchored, epoch_us
from benchmarks.report import Machine, render
from benchmarks.scaling import Point, by_users, short
from benchmarks.shop import event_days, hex_text, shoppers, uuid_text
from benchmarks.states import QUIET, activity, list_column, pending_partials, profile_states
from benchmarks.stats import Target, describe, judge, percentile, summarize
from benchmarks.steady import SteadyRun
from benchmarks.tables import ingest_log_rows
from orchestration.instance import sqlite_history_yaml
from resources.lake import LakeResource
from resources.landing import LandingResource
from simulator.shoppers import ShopperSimulator
from stores.ingest import landed_files, landed_frame
from tests.conftest import NO_CAPTURE
from transforms.ingest.batch import pending_files
from transforms.profiles.merge import merge_partials
from transforms.profiles.state import PARTIAL_SCHEMA, VIEW_STATE
from transforms.schema import EVENTS_SCHEMA, INGEST_APP_ID

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


def test_the_drain_target_is_judged_without_delivery() -> None:
    floors = [FloorRun(900.0, 400_000.0, 1000, 2, 1, 2) for _ in range(3)]
    drains = [DrainRun(1_000_000, 990_000, 10.0, 8.0, 800.0, delivery_seconds=5.0) for _ in range(3)]
    drain = build.drain_figure(drains, floors, [])
    assert drain.median("events/s (lines / wall seconds of the child)") == pytest.approx(100_000)
    assert drain.median("events/s (lines / wall seconds less the `sends` step)") == pytest.approx(200_000)
    judged = {v.target.label: v for v in drain.verdicts}
    assert (
        judged["events/s (wall less delivery)"].met
        and judged["events/s (wall less delivery)"].value == 200_000
    )
    assert drain.median("ratio to the floor's rows/s (paired by repeat)") == pytest.approx(0.5)


def test_drain_is_also_paired_with_the_honest_floor_of_its_repeat() -> None:
    floors = [
        FloorRun(900.0, 100_000.0, 1000, 2, 1, 2, group_rows_per_s=rows, groups=1)
        for rows in (200_000.0, 250_000.0, 400_000.0)
    ]
    drains = [DrainRun(1_000_000, 990_000, wall, wall - 2, 800.0) for wall in (10.0, 5.0, 2.5)]
    floor, drain = build.floor_figure(floors, []), build.drain_figure(drains, floors, [])
    # 100k/200k, 200k/250k, 400k/400k -> median 0.8
    assert drain.median("ratio to the honest floor (one call per group)") == pytest.approx(0.8)
    assert floor.median("honest floor / per-file floor") == pytest.approx(2.5)
    assert [v.met for v in drain.verdicts if v.target.label == "ratio to the honest floor"] == [True]


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
    verdict = "| events/s (wall less delivery) | >= 150,000 events/s | 50,000 events/s | **missed** by 67% |"
    assert verdict in text
    assert "| landed -> committed p50 | <= 0.60 s | 2.50 s | **missed** by 317% |" in text
    assert "Backlog samples, repeat 1 (files): 0 3 1" in text
    assert "in one run of the whole `microbatch_job`" in text
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


def test_floor_on_small_simulated_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    home = tmp_path / "home"
    subprocess.run([lakemail(), *simulate_argv(3000, 7)], env=env_for(home), check=True, capture_output=True)
    files = sorted((home / "landing" / "events").glob("*.ndjson"))
    run = parse_and_write(files, tmp_path / "parquet")
    assert run.files == len(files) == 3
    assert run.rows + run.dropped_lines == 3000
    assert len(list((tmp_path / "parquet").glob("*.parquet"))) == 3
    assert run.read_mb_per_s > 0 and run.rows_per_s > 0
    both = both_floors(files, tmp_path / "both")
    assert both.groups == 1 and both.group_rows_per_s > 0
    assert both.rows + both.dropped_lines == 3000
    written = pl.read_parquet(tmp_path / "both" / "groups" / "group-0.parquet")
    assert written.height + both.group_dropped_lines == 3000
    assert written.schema["context"] == NESTED_SCHEMA["context"]
    assert parse_paths.main([str(home / "landing" / "events"), "1"]) == 0
    printed = capsys.readouterr().out
    assert "3 files, 3,000 lines, median of 1" in printed and printed.count("x floor") == 4


def test_the_honest_floor_screens_bad_lines_by_their_bytes_and_reads_the_rest_in_one_call() -> None:
    data = (
        b'{"type": "a"}\n{not json}\n\xff\n{"type": "\xff"}\n[1]\n\n'
        b'{"type": "b", "properties": "x"}\n{"a":1\n'
    )
    clean, dropped = screened(data)
    assert clean == b'{"type": "a"}\n{not json}\n{"type": "b", "properties": "x"}\n'
    assert dropped == 4
    frame, lost, fell_back = read_group(data)  # `{not json}` passes the screen and fails the call
    assert (frame["type"].to_list(), lost, fell_back) == (["a", "b"], 5, True)
    assert frame["properties"].to_list() == [None, None]
    frame, lost, fell_back = read_group(b'{"type": "a"}\n{"type": "b", "properties": [1]}\n\xff\n')
    assert (frame["type"].to_list(), lost, fell_back) == (["a", "b"], 1, False)


# --- scaling and batch_history: the synthetic past, the raw Delta writer, Dagster clones, the figures


def test_shoppers_are_the_simulators_shoppers() -> None:
    sim = ShopperSimulator(users=300, seed=5, start=datetime(2026, 1, 1, tzinfo=UTC))
    identifies = [
        message
        for line in sim.step(datetime(2026, 1, 1, 0, 30, tzinfo=UTC), 6000)
        if line.kind == "ok" and (message := orjson.loads(line.data))["type"] == "identify"
    ]
    people = shoppers(5, 300)
    assert len(identifies) > 20
    for message in identifies:
        row = people.row(int(message["userId"][2:]) - 1, named=True)
        traits = message["traits"]
        expected = (message["userId"], message["anonymousId"], traits["email"], traits.get("first_name"))
        assert (row["user_id"], row["anonymous_id"], row["email"], row["first_name"]) == expected
        assert (row["locale"], row["timezone"], row["consent"]) == (
            traits["locale"],
            traits["timezone"],
            traits["marketing_consent"],
        )


def test_uuid_and_hex_text() -> None:
    raw = np.array([list(range(16)), [255] * 16], dtype=np.uint8)
    assert uuid_text(raw).to_list() == [
        "00010203-0405-0607-0809-0a0b0c0d0e0f",
        "ffffffff-ffff-ffff-ffff-ffffffffffff",
    ]
    assert uuid_text(raw, version4=True)[0] == "00010203-0405-4607-0809-0a0b0c0d0e0f"
    assert hex_text(raw[:, :2]).to_list() == ["0001", "ffff"]


def test_past_batches_follow_time_and_days_cover_the_span() -> None:
    past = Past(100, 1_000_000, 1, datetime(2026, 1, 2, 3, tzinfo=UTC), timedelta(days=2), 1_000)
    assert past.batches == 1_000
    days = past.days()
    assert days[0][0] == past.start and days[-1][1] == past.end and len(days) == 3
    assert all(end == nxt for (_, end), (nxt, _) in itertools.pairwise(days))
    for first, last in [(1, 1), (1, 500), (501, 1_000)]:
        low, high = past.batch_window(first, last)
        edges = np.array([epoch_us(low), epoch_us(high) - 1])
        assert past.batch_of(edges).tolist() == [first, last]


def test_the_aged_lakes_past_files_are_ingested_already(tmp_path: Path) -> None:
    """batch_history's aged lake: its ingest_log rows have every column of the table's (`modified_at` was
    missing: the build failed), and the sparse files it lands are the ones they record (path, size, mtime):
    none is pending, or the aged lake's first run would take 10,000 past files again."""
    past = Past(100, 20_000, 1, datetime(2026, 1, 2, 3, tzinfo=UTC), timedelta(minutes=2), 1_000)
    log = ingest_log_rows(past)
    land_past(tmp_path, log)
    landed = landed_frame(landed_files(LandingResource(uri=str(tmp_path / "landing"))))
    assert landed.height == log.height == 20
    assert pending_files(landed, log, datetime(2026, 1, 2, 4, tzinfo=UTC)).height == 0


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (datetime(2026, 1, 2, 13, 0, 0, 5, tzinfo=UTC), datetime(2026, 1, 2, 12, tzinfo=UTC)),
        (datetime(2026, 1, 2, 12, tzinfo=UTC), datetime(2026, 1, 2, 12, tzinfo=UTC)),
        (datetime(2026, 1, 2, 11, 59, tzinfo=UTC), datetime(2026, 1, 1, 12, tzinfo=UTC)),
    ],
)
def test_anchored_at_a_fixed_time_of_day(moment: datetime, expected: datetime) -> None:
    assert anchored(moment, timedelta(hours=12)) == expected


def test_past_events_are_events_rows_of_known_shoppers() -> None:
    past = Past(200, 5_000, 3, datetime(2026, 1, 2, tzinfo=UTC), timedelta(days=1), 1_000)
    people = shoppers(3, 200)
    events = pl.concat(list(event_days(people, past, past.events)))
    assert events.schema == pl.Schema(EVENTS_SCHEMA)
    assert events.height == pytest.approx(5_000, abs=5) and events["event_id"].n_unique() == events.height
    assert (
        events.filter(pl.col("event_type") == "identify")["user_id"].sort().to_list()
        == people["user_id"].to_list()
    )
    assert set(events["anonymous_id"]) <= set(people["anonymous_id"])
    assert events["batch_id"].min() == 1 and events["batch_id"].max() == past.batches
    for text in (
        events["properties"].drop_nulls().head(200).to_list() + events["traits"].drop_nulls().to_list()
    ):
        assert isinstance(orjson.loads(text), dict)


@pytest.mark.parametrize("events_per_user", [0.5, 20.0])
def test_profile_states_fit_the_fold(events_per_user: float) -> None:
    now = datetime(2026, 1, 10, tzinfo=UTC)
    past = Past(50, 50 * int(events_per_user * 2), 3, now)
    people = shoppers(3, 50)
    state = profile_states(people, events_per_user, seed=3, window=activity(past))
    assert state.schema == pl.Schema(PARTIAL_SCHEMA)
    assert state["principal"].to_list() == people["user_id"].to_list()
    assert state["views"].list.len().max() <= VIEW_STATE  # type: ignore[operator]
    assert (state["last_ts"] <= now - QUIET).all()
    assert merge_partials(pl.concat([state, state])).height == 50  # the fold takes it
    waiting = pending_partials(people, 120, past=past, batches=(4, 6))
    assert waiting.height == 120 and set(waiting["batch_id"]) <= {4, 5, 6}


def test_list_column_groups_rows_by_counts() -> None:
    values = pl.DataFrame({"query": ["a", "b", "c"], "ts": [datetime(2026, 1, 1, tzinfo=UTC)] * 3})
    column = list_column(np.array([2, 0, 1]), values.select("ts", "query"), PARTIAL_SCHEMA["searches"])
    assert [[item["query"] for item in row] for row in column.to_list()] == [["a", "b"], [], ["c"]]


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (datetime(2026, 1, 2, 3, 4, 5, 678_901, tzinfo=UTC), "2026-01-02T03:04:05.678Z"),
        (date(2026, 1, 2), "2026-01-02"),
        (7, 7),
        ("x", "x"),
    ],
)
def test_stat_values_as_delta_writes_them(value: object, text: object) -> None:
    assert stat_value(value) == text


def test_raw_commits_read_back_with_their_tags_and_statistics(tmp_path: Path) -> None:
    lake = LakeResource(uri=str(tmp_path / "lake"))
    schema = {"batch_id": pl.Int64(), "source_file": pl.String(), "event_date": pl.Date()}
    lake.write("events", pl.DataFrame(schema=schema), partition_by=["event_date"])
    table = RawTable(lake.table_uri("events"))
    for batch in range(1, 121):
        day = date(2026, 1, 1 + batch // 100)
        frame = pl.DataFrame(
            {"batch_id": [batch] * 3, "source_file": [f"f{batch}"] * 3, "event_date": [day] * 3}
        )
        table.append([frame], txns={INGEST_APP_ID: batch})
    table.checkpoint_like_delta_rs()
    assert (tmp_path / "lake/events/_delta_log/00000000000000000099.checkpoint.parquet").exists()
    assert lake.committed_batch() == 0 and lake.batch_version("events") == 120
    events = lake.table("events")
    assert events is not None
    rows = pl.scan_delta(events).filter(pl.col("batch_id") == 120).collect()
    assert rows.height == 3 and rows["event_date"].to_list() == [date(2026, 1, 2)] * 3
    stats = json.loads(
        next(iter(json.loads(line) for line in _log_lines(tmp_path, 120) if "add" in line))["add"]["stats"]
    )
    assert stats["numRecords"] == 3 and stats["minValues"]["batch_id"] == 120


def _log_lines(tmp_path: Path, version: int) -> list[str]:
    return (tmp_path / f"lake/events/_delta_log/{version:020d}.json").read_text().splitlines()


@pytest.mark.parametrize(
    ("batches", "per_batch", "folds"),
    [
        (10, 100, [3, 6, 9]),
        (4, 100, [3]),
        (1, 100, []),
        (10_000, 600, list(range(9792 - 417 * 23, 9793, 417))),
    ],
)
def test_folds_every_threshold_leaving_about_half_waiting(
    batches: int, per_batch: int, folds: list[int]
) -> None:
    assert fold_batches(batches, per_batch, threshold=300 if batches < 100 else 250_000) == folds


def test_slices_by_and_batch_ranges() -> None:
    frame = pl.DataFrame({"batch_id": [3, 1, 3, 4]})
    assert [s.height for s in slices_by(frame, "batch_id", 4)] == [1, 0, 2, 1]
    assert [s.height for s in slices_by(frame, "batch_id", 4, first=3)] == [2, 1]
    assert batch_ranges(10, 4) == [(1, 2), (3, 5), (6, 7), (8, 10)]


def test_shift_stamp_and_renumber() -> None:
    assert shift_stamp("2026-01-01 00:00:00.500000", -1.5) == "2025-12-31 23:59:59.000000"
    assert shift_stamp("2026-01-01 00:00:00", 60) == "2026-01-01 00:01:00.000000"
    assert shift_stamp(None, 5) is None
    assert renumber([12, 10, 11], base=100) == {10: 101, 11: 102, 12: 103}


@pytest.mark.parametrize("lakemails", [True, False])
def test_cloned_runs_join_the_instance(tmp_path: Path, lakemails: bool) -> None:
    """Clones in lakemail's SQLite history (one event log database: the benchmark's instance; it cloned
    into Dagster's default index shard only, and failed to open it) and in Dagster's default one."""

    @dg.asset
    def thing() -> int:
        return 1

    # The history benchmark clones SQLite storage files: its instance is SQLite's under test-postgres too.
    storage = yaml.safe_load(sqlite_history_yaml(tmp_path)) if lakemails else {}
    overrides = {"compute_logs": NO_CAPTURE, **storage}
    with dg.instance_for_test(temp_dir=str(tmp_path), overrides=overrides) as instance:
        template = dg.materialize([thing], instance=instance).run_id
        ids = clone_runs(tmp_path, template, 3, every=10)
        assert instance.get_runs_count() == 4
        if lakemails:  # every event of the run is cloned (the default's shard copies keep its run id)
            assert len(instance.all_logs(ids[1])) == len(instance.all_logs(template)) > 0
        assert {r.dagster_run.run_id for r in instance.get_run_records()} == {template, *ids}
        assert all(r.dagster_run.status == dg.DagsterRunStatus.SUCCESS for r in instance.get_run_records())
        cloned = instance.get_run_record_by_id(ids[0])
        original = instance.get_run_record_by_id(template)
    assert cloned is not None and original is not None and cloned.end_time and original.end_time
    assert cloned.end_time == pytest.approx(original.end_time - 30)


def test_parse_process_and_step_seconds() -> None:
    text = (
        "run 1234-abcd: SUCCESS - 10 files, 10,000 lines, 9,900 accepted, 60 duplicates\n"
        "4.20 s, 2,380 lines/s, peak RSS 400 MB\n"
    )
    assert parse_process(text) == ("1234-abcd", 10_000, 4.2)
    with pytest.raises(RuntimeError):
        parse_process(text.replace("SUCCESS", "FAILURE"))
    assert step_seconds([("a", 1500.0), ("b", 20.0), ("a", 500.0)]) == {"a": 2.0, "b": 0.02}


def _batch(run: float, **steps: float) -> BatchRun:
    return BatchRun(
        lines=10_000, wall_seconds=run + 2, reported_seconds=run + 1, run_seconds=run, steps=steps
    )


@pytest.mark.parametrize(
    ("n", "text"), [(100_000, "100k"), (5_000_000, "5M"), (2_500_000, "2.5M"), (1_234, "1,234")]
)
def test_short_sizes(n: int, text: str) -> None:
    assert short(n) == text


def test_points_group_by_users_events_ascending() -> None:
    groups = by_users([Point(5, 50), Point(1, 10), Point(5, 10)])
    assert groups == [[Point(1, 10)], [Point(5, 10), Point(5, 50)]]
