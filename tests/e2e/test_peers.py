"""The Spark peer's plumbing without Spark: results files, checkpoint logs, memory sampling, figures."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmarks import build
from benchmarks.drain import DrainRun
from benchmarks.figures import Figure
from benchmarks.peers import PeerBacklogRun, PeerResults, PeerSteadyRun, load_results, sparklog
from benchmarks.peers.figures import PEER_P50, PEER_THROUGHPUT, comparison_figure, peer_figures
from benchmarks.peers.queries import PEER_SCRIPT, Work
from benchmarks.peers.results import to_json
from benchmarks.peers.rss import PeakRss, own_memory, status_kb, tree
from benchmarks.steady import SteadyRun

T0 = 1_800_000_000.0  # an epoch second to set mtimes from


def _results(*, backlog: bool = True, steady: bool = True) -> PeerResults:
    return PeerResults(
        peer="spark-structured-streaming",
        date="2026-01-01 00:00 UTC",
        quick=True,
        machine={"cores": "2"},
        measured={"backlog": "2026-01-01 00:00 UTC by `...`; load 1.00", "steady": "2026-01-01 00:10 UTC"},
        versions={"pyspark": "4.3.0", "java": "17.0.15"},
        settings={"master": "local[2]"},
        commands={"backlog": ["lakemail simulate ..."], "steady": ["..."]},
        notes=["Delta's jars cannot be downloaded here: the sink is parquet."],
        backlog_events=1_000_000,
        steady_seconds=300.0,
        backlog=[PeerBacklogRun(1_000_000, wall, wall - 10, 6.0, 900.0, 994_000, 1) for wall in (50.0, 40.0)]
        if backlog
        else [],
        steady=[PeerSteadyRun(11, [0.5, 1.0, 1.5, 2.0], [0, 1, 2], [0.4, 0.5], 800.0)] if steady else [],
    )


def test_results_round_trip_through_json(tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    path.write_text(to_json(_results()))
    assert load_results(path) == _results()


def test_no_results_file_means_no_peer(tmp_path: Path) -> None:
    assert load_results(tmp_path / "missing.json") is None


def test_results_of_another_schema_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    path.write_text(json.dumps({**json.loads(to_json(_results())), "schema": 99}))
    with pytest.raises(ValueError, match="schema 99"):
        load_results(path)


def test_committed_results_are_readable_and_full_size() -> None:
    results = load_results()
    assert results is not None
    assert not results.quick and results.backlog_events == 1_000_000 and results.steady_seconds == 300
    assert results.backlog and results.steady
    assert any("Delta" in note for note in results.notes)
    assert set(results.measured) == {"backlog", "steady"}


def test_run_derived_rates() -> None:
    run = _results().backlog[0]
    assert (run.events_per_s, run.query_events_per_s) == (20_000, 25_000)
    assert _results().steady[0].files == 4


@pytest.mark.parametrize(
    ("name", "batch"),
    [("0", 0), ("12", 12), ("19.compact", 19), (".12.crc", None), (".3.5f1e.tmp", None), ("metadata", None)],
)
def test_batch_id_of_log_entries(name: str, batch: int | None) -> None:
    assert sparklog.batch_id(name) == batch


@pytest.mark.parametrize(
    ("uri", "path"),
    [("file:///tmp/a/x.ndjson", "/tmp/a/x.ndjson"), ("file:/tmp/a%20b/x.ndjson", "/tmp/a b/x.ndjson")],
)
def test_local_path_of_source_log_uris(uri: str, path: str) -> None:
    assert sparklog.local_path(uri) == path


def _write_log(path: Path, entries: list[dict[str, object]], mtime: float | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("v1\n" + "".join(json.dumps(e) + "\n" for e in entries))
    if mtime is not None:
        os.utime(path, (mtime, mtime))


def test_latencies_from_source_and_sink_logs(tmp_path: Path) -> None:
    landing, checkpoint, sink = tmp_path / "landing", tmp_path / "checkpoint", tmp_path / "sink"
    landing.mkdir()
    files = [landing / f"f{i}.ndjson" for i in range(4)]
    for i, path in enumerate(files):
        path.write_text("{}\n")
        os.utime(path, (T0 + i, T0 + i))
    batches = dict(zip(files, (0, 1, 1, 2), strict=True))
    entry = [{"path": f"file://{p}", "timestamp": 0, "batchId": b} for p, b in batches.items()]
    sources = checkpoint / "sources" / "0"
    _write_log(sources / "0", entry[:1])
    _write_log(sources / "1.compact", entry[:3])  # compacted: repeats batch 0's entry
    _write_log(sources / "2", entry[3:])
    _write_log(sources / ".2.crc", [])
    _write_log(sink / "_spark_metadata" / "0", [], mtime=T0 + 0.5)
    _write_log(sink / "_spark_metadata" / "1.compact", [], mtime=T0 + 2.75)
    assert sparklog.file_batches(checkpoint) == {str(p): b for p, b in batches.items()}
    assert sparklog.latencies(files[:3], checkpoint, sink) == pytest.approx([0.5, 1.75, 0.75])
    assert sparklog.uncommitted([*files, landing / "new.ndjson"], checkpoint, sink) == 2
    with pytest.raises(RuntimeError, match=r"f3\.ndjson is in no committed batch"):
        sparklog.latencies(files, checkpoint, sink)


def test_no_logs_yet_means_everything_is_backlog(tmp_path: Path) -> None:
    files = [tmp_path / "a.ndjson"]
    assert sparklog.uncommitted(files, tmp_path / "checkpoint", tmp_path / "sink") == 1


def test_peak_rss_covers_the_childs_children() -> None:
    # A child whose own child holds ~64 MB for a while: the sampler must see the grandchild.
    holder = "import time; b = bytearray(64 * 2**20); b[::4096] = b'x' * len(b[::4096]); time.sleep(1.5)"
    parent = f"import subprocess, sys; subprocess.run([sys.executable, '-c', {holder!r}])"
    child = subprocess.Popen([sys.executable, "-c", parent])
    with PeakRss(child.pid, interval=0.05) as rss:
        child.wait()
    assert child.returncode == 0
    assert 64 < rss.peak_mb < 64 + 2 * 100  # the holder's 64 MB, plus two interpreters at most
    assert rss.tree_kb / 1024 > 64 and rss.process_kb / 1024 > 64
    assert os.getpid() in tree(os.getpid())
    assert status_kb(os.getpid(), "VmHWM") >= status_kb(os.getpid(), "VmRSS") > 0
    assert status_kb(2**22 + 1, "VmRSS") == 0  # above pid_max: no such process


def test_a_fork_not_yet_execd_does_not_count_its_parents_memory_again() -> None:
    # The holder forks, as the JVM does before it execs a helper; the fork reports the 64 MB as its own.
    holder = (
        "import os, time; b = bytearray(64 * 2**20); b[::4096] = b'x' * len(b[::4096]); "
        "pid = os.fork(); time.sleep(1.5); pid and os.waitpid(pid, 0)"
    )
    child = subprocess.Popen([sys.executable, "-c", holder])
    time.sleep(0.5)
    assert own_memory(child.pid) == {child.pid}
    with PeakRss(child.pid, interval=0.05) as rss:
        child.wait()
    assert 64 < rss.peak_mb < 64 + 100


def _lakemail_figures() -> tuple[Figure, Figure]:
    drains = [DrainRun(1_000_000, 990_000, wall, wall - 2, 800.0) for wall in (10.0, 20.0, 40.0)]
    steady = [SteadyRun(latencies=[0.5, 0.6, 0.9], backlog=[0], files=3)]
    return build.drain_figure(drains, [], []), build.steady_figure(steady, 60, [])


def test_comparison_judges_the_issue_targets() -> None:
    drain, steady = _lakemail_figures()
    figure = comparison_figure(_results(), drain, steady)
    assert figure is not None
    # lakemail's median 50,000 events/s over Spark's 22,500 (20,000 and 25,000); p50 0.6 s over 1.25 s
    assert figure.median(PEER_THROUGHPUT.label) == pytest.approx(50_000 / 22_500)
    assert figure.median(PEER_P50.label) == pytest.approx(0.48)
    assert [v.met for v in figure.verdicts] == [False, True]


def test_comparison_needs_something_to_pair() -> None:
    assert comparison_figure(_results(), None, None) is None
    assert comparison_figure(_results(backlog=False, steady=False), *_lakemail_figures()) is None


def test_peer_figures_cover_the_parts_measured() -> None:
    assert [f.name for f in peer_figures(_results())] == ["peer_spark_backlog", "peer_spark_steady"]
    assert [f.name for f in peer_figures(_results(backlog=False))] == ["peer_spark_steady"]


def test_the_peer_script_takes_every_option_the_orchestrator_passes(tmp_path: Path) -> None:
    argv = Work(tmp_path).argv("python", "steady", tmp_path / "landing", "--trigger-seconds", "0")
    assert argv[1:3] == [str(PEER_SCRIPT), "steady"]
    accepted = set(re.findall(r'"(--[a-z-]+)"', PEER_SCRIPT.read_text()))
    assert {a for a in argv if a.startswith("--")} <= accepted
