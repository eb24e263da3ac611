"""Dagster wiring of what the emails earn: `attributions` and `experiments`, hourly (measure_job)."""

from datetime import timedelta
from typing import Any

import dagster as dg
import polars as pl

from assets.clock import EngineConfig, engine_now
from resources.lake import LakeResource
from stores.measure import read_inputs, run_attribution, run_experiments, write_plot
from transforms.measure.plot import experiments_png
from transforms.measure.report import duration_text, experiments_markdown, png_markdown

MEASURE_GROUP = "measure"


def _experiments_metadata(lake: LakeResource, pooled: pl.DataFrame) -> dict[str, Any]:
    """The table, then the picture itself (the UI renders it under the table) and its file."""
    png = experiments_png(pooled)
    metadata: dict[str, Any] = {"experiments": dg.MetadataValue.md(experiments_markdown(pooled))}
    picture, plot = png_markdown(png), write_plot(lake, png)
    if picture is not None:
        metadata["picture"] = dg.MetadataValue.md(picture)
    if plot is not None:
        metadata["plot"] = dg.MetadataValue.path(str(plot))
    return metadata


def build_measure_assets(window: timedelta) -> list[dg.AssetsDefinition]:
    """`attributions` and `experiments` over the attribution window (LAKEMAIL_ATTRIBUTION_WINDOW)."""

    @dg.asset(
        name="attributions",
        group_name=MEASURE_GROUP,
        deps=["events", "identities", "sends"],
        description="Each order credited to one send at most: last clicked, else last sent, in the window.",
    )
    def attributions(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
        """Credit orders to sends; merge what changed, withdraw what is no longer earned (once per order)."""
        with lake.measure_lock():  # its own: neither lane waits while it reads the lake (an erasure does)
            report = run_attribution(lake, window)
        context.log.info(
            "attributions: %s of %s orders credited (%s), %s rows merged, %s withdrawn; refunds: %s orders "
            "ended, %s partial refunds in another currency not netted",
            *(report.credited, report.orders, report.by_rule, report.merged, report.withdrawn),
            *(report.refunded, report.unnetted),
        )
        metadata: dict[str, Any] = {
            "orders": report.orders,
            "credited": report.credited,
            "merged": report.merged,
            "withdrawn": report.withdrawn,
            "by_rule": dg.MetadataValue.json(report.by_rule),
            "refunded_orders": report.refunded,
            "refunds_not_netted": report.unnetted,
            "credited_revenue": dg.MetadataValue.json({c: round(r, 2) for c, r in report.revenue.items()}),
            "window": duration_text(window),
        }
        return dg.MaterializeResult(metadata=metadata)

    @dg.asset(
        name="experiments",
        group_name=MEASURE_GROUP,
        deps=["triggers", "attributions"],
        description="Per trigger kind and arm: sends, clicks, conversion, revenue, uplift over the holdout "
        "(95 % CIs).",
    )
    def experiments(
        context: dg.AssetExecutionContext, config: EngineConfig, lake: LakeResource
    ) -> dg.MaterializeResult:
        """Measure each arm from its shoppers' assignment on, against the holdout; rewrite `experiments`."""
        now = engine_now(config)
        with lake.measure_lock():
            pooled = run_experiments(lake, window, now, read_inputs(lake))
        kinds = pooled["kind"].n_unique()
        context.log.info("experiments: %s kinds, %s arms", kinds, pooled.height)
        metadata = _experiments_metadata(lake, pooled)
        totals = {c: int(pooled[c].sum()) if pooled.height else 0 for c in ("exposed", "sent")}
        metadata |= {"kinds": kinds, **totals}
        metadata |= {"window": duration_text(window), "computed_at": now.isoformat()}
        return dg.MaterializeResult(metadata=metadata)

    return [attributions, experiments]
