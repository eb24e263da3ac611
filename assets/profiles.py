"""Dagster wiring of the profiles refresh: the `profiles` Delta table, off the micro-batch's hot path.

The micro-batch keeps every shopper's state current in the state store (`lakemail sql` and the trigger
engine read it there); this asset, in its own job on a schedule (LAKEMAIL_PROFILES_REFRESH), folds the
lake's partials now and then and rewrites `profiles` for the lake's other readers.
"""

import dagster as dg

from assets.clock import EngineConfig, engine_now
from resources.lake import LakeResource
from resources.state import StateResource
from stores.state.refresh import fold, take_updates, write_profiles

PROFILES_GROUP = "profiles"


@dg.asset(
    group_name=PROFILES_GROUP,
    deps=["events", "identities", "customers"],
    description="One row per known shopper: identity-stitched traits as of the batch it is tagged with "
    "(rewritten from the state store by profiles_job; `as_of` says when).",
)
def profiles(
    context: dg.AssetExecutionContext, config: EngineConfig, lake: LakeResource, state: StateResource
) -> dg.MaterializeResult:
    """Take missing partials, fold them when enough wait, rewrite `profiles` from the state store."""
    taken = take_updates(lake)
    folded = fold(lake)
    store = state.existing()
    ahead = store is not None and store.stamps()["ingest"] > lake.committed_batch()
    if store is None or ahead:  # the next micro-batch builds (or rebuilds) the store first
        context.log.warning(
            "profiles: no state store to read%s", " (it is ahead of the lake)" if ahead else ""
        )
        batch, rows = None, 0
    else:
        batch, rows = write_profiles(lake, store, engine_now(config))
    context.log.info("profiles: batch %s, %s rows; %s partials taken, fold %s", batch, rows, taken, folded)
    return dg.MaterializeResult(
        metadata={
            "batch": batch if batch is not None else dg.NullMetadataValue(),
            "rows": rows if rows >= 0 else dg.NullMetadataValue(),
            "unchanged": rows < 0,
            "partials_taken": taken,
            "folded_up_to_batch": folded if folded is not None else dg.NullMetadataValue(),
        }
    )
