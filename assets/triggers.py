"""Dagster wiring of the triggers stage: `triggers`, the decision log."""

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import dagster as dg
import polars as pl

from assets.clock import EngineConfig, engine_now
from assets.metadata import RUN_EVALUATION, markdown_table
from resources.lake import LakeResource
from resources.secrets import SecretsResource
from resources.state import StateResource
from stores.decide.engine import run_engine
from transforms.triggers.policies import Policy

DECISIONS_GROUP = "decisions"


def _decisions_table(rows: pl.DataFrame) -> str:
    if rows.height == 0:
        return "no decisions this run"
    counts = (
        rows.group_by("kind", "decision", "reason")
        .agg(pl.len().alias("n"))
        .sort("kind", "decision", "reason")
    )
    return markdown_table(counts)


def _by_kind_and_decision(rows: pl.DataFrame) -> dict[str, dict[str, int]]:
    """{kind: {decision: n}}: what the runner's metrics count (lakemail_decisions_total)."""
    counts: dict[str, dict[str, int]] = {}
    for kind, decision, n in (
        rows.group_by("kind", "decision").agg(pl.len()).sort("kind", "decision").iter_rows()
    ):
        counts.setdefault(kind, {})[decision] = n
    return counts


def build_triggers_asset(
    delays: Mapping[str, timedelta], policy: Policy | None = None
) -> dg.AssetsDefinition:
    """The `triggers` asset with the configured delay per trigger kind."""

    @dg.asset(
        name="triggers",
        group_name=DECISIONS_GROUP,
        deps=["profiles", "catalog"],
        description="The decision log: a row for every candidate email and why it was (not) sent.",
    )
    def triggers(
        context: dg.AssetExecutionContext,
        config: EngineConfig,
        lake: LakeResource,
        state: StateResource,
        secrets: SecretsResource,
    ) -> dg.MaterializeResult:
        """Decide every trigger candidate touched by new events or due now."""
        now = engine_now(config)
        with lake.decide_lock():  # the decide lane (#15)
            report = run_engine(
                lake, state, now=now, secret=secrets.hmac_key, delays=dict(delays), policy=policy
            )
        rows = report.rows
        by_decision = dict(rows.group_by("decision").agg(pl.len()).iter_rows())
        context.log.info("triggers: evaluation %s, %s rows, %s", report.evaluation, rows.height, by_decision)
        metadata: dict[str, Any] = {
            RUN_EVALUATION: report.evaluation,
            "evaluated_at": now.isoformat(),
            "decisions": dg.MetadataValue.json(by_decision),
            "by_kind_and_decision": dg.MetadataValue.json(_by_kind_and_decision(rows)),
            "by_kind_and_reason": dg.MetadataValue.md(_decisions_table(rows)),
            "pending": report.pending,
            "next_due": report.next_due.isoformat() if report.next_due else dg.NullMetadataValue(),
            "checkpoint": report.checkpoint,  # whether it rewrote `trigger_state` (now and then)
        }
        return dg.MaterializeResult(metadata=metadata)

    return triggers


def kind_delays(variables: Mapping[str, timedelta]) -> dict[str, timedelta]:
    """`LAKEMAIL_ABANDONED_CART_DELAY` -> `abandoned_cart` (settings keep the variable names)."""
    return {
        name.removeprefix("LAKEMAIL_").removesuffix("_DELAY").lower(): value
        for name, value in variables.items()
    }
