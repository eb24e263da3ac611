"""Dagster wiring of the profiles stage: `profiles` (fold of per-batch partials)."""

import dagster as dg
import polars as pl

from assets.clock import EngineConfig, engine_now
from assets.triggers import DECISIONS_GROUP
from resources.lake import LakeResource
from resources.secrets import SecretsResource
from stores.profiles import append_updates, batch_events, fold, waiting_updates
from stores.suppressions import record_unsubscribes
from transforms.schema import FOLD_EVERY_ROWS, UPDATES_APP


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
