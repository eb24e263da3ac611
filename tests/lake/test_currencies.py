"""Amounts in different currencies are never added: the experiments (and `lakemail report`) show revenue
in the shop's currency (the one most orders name; an order naming none is taken to be in it); an order in
another is a conversion, counted and named beside the revenue, not added to it. The attributions keep
each order's own currency, and their run's credited revenue is per currency."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from orchestration.cli import main
from resources.lake import LakeResource
from stores.measure import ATTRIBUTIONS, EXPERIMENTS, run_attribution, run_experiments
from tests.lake.measure_world import WINDOW, accepted, decided, hours, ordered, outbox, write
from transforms.measure.tables import ATTRIBUTIONS_SCHEMA, EXPERIMENTS_SCHEMA

TREATED, HELD = ["u-1", "u-2", "u-3", "u-4"], ["h-1", "h-2"]


def shop(lake: LakeResource) -> None:
    """Four treated shoppers, all mailed: 40 EUR, 20 with no currency, 3000 JPY, 30 USD; the holdout:
    10 EUR and nothing."""
    decisions = [decided(u) for u in TREATED] + [decided(u, "holdout") for u in HELD]
    rows = outbox(decisions)
    sends = [accepted(rows[u], hours(0.1)) for u in TREATED]
    amounts = [(40.0, "EUR"), (20.0, None), (3000.0, "JPY"), (30.0, "USD")]
    orders = [ordered(u, hours(3), r, c) for u, (r, c) in zip(TREATED, amounts, strict=True)]
    write(lake, decisions, sends, [*orders, ordered("h-1", hours(3), 10.0, "EUR")])


def test_revenue_is_in_the_shops_currency_and_the_others_are_named(lake: LakeResource) -> None:
    shop(lake)
    report = run_attribution(lake, WINDOW)
    assert report.revenue == {"EUR": 40.0, "JPY": 3000.0, "USD": 30.0, "none": 20.0}

    arms = {r["arm"]: r for r in run_experiments(lake, WINDOW, hours(24 * 6)).to_dicts()}
    a, held = arms["a"], arms["holdout"]
    assert (a["converted"], a["revenue"], a["currency"], a["other_currency_orders"]) == (4, 60.0, "EUR", 2)
    assert (held["converted"], held["revenue"], held["other_currency_orders"]) == (1, 10.0, 0)
    assert a["revenue_per_shopper"] == 15.0 and a["revenue_uplift"] == 10.0
    assert "2 orders in JPY, USD: conversions, not in revenue (EUR)" in a["note"]
    assert held["note"].startswith("holdout too small")  # nothing to say of currencies

    table = lake.read(EXPERIMENTS, EXPERIMENTS_SCHEMA)
    assert table.filter(pl.col("arm") == "a")["revenue"].to_list() == [60.0]


def test_the_report_says_which_currency_revenue_is_in(
    cli_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shop(LakeResource(uri=str(cli_home / "lake")))
    assert main(["report", "--format", "json"]) == 0
    arms = {r["arm"]: r for r in json.loads(capsys.readouterr().out)["arms"]}
    assert (arms["a"]["currency"], arms["a"]["revenue"], arms["a"]["other_currency_orders"]) == ("EUR", 60, 2)
    assert main(["report"]) == 0
    text = capsys.readouterr().out
    assert "revenue in EUR" in text and "2 orders in JPY, USD: conversions, not in revenue (EUR)" in text


def test_a_currency_code_in_any_case_is_the_same_currency(lake: LakeResource) -> None:
    """ISO 4217 codes are upper case: "eur" and " Eur " are EUR, in the attributions, the experiments and
    the report alike (found by review: revenue {'EUR': 50.0, 'eur': 50.0}, and "1 order in eur:
    conversions, not in revenue (EUR)")."""
    decisions = [decided(u) for u in TREATED[:3]] + [decided(u, "holdout") for u in HELD]
    rows = outbox(decisions)
    sends = [accepted(rows[u], hours(0.1)) for u in TREATED[:3]]
    amounts = [(40.0, "EUR"), (50.0, "eur"), (10.0, " Eur ")]
    orders = [ordered(u, hours(3), r, c) for u, (r, c) in zip(TREATED, amounts, strict=False)]
    write(lake, decisions, sends, orders)

    assert run_attribution(lake, WINDOW).revenue == {"EUR": 100.0}
    assert lake.read(ATTRIBUTIONS, ATTRIBUTIONS_SCHEMA)["currency"].to_list() == ["EUR"] * 3
    a = next(r for r in run_experiments(lake, WINDOW, hours(24 * 6)).to_dicts() if r["arm"] == "a")
    assert (a["converted"], a["revenue"], a["currency"], a["other_currency_orders"]) == (3, 100.0, "EUR", 0)
    assert "conversions, not in revenue" not in a["note"]
