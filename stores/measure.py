"""What the emails earn, per stage: read orders, clicks, sends and decisions -> attribute / measure ->
write `attributions` (merged on the order's event id: once per order, across reruns; each run's credits
are the whole table, so a credit no longer earned is withdrawn) and `experiments` (rewritten whole: per
kind, arm and exposure day)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl

from resources.lake import LakeResource
from stores.ingest_tables import set_up_tables
from transforms.measure.attribution import (
    EVENT_COLUMNS,
    MEASURED_EVENTS,
    as_shoppers,
    attribute,
    changed_rows,
    clicks_of,
    delivered,
    net_orders_of,
)
from transforms.measure.experiments import assignments, daily_sums, outcomes, pooled, summarize
from transforms.measure.tables import ATTRIBUTIONS_SCHEMA
from transforms.profiles.merge import principal_claims
from transforms.schema import EVENTS_SCHEMA, IDENTITIES_SCHEMA, SENDS_SCHEMA, TRIGGERS_SCHEMA

ATTRIBUTIONS, EXPERIMENTS = "attributions", "experiments"


@dataclass(frozen=True)
class Inputs:
    """What both measurements read: orders (revenue net of refunds), counted clicks, delivered sends, each
    under the user id its shopper goes by now, and the identities' claims that say it (`claims`: a
    renamed user's decisions are hers too)."""

    orders: pl.DataFrame
    clicks: pl.DataFrame
    sends: pl.DataFrame
    claims: pl.DataFrame


def read_inputs(lake: LakeResource) -> Inputs:
    events = (
        lake.scan("events", EVENTS_SCHEMA)
        .filter(pl.col("event_name").is_in(MEASURED_EVENTS))
        .select(EVENT_COLUMNS)
        .collect()
    )
    claims = principal_claims(lake.read("identities", IDENTITIES_SCHEMA))
    sends = lake.read("sends", SENDS_SCHEMA)
    clicks = clicks_of(events, sends)
    sends = as_shoppers(delivered(sends, clicks), claims)
    return Inputs(net_orders_of(events, claims), clicks, sends, claims)


@dataclass(frozen=True)
class AttributionReport:
    orders: int  # orders by known shoppers
    credited: int  # of them credited to a send
    merged: int  # rows this run wrote (new or changed credits)
    withdrawn: int  # credits this run removed (no longer earned: a re-stitched order, a shorter window)
    by_rule: dict[str, int]
    revenue: dict[str, float]  # credited revenue per currency (`none`: orders that name none); never added
    refunded: int = 0  # orders ended by a cancellation or a full refund (revenue 0)
    unnetted: int = 0  # partial refunds left out: in another currency than their order's


def set_up(lake: LakeResource) -> None:
    """`attributions` and `experiments` in place before they are written: when one is missing, the ingest's
    own set-up makes it, under the ingest lock, as every creator of these tables holds (a moment, once per
    lake). Once they are there, only the measurement writes them (and work that holds every lock), so it
    holds its own lock alone (`LakeResource.measure_lock`), never a lane's."""
    if lake.table(ATTRIBUTIONS) is None or lake.table(EXPERIMENTS) is None:
        with lake.ingest_lock():
            set_up_tables(lake)


def run_attribution(lake: LakeResource, window: timedelta, inputs: Inputs | None = None) -> AttributionReport:
    """Credit every order to at most one send, and make `attributions` hold exactly those credits: what
    changed is merged, and a credit no longer earned deleted, in one commit (none when nothing changed).

    Every order and send is read again each run, so its credits are the whole truth of the table."""
    inputs = inputs or read_inputs(lake)
    credited = attribute(inputs.orders, inputs.sends, inputs.clicks, window)
    set_up(lake)
    existing = lake.read(ATTRIBUTIONS, ATTRIBUTIONS_SCHEMA)
    changed = changed_rows(credited, existing)
    withdrawn = existing.join(credited, on="order_event_id", how="anti").height
    if changed.height or withdrawn or lake.table(ATTRIBUTIONS) is None:
        lake.upsert(ATTRIBUTIONS, credited, key="order_event_id", whole=True)
    rules = credited.group_by("rule").len()
    money = credited.group_by(pl.col("currency").fill_null("none")).agg(pl.col("revenue").sum())
    return AttributionReport(
        orders=inputs.orders.height,
        credited=credited.height,
        merged=changed.height,
        withdrawn=withdrawn,
        by_rule=dict(zip(rules["rule"], rules["len"], strict=True)),
        revenue={c: float(r) for c, r in sorted(money.iter_rows())},
        refunded=int(inputs.orders["ended"].is_not_null().sum()),
        unnetted=int(inputs.orders["unnetted"].sum()),
    )


def experiment_sums(
    lake: LakeResource, window: timedelta, inputs: Inputs, since: datetime | None = None
) -> pl.DataFrame:
    """Per (kind, arm, exposure day): the sums of what the assigned shoppers did (from `since` on); a
    shopper is assigned once per kind, whichever of her ids a decision named."""
    columns = ["trigger_id", "kind", "user_id", "decision", "variant", "decided_at"]
    assigned = assignments(as_shoppers(lake.read("triggers", TRIGGERS_SCHEMA, columns), inputs.claims))
    if since is not None:
        assigned = assigned.filter(pl.col("exposed_at") >= since)
    return daily_sums(outcomes(assigned, inputs.orders, inputs.clicks, inputs.sends, window))


def run_experiments(
    lake: LakeResource, window: timedelta, now: datetime, inputs: Inputs | None = None
) -> pl.DataFrame:
    """Rewrite `experiments` (per kind, arm, exposure day); returns the figures pooled over every day."""
    sums = experiment_sums(lake, window, inputs or read_inputs(lake))
    set_up(lake)
    lake.write(EXPERIMENTS, summarize(sums, now), mode="overwrite")
    return summarize(pooled(sums), now)


def measure_now(
    lake: LakeResource, window: timedelta, now: datetime, since: datetime | None = None
) -> pl.DataFrame:
    """The pooled figures as the lake stands now (exposed from `since` on), nothing written."""
    return summarize(pooled(experiment_sums(lake, window, read_inputs(lake), since)), now)


PLOT_FILE = "_reports/experiments.png"


def write_plot(lake: LakeResource, png: bytes) -> Path | None:
    """The experiments' picture next to a local lake (an object-store lake keeps none); its path."""
    if lake.root is None:
        return None
    path = lake.root / PLOT_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name("." + path.name + ".tmp")
    temporary.write_bytes(png)
    temporary.replace(path)  # a reader never sees half a picture
    return path
