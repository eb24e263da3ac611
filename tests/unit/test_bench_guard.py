"""One failing figure of `make bench` does not lose the hour of figures measured beside it."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks import run
from benchmarks.figures import Figure
from benchmarks.report import render, this_machine
from benchmarks.run import _guarded


def _boom() -> list[Figure]:
    raise RuntimeError("the lake went away")


def test_a_failed_figure_is_reported_and_the_others_kept() -> None:
    kept = Figure("floor", "`floor`")
    kept.add("rows/s", "rows/s", [1.0, 2.0, 3.0])
    figures = _guarded("floor", lambda: [kept]) + _guarded("scaling", _boom)
    assert [f.name for f in figures] == ["floor", "scaling"]
    assert figures[0] is kept
    assert figures[1].rows == []
    assert figures[1].notes == ["The figure failed: RuntimeError: the lake went away"]
    text = render(figures, this_machine(), date="now", command="bench", seconds=1.0, plot=None)
    assert "the lake went away" in text
    assert "rows/s" in text


def test_a_run_with_a_failed_figure_writes_the_file_and_exits_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # A full disk once made the drain's copy of the landing fail: the figure said "not measured", and
    # `make bench` still exited 0, so nothing told the person running it.
    def no_space(events: int, repeat: int, drain: bool) -> list[Figure]:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(run, "backlog_figures", no_space)
    monkeypatch.setattr(run, "load_results", lambda: None)
    out = tmp_path / "BENCHMARKS.md"
    assert run.main(["--only", "floor", "--out", str(out)]) == 1
    assert "No space left on device" in out.read_text()
    assert "not measured: backlog_drain" in capsys.readouterr().err
