"""The tables of what the emails earn: `attributions` (one credited send per order) and `experiments`
(per trigger kind, arm and exposure day: what each arm did and its uplift against the holdout)."""

from __future__ import annotations

import polars as pl

from transforms.schema import UTC_TS

CLICK_EVENT = "Email Link Clicked"
ORDER_EVENT = "Order Completed"
HOLDOUT = "holdout"  # the experiments' control arm (the triggers' `holdout` decisions)
CLICK_RULE, SEND_RULE = "click", "send"

# key: order_event_id, the event id of the order's first message to land (`attribution.orders_of`): a Delta
# merge on it, each run's credits the whole table, so an order is credited at most once, across reruns
ATTRIBUTIONS_SCHEMA: dict[str, pl.DataType] = {
    "order_event_id": pl.String(),
    "order_id": pl.String(),
    "send_id": pl.String(),
    "trigger_id": pl.String(),
    "kind": pl.String(),
    "variant": pl.String(),
    "user_id": pl.String(),
    "rule": pl.String(),  # click: the last clicked send in the window; send: else the last send in it
    "revenue": pl.Float64(),
    "currency": pl.String(),
    "sent_at": UTC_TS,  # when the provider accepted it; a clicked `unknown` send: when it was made
    "clicked_at": UTC_TS,  # the credited click (rule click), else null
    "converted_at": UTC_TS,
}

# key: kind, arm, day (rewritten whole by each run). `day` is the exposure day of the arm's shoppers
# (their first assignment to the kind); the sums let any range of days be pooled again (`lakemail report`).
EXPERIMENTS_SCHEMA: dict[str, pl.DataType] = {
    "kind": pl.String(),
    "arm": pl.String(),  # a variant (a, b) or `holdout`
    "day": pl.Date(),
    "exposed": pl.Int64(),  # shoppers assigned to the arm that day
    "sent": pl.Int64(),  # emails of the kind delivered to them within the window (0 for the holdout)
    "clicked": pl.Int64(),  # of them, with a counted (not bot) click within the window
    "converted": pl.Int64(),  # of them, with an order within the window
    "revenue": pl.Float64(),  # their orders' revenue within the window, in `currency` only
    "currency": pl.String(),  # the shop's: the one most orders name (one naming none is taken to be in it)
    "other_currency_orders": pl.Int64(),  # their orders in other currencies: in `converted`, not in revenue
    "revenue_sq": pl.Float64(),  # sum over shoppers of (revenue per shopper)^2, for the interval
    "click_rate": pl.Float64(),  # clicked / exposed
    "click_low": pl.Float64(),  # 95 % Wilson interval
    "click_high": pl.Float64(),
    "conversion_rate": pl.Float64(),
    "conversion_low": pl.Float64(),  # 95 % Wilson interval
    "conversion_high": pl.Float64(),
    "revenue_per_shopper": pl.Float64(),
    "revenue_low": pl.Float64(),  # 95 %: Student's t, or Wilson's x an order value (stats.mean_interval)
    "revenue_high": pl.Float64(),  # both null for one shopper, or nobody in the kind spent anything
    "uplift": pl.Float64(),  # conversion rate minus the holdout's (null for the holdout itself)
    "uplift_low": pl.Float64(),  # 95 % Newcombe interval of the difference
    "uplift_high": pl.Float64(),
    "p_value": pl.Float64(),  # two-proportion z-test against the holdout
    "revenue_uplift": pl.Float64(),  # revenue per shopper minus the holdout's
    "revenue_uplift_low": pl.Float64(),  # 95 %: Welch's t, or MOVER (stats.mean_difference); null: none
    "revenue_uplift_high": pl.Float64(),
    "mde": pl.Float64(),  # the smallest uplift of the conversion rate this arm can detect (80 % power)
    "note": pl.String(),
    "computed_at": UTC_TS,
}
