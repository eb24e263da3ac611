"""`lakemail report` and the `experiments` table on a small known lake (tests.unit.test_experiments'):
each arm's sends, clicks, conversions and revenue with their intervals, the window as it is written, and
a table written before `sent` and the intervals were columns. In-process: a subprocess would run the
installed checkout, not this one."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from orchestration.cli import main
from resources.lake import LakeResource
from stores.measure import EXPERIMENTS, run_experiments
from tests.unit.test_experiments import WINDOW, small_lake
from transforms.measure.tables import EXPERIMENTS_SCHEMA
from transforms.schema import EVENTS_SCHEMA

NOW = datetime(2026, 4, 10, tzinfo=UTC)
NEW_COLUMNS = ("sent", "click_low", "click_high", "revenue_low", "revenue_high")


def write_small_lake(lake: LakeResource) -> None:
    triggers, sends, events = small_lake()
    lake.write("triggers", triggers)
    lake.write("sends", sends)
    lake.write(
        "events", pl.DataFrame([dict.fromkeys(EVENTS_SCHEMA) | e for e in events], schema=EVENTS_SCHEMA)
    )


@pytest.fixture
def home(cli_home: Path) -> Path:
    write_small_lake(LakeResource(uri=str(cli_home / "lake")))
    return cli_home


@pytest.mark.parametrize("window", ["5d", "36h"])
def test_the_report_prints_each_arms_figures_and_the_window_as_lakemail_reads_it(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], window: str
) -> None:
    """JSON's window was Python's `5 days, 0:00:00` (found by a review); now as the variable is written."""
    monkeypatch.setenv("LAKEMAIL_ATTRIBUTION_WINDOW", window)
    assert main(["report", "--format", "json"]) == 0
    body = json.loads(capsys.readouterr().out)
    assert body["window"] == window
    arms = {r["arm"]: r for r in body["arms"]}
    a, held = arms["a"], arms["holdout"]
    assert (a["exposed"], a["sent"], a["clicked"], a["converted"]) == (40, 10, 8, 6)
    assert (held["sent"], held["clicked"], held["converted"]) == (0, 0, 4)
    assert (a["click_low"], a["click_high"]) == pytest.approx((0.1050, 0.3476), abs=5e-5)
    assert (a["revenue_per_shopper"], a["revenue_low"], a["revenue_high"]) == pytest.approx(
        (7.5, 0.8721, 14.1279), abs=5e-5
    )

    assert main(["report"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"What the emails earned (attribution window {window}; shoppers from the start):"
    header, row = lines[2].split(), lines[4].split()
    assert header[:6] == ["kind", "arm", "exposed", "sent", "clicked", "click"]
    assert row[:9] == ["abandoned_cart", "a", "40", "10", "8", "20.0%", "[10.5%,", "34.8%]", "6"]


def test_an_experiments_table_from_before_the_sends_and_intervals_is_rewritten_with_them(
    tmp_path: Path,
) -> None:
    lake = LakeResource(uri=str(tmp_path / "lake"))
    write_small_lake(lake)
    old = {c: t for c, t in EXPERIMENTS_SCHEMA.items() if c not in NEW_COLUMNS}
    row = {
        "kind": "abandoned_cart",
        "arm": "a",
        "day": NOW.date(),
        "exposed": 1,
        "clicked": 0,
        "converted": 0,
    }
    lake.write(EXPERIMENTS, pl.DataFrame([row], schema=old))
    assert lake.read(EXPERIMENTS, EXPERIMENTS_SCHEMA)["sent"].to_list() == [None]  # read as null until then

    run_experiments(lake, WINDOW, NOW)
    table = lake.table(EXPERIMENTS)
    assert table is not None and [f.name for f in table.schema().fields] == list(EXPERIMENTS_SCHEMA)
    written = lake.read(EXPERIMENTS, EXPERIMENTS_SCHEMA).sort("arm")
    assert written.select("arm", "exposed", *NEW_COLUMNS[:1]).rows() == [("a", 40, 10), ("holdout", 40, 0)]
    assert written.select(pl.col(NEW_COLUMNS[1:]).is_not_null().all()).row(0) == (True,) * 4


@pytest.mark.parametrize(
    ("since", "said"), [("2026-03-01", "abandoned_cart"), ("2026-04-01", "from 2026-04-01 on")]
)
def test_a_since_after_every_shopper_says_so_not_that_nobody_was_assigned(
    home: Path, capsys: pytest.CaptureFixture[str], since: str, said: str
) -> None:
    """80 shoppers joined on 2026-03-02: from 2026-04-01 on there are none, which the report said as
    "No shopper has been assigned to an experiment yet." (found by review)."""
    assert main(["report", "--since", since]) == 0
    out = capsys.readouterr().out
    assert said in out and "yet" not in out
