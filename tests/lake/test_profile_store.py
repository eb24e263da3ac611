"""The profile store over a lake from an earlier release: `profile_state` and `profile_updates` written
before the state had its `checkouts` list (and its orders their `checkout_id`, the state `consented_at`)."""

from __future__ import annotations

from datetime import timedelta

import polars as pl

from resources.lake import LakeResource
from stores.profiles import append_updates, profiles_view, state_for
from stores.state.refresh import fold
from tests.story import Shop, at, message, spec_message
from transforms.profiles.partials import partials
from transforms.profiles.state import ORDER_STATE, PARTIAL_SCHEMA
from transforms.schema import FOLD_APP, INGEST_LOG_SCHEMA, UPDATES_APP
from transforms.triggers.rules.base import RuleContext
from transforms.triggers.rules.lifecycle import welcome_candidates

OLD_ORDER = [f.name for f in ORDER_STATE.fields if f.name != "checkout_id"]


def as_written_before(partial: pl.DataFrame) -> pl.DataFrame:
    """`partial` in the schema of the release before the checkouts list (and the consent object, and the
    first consent's time)."""
    orders = pl.col("orders").list.eval(pl.struct([pl.element().struct.field(f) for f in OLD_ORDER]))
    old = partial.drop("checkouts", "category_consent", "category_consent_ts", "consented_at")
    return old.with_columns(orders)


def landed(shop: Shop, *messages: dict) -> pl.DataFrame:
    """The events of one more batch of `shop` (the story shop runs the real parser)."""
    shop.land(*messages)
    assert shop.events is not None
    return shop.events.filter(pl.col("batch_id") == shop.batch)


def test_a_lake_from_before_the_checkouts_list_reads_folds_and_takes_new_batches(lake: LakeResource) -> None:
    shop = Shop()
    signup = message("identify", at(-60), user="u1", email="u1@example.com", marketing_consent=True)
    order = message("Order Completed", at(-30), user="u1", cart_id="c0", order_id="o0", revenue=10.0)
    old_state = as_written_before(partials(landed(shop, signup, order)))
    lake.write_tagged("profile_state", old_state, {FOLD_APP: 1}, mode="overwrite")
    cart = message("Product Added", at(-20), user="u1", cart_id="c1", product_id="p1", price=40.0)
    old_update = as_written_before(partials(landed(shop, cart))).with_columns(batch_id=pl.lit(2, pl.Int64))
    lake.write_tagged("profile_updates", old_update, {UPDATES_APP: 2})
    assert "checkouts" not in pl.scan_delta(lake.table_uri("profile_state")).collect_schema()

    started = spec_message("Checkout Started", at(0), user="u1", order_id="o1", value=40.0)
    assert append_updates(lake, 3, partials(landed(shop, started))) == 1
    state, _ = state_for(lake, ["u1"])
    [row] = state.rows(named=True)
    assert [(c["checkout_key"], c["started_at"]) for c in row["checkouts"]] == [("o1", at(0))]
    assert [(o["order_id"], o["checkout_id"]) for o in row["orders"]] == [("o0", None)]
    assert row["consented_at"] is None  # not in the old partials: their consent trait's time stands in
    empty = pl.DataFrame()
    context = RuleContext(
        state, at(5), timedelta(0), empty, empty, empty, profiles=profiles_view(lake, at(5))
    )
    assert welcome_candidates(context).select("principal", "due_at").rows() == [("u1", at(-60))]

    lake.append("ingest_log", pl.DataFrame(schema=INGEST_LOG_SCHEMA), batch_id=3)  # batch 3 committed
    assert fold(lake, every=1) == 3
    folded = pl.scan_delta(lake.table_uri("profile_state")).collect_schema()
    assert folded == pl.Schema(PARTIAL_SCHEMA)
    profile = profiles_view(lake, at(5)).row(0, named=True)
    assert (profile["cart_id"], profile["last_checkout_at"], profile["order_count"]) == ("c1", at(0), 1)
    assert profile["marketing_consent"] is True
    assert profile["last_seen_at"] - profile["identified_at"] == timedelta(hours=1)
