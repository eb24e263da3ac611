"""Attribution, pure part: each `Order Completed` credited to at most one send of its shopper, for its
revenue net of the shopper's refunds and cancellations of it (`net_orders_of`).

The rule (PRODUCT.md section 7): the last clicked send within the window before the order (`click`),
else the last send within it (`send`). A click counts when a person made it (not flagged as a bot or a
link scanner, nor seconds after the provider accepted its send), after its send and within the window
before the order. A send counts when it reached the
shopper: the provider accepted it, or (its call timed out) a person clicked it (`delivered`).

The shopper is the person, not the id string: every row's user is the one its principal's claims end at
(`transforms.profiles.merge.principal_claims`): an anonymous id's, the user that claims it; a user an
`alias` renamed (Segment's "a User ID you previously identified them with"), the id she goes by now. So an
order placed under her new id is credited to the email her old id was sent, and the experiments count her
once (`shopper_of`).
"""

from __future__ import annotations

from datetime import timedelta

import polars as pl

from transforms.measure.tables import ATTRIBUTIONS_SCHEMA, CLICK_EVENT, CLICK_RULE, ORDER_EVENT, SEND_RULE
from transforms.principals import principal, principal_user, user_principal
from transforms.profiles.merge import principal_claims
from transforms.profiles.refunds import REFUND_EVENTS, net_orders, refund_rows
from transforms.profiles.refunds import currency_code as code_of
from transforms.profiles.revenue import order_revenue
from transforms.sends.clicks import TOO_SOON_SECONDS

ORDER_COLUMNS = ("order_event_id", "order_id", "user_id", "converted_at", "revenue", "currency")
# The events measuring reads: orders, their refunds and cancellations, clicks.
MEASURED_EVENTS = (ORDER_EVENT, *REFUND_EVENTS, CLICK_EVENT)
EVENT_COLUMNS = [
    "event_id",
    "event_name",
    "user_id",
    "anonymous_id",
    "event_ts",
    "order_id",
    "revenue",
    "total",
    "currency",
    "products",
    "properties",
    "batch_id",
]


def shopper_of(claims: pl.DataFrame, users: pl.Expr, anonymous_ids: pl.Expr | None = None) -> pl.Expr:
    """The user id each row's shopper goes by now: the row's principal (its user's, else its anonymous
    id's) followed to where its claims end (`claims`: `merge.principal_claims` of the lake's identities);
    null for an anonymous id no user claims."""
    row = user_principal(users) if anonymous_ids is None else principal(users, anonymous_ids)
    return principal_user(row.replace(claims["principal"], claims["_to"]))


def resolve_users(claims: pl.DataFrame) -> pl.Expr:
    """The shopper of each row of events (`shopper_of` its `user_id`, else its `anonymous_id`)."""
    return shopper_of(claims, pl.col("user_id"), pl.col("anonymous_id"))


def as_shoppers(rows: pl.DataFrame, claims: pl.DataFrame) -> pl.DataFrame:
    """`rows` (sends, decisions) with each `user_id` the id its shopper goes by now (`shopper_of`)."""
    return rows.with_columns(shopper_of(claims, pl.col("user_id")).alias("user_id"))


def currency_code(column: str = "currency") -> pl.Expr:
    """An ISO 4217 code as written (` eur`, `Eur`, `EUR`): stripped, upper case; blank names none."""
    return code_of(pl.col(column)).alias(column)


def orders_of(events: pl.DataFrame, identities: pl.DataFrame) -> pl.DataFrame:
    """`claimed_orders` of `events` by the shoppers `identities`' edges make."""
    return claimed_orders(events, principal_claims(identities))


def claimed_orders(events: pl.DataFrame, claims: pl.DataFrame) -> pl.DataFrame:
    """The orders of `events` by known shoppers (`resolve_users`; `claims` as `shopper_of` takes them): one
    per (shopper, order_id), its first message to land (the lowest `batch_id`, then event time and id), so a
    duplicate that lands later (another messageId), or under another id of hers, never changes the message
    that stands for the order, nor its `order_event_id` across reruns. Revenue
    is what the order states (`transforms.profiles.revenue`: `revenue`, else `total`, else `subtotal`, else
    its `products[]`' price x quantity), else 0; the currency code in upper case."""
    orders = events.filter(pl.col("event_name") == ORDER_EVENT)
    orders = orders.with_columns(resolve_users(claims).alias("user_id"), order_revenue(orders))
    orders = orders.filter(pl.col("user_id").is_not_null()).sort("batch_id", "event_ts", "event_id")
    once = pl.col("order_id").is_null() | pl.struct("user_id", "order_id").is_first_distinct()
    return orders.filter(once).select(
        pl.col("event_id").alias("order_event_id"),
        "order_id",
        "user_id",
        pl.col("event_ts").alias("converted_at"),
        pl.col("revenue").fill_null(0.0),
        currency_code(),
    )


def net_orders_of(events: pl.DataFrame, claims: pl.DataFrame) -> pl.DataFrame:
    """`claimed_orders` (`claims` as `shopper_of` takes them), each order's revenue net of its shopper's
    refunds and cancellations of its order_id, under either id of hers
    (`transforms.profiles.refunds.net_orders`: a cancellation or a refund without an amount nets it to 0,
    a partial one subtracts its amount in the order's currency, never below 0), with `ended` and
    `unnetted` (partial refunds in another currency, left out). Every run reads every order and refund
    again, so a refund landing before its order, a rerun or a message landing twice give the same."""
    refunds = refund_rows(events, "user_id", "anonymous_id")
    refunds = refunds.with_columns(resolve_users(claims).alias("user_id")).drop("anonymous_id")
    refunds = refunds.filter(pl.col("user_id").is_not_null())
    return net_orders(claimed_orders(events, claims), refunds, ["user_id"])


def clicks_of(events: pl.DataFrame, sends: pl.DataFrame) -> pl.DataFrame:
    """Counted clicks (send_id, clicked_at): `Email Link Clicked` events with a send, not flagged as bots
    by the collector, and not within TOO_SOON_SECONDS of their send's `sent_at` (`sends`, SENDS_SCHEMA).

    The collector judges "too soon" by the token, made when the email was rendered, before the provider
    call: a provider's wait or slow answer puts delivery later, and a scanner's click seconds after it
    passed. A send without `sent_at` (its call timed out) keeps the collector's judgment."""
    clicks = events.filter(pl.col("event_name") == CLICK_EVENT)
    props = pl.col("properties")
    soon = pl.lit(timedelta(seconds=TOO_SOON_SECONDS), dtype=pl.Duration("us"))
    delivered_at = sends.filter(pl.col("status") == "sent").select("send_id", pl.col("sent_at").alias("_at"))
    return (
        clicks.select(
            props.str.json_path_match("$.send_id").alias("send_id"),
            pl.col("event_ts").alias("clicked_at"),
            props.str.json_path_match("$.bot").fill_null("false").alias("_bot"),
        )
        .filter(pl.col("send_id").is_not_null() & (pl.col("_bot") != "true"))
        .join(delivered_at.unique("send_id"), on="send_id", how="left")
        .filter(pl.col("_at").is_null() | (pl.col("clicked_at") >= pl.col("_at") + soon))
        .select("send_id", "clicked_at")
    )


def delivered(sends: pl.DataFrame, clicks: pl.DataFrame) -> pl.DataFrame:
    """The sends that reached the shopper, those an order can be credited to: the ones a provider accepted
    (`sent`), and the ones whose call timed out (`unknown`) that a person then clicked (`clicks`, counted
    clicks): the click carries the send_id, so the email went. `sends` keeps saying `unknown`; here its
    `sent_at` is when its outbox row was made (else its due time), or its first click if that is earlier:
    it went between the two."""
    first = clicks.group_by("send_id").agg(pl.col("clicked_at").min().alias("_clicked"))
    accepted = (pl.col("status") == "sent") & pl.col("sent_at").is_not_null()
    proved = (pl.col("status") == "unknown") & pl.col("_clicked").is_not_null()
    made = pl.min_horizontal(pl.coalesce("created_at", "due_at"), "_clicked")
    return (
        sends.join(first, on="send_id", how="left")
        .filter(accepted | proved)
        .select(
            "send_id",
            "trigger_id",
            "user_id",
            "kind",
            "variant",
            pl.when(accepted).then(pl.col("sent_at")).otherwise(made).alias("sent_at"),
        )
    )


def attribute(
    orders: pl.DataFrame, sends: pl.DataFrame, clicks: pl.DataFrame, window: timedelta
) -> pl.DataFrame:
    """One ATTRIBUTIONS_SCHEMA row per credited order of `orders` (ORDER_COLUMNS), sorted by its id.

    `sends` are delivered sends (`delivered`), `clicks` counted clicks (`clicks_of`).
    """
    span = pl.lit(window, dtype=pl.Duration("us"))
    candidates = orders.join(sends, on="user_id", how="inner").filter(
        (pl.col("sent_at") <= pl.col("converted_at")) & (pl.col("sent_at") >= pl.col("converted_at") - span)
    )
    clicked = (
        candidates.select("order_event_id", "send_id", "sent_at", "converted_at")
        .join(clicks, on="send_id", how="inner")
        .filter(
            (pl.col("clicked_at") >= pl.col("sent_at"))
            & (pl.col("clicked_at") <= pl.col("converted_at"))
            & (pl.col("clicked_at") >= pl.col("converted_at") - span)
        )
        .group_by("order_event_id", "send_id")
        .agg(pl.col("clicked_at").max())
    )
    ranked = candidates.join(clicked, on=["order_event_id", "send_id"], how="left").sort(
        ["order_event_id", "clicked_at", "sent_at", "send_id"],
        descending=[False, True, True, False],
        nulls_last=True,
    )
    credited = ranked.unique("order_event_id", keep="first", maintain_order=True)
    rule = pl.when(pl.col("clicked_at").is_not_null()).then(pl.lit(CLICK_RULE)).otherwise(pl.lit(SEND_RULE))
    return credited.with_columns(rule.alias("rule")).select(
        [pl.col(c).cast(t) for c, t in ATTRIBUTIONS_SCHEMA.items()]
    )


def changed_rows(new: pl.DataFrame, existing: pl.DataFrame) -> pl.DataFrame:
    """Rows of `new` that `existing` does not hold as they are: what a rerun has to merge (none when
    nothing changed, so a rerun commits nothing new)."""
    columns = list(ATTRIBUTIONS_SCHEMA)
    return new.join(existing.select(columns), on=columns, how="anti", nulls_equal=True)
