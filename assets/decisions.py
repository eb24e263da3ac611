"""Dagster wiring of the decision stage: `profiles` (fold of per-batch partials) and `triggers`."""

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg
import polars as pl

from assets.erasure import SecretsResource
from assets.events import markdown_table
from assets.profile_store import (
    FOLD_EVERY_ROWS,
    UPDATES_APP,
    append_updates,
    batch_events,
    fold,
    waiting_updates,
)
from assets.suppressions import record_unsubscribes
from assets.trigger_store import run_engine
from orchestration.resources import LakeResource
from transforms.policies import Policy

DECISIONS_GROUP = "decisions"


class EngineConfig(dg.Config):
    """`now` (ISO-8601) evaluates time-based triggers as of that instant; none means the clock."""

    now: str | None = None


def engine_now(config: EngineConfig) -> datetime:
    if config.now is None:
        return datetime.now(UTC)
    moment = datetime.fromisoformat(config.now)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dg.asset(
    group_name=DECISIONS_GROUP,
    deps=["events", "identities"],
    description="One row per known shopper: identity-stitched traits (base + partials since the last fold).",
)
def profiles(
    context: dg.AssetExecutionContext, config: EngineConfig, lake: LakeResource, secrets: SecretsResource
) -> dg.MaterializeResult:
    """Identity-stitched shopper profiles, updated from each batch's events."""
    written = users = unsubscribes = 0
    with lake.writer_lock():
        done, committed = lake.app_version("profile_updates", UPDATES_APP), lake.committed_batch()
        for batch_id in range(done + 1, committed + 1):
            events = batch_events(lake, batch_id)
            written += append_updates(lake, batch_id, events)
            users += events.select(pl.coalesce("user_id", "anonymous_id")).n_unique() if events.height else 0
            unsubscribes += record_unsubscribes(lake, events, secrets.hmac_key)
        waiting = waiting_updates(lake)
        folded = fold(lake, engine_now(config)) if waiting >= FOLD_EVERY_ROWS else None
    context.log.info("profiles: %s partials over batches %s..%s", written, done + 1, committed)
    return dg.MaterializeResult(
        metadata={
            "batches": f"{done + 1}..{committed}" if committed > done else "none",
            "partials_written": written,
            "principals_touched": users,
            "partials_waiting": waiting,
            "folded_up_to_batch": folded if folded is not None else dg.NullMetadataValue(),
            "unsubscribes": unsubscribes,
        }
    )


def _decisions_table(rows: pl.DataFrame) -> str:
    if rows.height == 0:
        return "no decisions this run"
    counts = (
        rows.group_by("kind", "decision", "reason")
        .agg(pl.len().alias("n"))
        .sort("kind", "decision", "reason")
    )
    return markdown_table(counts)


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
        context: dg.AssetExecutionContext, config: EngineConfig, lake: LakeResource, secrets: SecretsResource
    ) -> dg.MaterializeResult:
        """Decide every trigger candidate touched by new events or due now."""
        now = engine_now(config)
        with lake.writer_lock():
            report = run_engine(lake, now=now, secret=secrets.hmac_key, delays=dict(delays), policy=policy)
        rows = report.rows
        by_decision = dict(rows.group_by("decision").agg(pl.len()).iter_rows())
        context.log.info("triggers: evaluation %s, %s rows, %s", report.evaluation, rows.height, by_decision)
        metadata: dict[str, Any] = {
            "evaluation": report.evaluation,
            "evaluated_at": now.isoformat(),
            "decisions": dg.MetadataValue.json(by_decision),
            "by_kind_and_reason": dg.MetadataValue.md(_decisions_table(rows)),
            "pending": report.pending,
            "next_due": report.next_due.isoformat() if report.next_due else dg.NullMetadataValue(),
        }
        return dg.MaterializeResult(metadata=metadata)

    return triggers


def kind_delays(variables: Mapping[str, timedelta]) -> dict[str, timedelta]:
    """`LAKEMAIL_ABANDONED_CART_DELAY` -> `abandoned_cart` (settings keep the variable names)."""
    return {
        name.removeprefix("LAKEMAIL_").removesuffix("_DELAY").lower(): value
        for name, value in variables.items()
    }
