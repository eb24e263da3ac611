"""The benchmark plot: rolling percentiles, and a real PNG from small synthetic series."""

from __future__ import annotations

from pathlib import Path

import pytest
from matplotlib.image import imread

from benchmarks.plot import rolling_percentile, write_plot

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    ("values", "q", "window", "expected"),
    [
        ([], 50, 3, []),
        ([1.0, 2.0, 3.0, 4.0], 50, 1, [1.0, 2.0, 3.0, 4.0]),
        ([1.0, 3.0, 2.0, 10.0], 50, 2, [1.0, 2.0, 2.5, 6.0]),
        ([5.0, 1.0, 9.0, 3.0], 100, 3, [5.0, 5.0, 9.0, 9.0]),
        ([5.0, 1.0, 9.0, 3.0], 0, 10, [5.0, 1.0, 1.0, 1.0]),
    ],
)
def test_rolling_percentile_over_trailing_windows(
    values: list[float], q: float, window: int, expected: list[float]
) -> None:
    assert rolling_percentile(values, q, window) == pytest.approx(expected)


def test_rolling_percentile_refuses_an_empty_window() -> None:
    with pytest.raises(ValueError):
        rolling_percentile([1.0], 50, 0)


def test_write_plot_makes_a_two_panel_png(tmp_path: Path) -> None:
    latencies = {
        "lakemail": [4.0 + (i % 7) / 2 for i in range(90)],
        "spark": [0.4 + (i % 3) / 10 for i in range(60)],
    }
    throughput = {"floor": 112_000.0, "lakemail": 30_000.0, "spark": 28_000.0}
    path = write_plot(tmp_path / "out" / "bench.png", latencies, throughput)
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    height, width, _ = imread(path).shape
    assert (width, height) == (11 * 110, round(4.2 * 110))


def test_write_plot_takes_empty_inputs(tmp_path: Path) -> None:
    path = write_plot(tmp_path / "empty.png", {}, {})
    assert path.read_bytes()[:8] == PNG_SIGNATURE
