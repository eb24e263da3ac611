"""One failing figure of `make bench` does not lose the hour of figures measured beside it."""

from __future__ import annotations

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
