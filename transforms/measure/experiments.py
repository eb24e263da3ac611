"""Experiments, pure part: per trigger kind and arm (each variant, and the holdout), what the shoppers
assigned to it did within the window after they were assigned, and the uplift against the holdout.

A shopper is assigned to a kind's arm at their first decision of that kind that passed consent and
suppressions: `holdout` for the global holdout, else their variant (`send`, and also `cooldown` and
`capped`, which a holdout shopper would have reached too: intention to treat, so both arms are the
same population). A shopper is the person, not the id: the caller gives decisions, orders and sends under
the user id the shopper goes by now (`attribution.as_shoppers`), so a renamed user is assigned once.
Each arm is measured from that moment on, over the same window, so the uplift is causal, not
last-touch: the emails of the kind delivered to its shoppers (`sent`; none in the holdout),
who clicked, who ordered and what they spent, net of refunds (`attribution.net_orders_of`: a cancelled or
fully refunded order is still a conversion, for 0). Amounts in different currencies are never added:
revenue is in the shop's currency (`shop_currency`); an order in another is a conversion, counted and
named (`other_currency_orders`, the note), not revenue; a partial refund in another currency than its
order's is left out of it, and counted in the note.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import polars as pl

from transforms.measure.stats import (
    mean_difference,
    mean_interval,
    minimum_detectable_effect,
    order_value,
    rate_difference,
    two_proportion_p,
    wilson,
)
from transforms.measure.tables import EXPERIMENTS_SCHEMA, HOLDOUT

ASSIGNED = ("send", "holdout", "cooldown", "capped")  # past consent and suppressions: the experiment
MIN_ARM = 30  # below this many shoppers an arm's figures are anecdotes
MDE_NOTE = 0.05  # an arm that cannot detect an uplift of 5 points says so
SUMS = (
    "exposed",
    "sent",
    "clicked",
    "converted",
    "revenue",
    "revenue_sq",
    "other_currency_orders",
    "unnetted_refunds",
)


def assignments(triggers: pl.DataFrame) -> pl.DataFrame:
    """(kind, user_id, arm, exposed_at): each shopper's first assignment per kind (see the module)."""
    first = (
        triggers.filter(pl.col("decision").is_in(ASSIGNED) & pl.col("user_id").is_not_null())
        .sort("decided_at", "trigger_id")
        .unique(["kind", "user_id"], keep="first", maintain_order=True)
    )
    arm = (
        pl.when(pl.col("decision") == HOLDOUT)
        .then(pl.lit(HOLDOUT))
        .otherwise(pl.col("variant").fill_null("a"))
    )
    return first.select("kind", "user_id", arm.alias("arm"), pl.col("decided_at").alias("exposed_at"))


def shop_currency(orders: pl.DataFrame) -> str | None:
    """The currency most of `orders` name (ties: the first by name); None when none names one."""
    named = orders.drop_nulls("currency").group_by("currency").len()
    named = named.sort(["len", "currency"], descending=[True, False])
    return named["currency"][0] if named.height else None


def _bought(assigned: pl.DataFrame, orders: pl.DataFrame, within: pl.Expr) -> pl.DataFrame:
    """Per (kind, user): orders within the window, revenue in the shop's currency, the others."""
    currency = shop_currency(orders)
    own = pl.col("currency").is_null()
    own = own if currency is None else own | (pl.col("currency") == currency)
    unnetted = pl.col("unnetted") if "unnetted" in orders.columns else pl.lit(0, dtype=pl.Int64)
    return (
        assigned.join(
            orders.select("user_id", "converted_at", "revenue", "currency", unnetted.alias("unnetted")),
            on="user_id",
        )
        .rename({"converted_at": "at"})
        .filter(within)
        .group_by("kind", "user_id")
        .agg(
            pl.len().alias("orders"),
            pl.col("revenue").filter(own).sum().alias("spent"),
            (~own).sum().cast(pl.Int64).alias("other_currency_orders"),
            pl.col("currency").filter(~own).alias("other_currencies"),
            pl.col("unnetted").filter(own).sum().cast(pl.Int64).alias("unnetted_refunds"),
        )
    )


def outcomes(
    assigned: pl.DataFrame,
    orders: pl.DataFrame,
    clicks: pl.DataFrame,
    sends: pl.DataFrame,
    window: timedelta,
) -> pl.DataFrame:
    """`assigned` with `sent`, `clicked`, `converted` and `revenue` of each shopper within the window.

    `orders` as `attribution.orders_of` (all the shop's: they say its currency), `clicks` as
    `attribution.clicks_of`, `sends` delivered sends (`attribution.delivered`): `sent` counts those of the
    shopper's kind sent within the window. `revenue` is in `currency` only, net of refunds (`orders` from
    `attribution.net_orders_of`); `other_currency_orders` (and `other_currencies`, their codes) the
    shopper's orders in others, `unnetted_refunds` their orders' partial refunds left out (a currency
    other than the order's).
    """
    span = pl.lit(window, dtype=pl.Duration("us"))
    within = (pl.col("at") >= pl.col("exposed_at")) & (pl.col("at") <= pl.col("exposed_at") + span)
    bought = _bought(assigned, orders, within)
    mailed = (
        assigned.join(sends.select("user_id", "kind", pl.col("sent_at").alias("at")), on=["kind", "user_id"])
        .filter(within)
        .group_by("kind", "user_id")
        .agg(pl.len().cast(pl.Int64).alias("sent"))
    )
    by_send = clicks.join(sends.select("send_id", "user_id", "kind"), on="send_id")
    clicked = (
        assigned.join(by_send.rename({"clicked_at": "at"}), on=["kind", "user_id"])
        .filter(within)
        .select("kind", "user_id")
        .unique()
        .with_columns(pl.lit(True).alias("clicked"))
    )
    return (
        assigned.join(bought, on=["kind", "user_id"], how="left")
        .join(mailed, on=["kind", "user_id"], how="left")
        .join(clicked, on=["kind", "user_id"], how="left")
        .with_columns(
            pl.col("sent").fill_null(0),
            pl.col("clicked").fill_null(False),
            (pl.col("orders").fill_null(0) > 0).alias("converted"),
            pl.col("spent").fill_null(0.0).alias("revenue"),
            pl.col("other_currency_orders").fill_null(0),
            pl.col("unnetted_refunds").fill_null(0),
            pl.lit(shop_currency(orders), pl.String).alias("currency"),
        )
        .drop("orders", "spent")
    )


def daily_sums(outcome: pl.DataFrame) -> pl.DataFrame:
    """Per (kind, arm, exposure day): the sums SUMS, from which any range of days pools again."""
    return (
        outcome.group_by("kind", "arm", pl.col("exposed_at").dt.date().alias("day"))
        .agg(
            pl.len().cast(pl.Int64).alias("exposed"),
            pl.col("sent").sum().cast(pl.Int64),
            pl.col("clicked").sum().cast(pl.Int64),
            pl.col("converted").sum().cast(pl.Int64),
            pl.col("revenue").sum().cast(pl.Float64),
            (pl.col("revenue") ** 2).sum().cast(pl.Float64).alias("revenue_sq"),
            pl.col("other_currency_orders").sum().cast(pl.Int64),
            pl.col("unnetted_refunds").sum().cast(pl.Int64),
            pl.col("currency").first(),
            _named(pl.col("other_currencies")),
        )
        .sort("kind", "day", "arm")
    )


def _named(codes: pl.Expr) -> pl.Expr:
    """The distinct currency codes of a group's lists, sorted."""
    return (
        codes.list.explode(keep_nulls=False, empty_as_null=False)
        .unique()
        .sort()
        .implode()
        .alias("other_currencies")
    )


def pooled(sums: pl.DataFrame) -> pl.DataFrame:
    """`sums` over all their days: one row per (kind, arm), `day` null."""
    return (
        sums.group_by("kind", "arm")
        .agg(*(pl.col(c).sum() for c in SUMS), pl.col("currency").first(), _named(pl.col("other_currencies")))
        .with_columns(pl.lit(None, dtype=pl.Date).alias("day"))
        .sort("kind", "arm")
    )


def _currency_note(row: dict[str, Any]) -> str | None:
    count = row.get("other_currency_orders") or 0
    if not count:
        return None
    codes = ", ".join(row.get("other_currencies") or [])
    orders = "1 order" if count == 1 else f"{count} orders"
    return f"{orders} in {codes}: conversions, not in revenue ({row['currency']})"


def _refund_note(row: dict[str, Any]) -> str | None:
    count = row.get("unnetted_refunds") or 0
    if not count:
        return None
    refunds = "1 partial refund" if count == 1 else f"{count} partial refunds"
    return f"{refunds} in another currency than the order's: not taken off revenue"


def _note(row: dict[str, Any], control: dict[str, Any] | None, mde: float | None) -> str | None:
    found = (_size_note(row, control, mde), _currency_note(row), _refund_note(row))
    return "; ".join(n for n in found if n) or None


def _size_note(row: dict[str, Any], control: dict[str, Any] | None, mde: float | None) -> str | None:
    if row["arm"] == HOLDOUT:
        return None if row["exposed"] >= MIN_ARM else f"holdout too small ({row['exposed']} shoppers)"
    if control is None:
        return "no holdout shoppers yet: no uplift"
    small = min(row["exposed"], control["exposed"]) < MIN_ARM
    if small or (mde is not None and mde > MDE_NOTE):
        sizes = f"with {row['exposed']} shoppers here and {control['exposed']} in the holdout"
        if mde is None or mde >= 1:
            return f"too small to tell: {sizes} no uplift would show"
        shown = f"only an uplift of about ±{mde * 100:.1f} points would show (80 % power)"
        return f"too small to tell: {sizes} {shown}"
    return None


def _figures(row: dict[str, Any], control: dict[str, Any] | None, value: float | None) -> dict[str, Any]:
    n, x = row["exposed"], row["converted"]
    low, high = wilson(x, n)
    click_low, click_high = wilson(row["clicked"], n)
    mean, mean_low, mean_high = mean_interval(row["revenue"], row["revenue_sq"], n, value)
    out: dict[str, Any] = {
        "click_rate": row["clicked"] / n if n else None,
        "click_low": click_low,
        "click_high": click_high,
        "conversion_rate": x / n if n else None,
        "conversion_low": low,
        "conversion_high": high,
        "revenue_per_shopper": mean,
        "revenue_low": mean_low,
        "revenue_high": mean_high,
    }
    mde = None
    if control is not None and row["arm"] != HOLDOUT:
        n0, x0 = control["exposed"], control["converted"]
        uplift, u_low, u_high = rate_difference(x, n, x0, n0)
        money = mean_difference(
            row["revenue"], row["revenue_sq"], n, control["revenue"], control["revenue_sq"], n0, value
        )
        mde = minimum_detectable_effect(x, n, x0, n0)
        out |= {"uplift": uplift, "uplift_low": u_low, "uplift_high": u_high}
        out |= {"p_value": two_proportion_p(x, n, x0, n0), "mde": mde}
        out |= dict(zip(("revenue_uplift", "revenue_uplift_low", "revenue_uplift_high"), money, strict=True))
    out["note"] = _note(row, control, mde)
    return out


def _order_values(rows: list[dict[str, Any]]) -> dict[tuple[Any, Any], float | None]:
    """Per (kind, day): `order_value` over all its arms, the scale of an arm's interval when nobody in it
    spent anything."""
    sums: dict[tuple[Any, Any], tuple[float, float]] = {}
    for r in rows:
        total, squares = sums.get((r["kind"], r["day"]), (0.0, 0.0))
        sums[(r["kind"], r["day"])] = (total + r["revenue"], squares + r["revenue_sq"])
    return {key: order_value(*both) for key, both in sums.items()}


def summarize(sums: pl.DataFrame, computed_at: datetime | None) -> pl.DataFrame:
    """EXPERIMENTS_SCHEMA rows of `sums` (daily or pooled): each arm against its kind and day's holdout."""
    rows = sums.to_dicts()
    controls = {(r["kind"], r["day"]): r for r in rows if r["arm"] == HOLDOUT}
    values = _order_values(rows)
    out = []
    for r in rows:
        key = (r["kind"], r["day"])
        out.append({**r, **_figures(r, controls.get(key), values.get(key)), "computed_at": computed_at})
    out = [{c: r.get(c) for c in EXPERIMENTS_SCHEMA} for r in out]  # the codes are in the note
    frame = pl.DataFrame(out, schema=EXPERIMENTS_SCHEMA) if out else pl.DataFrame(schema=EXPERIMENTS_SCHEMA)
    return frame.sort("kind", "day", "arm", nulls_last=True)
