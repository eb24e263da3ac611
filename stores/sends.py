"""The send stage's I/O, shaped like the trigger engine: read the world once, plan each due row (pure,
`transforms.sends.plan`), make the calls (`stores.sends_delivery`), write every new status in one MERGE.

`sends` holds one row per send_id (Delta MERGE on that id). Exactly once:
1. `enqueue` commits the `pending` rows of new `send` decisions before any HTTP call, with the last
   trigger evaluation it took as a Delta application transaction (a retried run takes none twice).
2. Right before a row's HTTP call, an attempt marker is made durable; it is removed once the row's
   new status is committed. A row found `pending` with a marker was interrupted after (perhaps
   during) its call: it is looked up at the provider when the provider can say (the sandbox can),
   else it becomes `unknown` and is never resent blindly. A row without a marker never reached it.
3. `unknown` rows (an ambiguous timeout) are only settled by asking a provider that can answer, or sent
   again with the same idempotency key to one that dedupes on it (the webhook), a bounded number of times.

One clock: `now` is the run's (from the run config, else the wall clock when the run started). Rows
are enqueued, found due and given their next attempt at `now`; `offset` (the run's clock minus the
wall clock) only places the wall-clock facts of landing and of the provider's answer on that timeline.
"""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import datetime, timedelta
from functools import partial

import polars as pl

from resources.lake import LakeResource
from resources.landing import LandingResource
from resources.state import StateResource
from stores.decide import reads
from stores.ingest import reflected_as_of
from stores.sends_delivery import AttemptMarkers, Delivery, Sender, SendsReport
from transforms.principals import of_user, user_principal
from transforms.profiles.derive import derive
from transforms.profiles.merge import renamed_to
from transforms.profiles.partials import principal
from transforms.profiles.state import ADDED_EVENTS
from transforms.schema import EVENTS_SCHEMA, RUN_APP, SENDS_APP, SENDS_SCHEMA, TRIGGERS_SCHEMA
from transforms.sends.catalog import Catalog, bestseller_ranking
from transforms.sends.plan import (
    Planned,
    SendWorld,
    abort_reasons,
    decided_row,
    plan_sends,
    wants_bestsellers,
)
from transforms.sends.rows import WAITING, held_since, outbox_rows, rate_limit_holds
from transforms.triggers.exits import exit_reasons_now
from transforms.triggers.store_changes import DECIDED_SCHEMA

BESTSELLER_WINDOW = timedelta(days=7)
BESTSELLERS_KEPT = timedelta(minutes=5)  # a process reads the week's ranking again at most this often
_KEPT: dict[str, tuple[datetime, list[str]]] = {}  # events table -> (the run clock it was read at, ranking)
_KEPT_LOCK = threading.Lock()


def run_sends(
    lake: LakeResource,
    state: StateResource,
    landing: LandingResource,
    sender: Sender,
    *,
    now: datetime,
    offset: timedelta = timedelta(0),
) -> SendsReport:
    """Enqueue new `send` decisions, then deliver every row due at `now` (under the writer lock)."""
    enqueued = enqueue(lake, provider=sender.provider.name, now=now)
    report = deliver_due(lake, state, landing, sender, now=now, offset=offset)
    report.enqueued = enqueued
    return report


def enqueue(lake: LakeResource, *, provider: str, now: datetime) -> int:
    """Commit `pending` rows for the `send` decisions of evaluations not taken yet; returns how many."""
    done = lake.app_version("sends", SENDS_APP)
    latest = lake.app_version("triggers", RUN_APP)
    if latest <= done and lake.version("sends") is not None:
        return 0
    taken = (pl.col("evaluation") > done) & (pl.col("evaluation") <= latest) & (pl.col("decision") == "send")
    decisions = lake.collect("triggers", TRIGGERS_SCHEMA, lambda rows: rows.filter(taken))
    rows = outbox_rows(decisions, _landed(lake, decisions), provider=provider, now=now)
    held = ("created_at", held_since(rows))  # the files of older rows are not read
    lake.upsert("sends", rows, key="send_id", tags={SENDS_APP: latest}, insert_only=True, held_since=held)
    return rows.height


def _landed(lake: LakeResource, decisions: pl.DataFrame) -> pl.DataFrame:
    """principal, event_ts, landed_at of the decisions' first events (partition and stats pruning)."""
    if decisions.height == 0:
        return pl.DataFrame(
            schema={"principal": pl.String, "event_ts": EVENTS_SCHEMA["event_ts"]}
        ).with_columns(pl.lit(None, EVENTS_SCHEMA["landed_at"]).alias("landed_at"))
    times = decisions["first_event_at"].drop_nulls().unique()
    dates = times.dt.date().unique().to_list()
    at = pl.col("event_date").is_in(dates) & pl.col("event_ts").is_in(times.implode())
    firsts = (principal().alias("principal"), "event_ts", "landed_at")
    return lake.collect("events", EVENTS_SCHEMA, lambda rows: rows.filter(at).select(firsts))


def next_attempt(lake: LakeResource, *, lookups: bool = True) -> datetime | None:
    """When the outbox next has work: the earliest waiting (or, with `lookups`, unknown: to be looked up
    or sent again) row."""
    statuses = [*WAITING, "unknown"] if lookups else list(WAITING)
    waiting = pl.col("status").is_in(statuses) & pl.col("next_attempt_at").is_not_null()
    first = pl.col("next_attempt_at").min()
    found = lake.collect("sends", SENDS_SCHEMA, lambda rows: rows.filter(waiting).select(first)).item()
    return found if isinstance(found, datetime) else None


def open_rows(lake: LakeResource) -> pl.DataFrame:
    """The outbox rows still to be tried (waiting or `unknown`): one scan of `sends` a run, for its due
    rows and the rate-limit window both (#17)."""
    still = pl.col("status").is_in([*WAITING, "unknown"])
    return lake.collect("sends", SENDS_SCHEMA, lambda rows: rows.filter(still))


def due_rows(rows: pl.DataFrame, now: datetime, *, lookups: bool) -> pl.DataFrame:
    """The `open_rows` due at `now`, oldest first (`unknown` ones too when the provider can be asked about
    them or dedupes them when they are sent again)."""
    statuses = [*WAITING, "unknown"] if lookups else list(WAITING)
    due = pl.col("status").is_in(statuses) & (pl.col("next_attempt_at") <= now)
    return rows.filter(due).sort("created_at", "send_id")


def rate_limit_window(rows: pl.DataFrame, now: datetime) -> datetime | None:
    """The end of the provider's rate-limit window an earlier run heard, when it is still open at `now`
    (None: calls may go): the latest `next_attempt_at` of the `open_rows` it holds."""
    found = rows.filter(rate_limit_holds() & (pl.col("next_attempt_at") > now))["next_attempt_at"].max()
    return found if isinstance(found, datetime) else None


def deliver_due(
    lake: LakeResource,
    state: StateResource,
    landing: LandingResource,
    sender: Sender,
    *,
    now: datetime,
    offset: timedelta = timedelta(0),
) -> SendsReport:
    """Read the world once, plan every due row, make the calls, commit all new statuses as one MERGE."""
    report = SendsReport()
    still = open_rows(lake)
    rows = due_rows(still, now, lookups=sender.can_lookup or sender.resends)
    if rows.height == 0:
        return report
    markers = AttemptMarkers.for_lake(lake)
    world = read_world(lake, (state, landing), rows, markers, secret=sender.secret, now=now, offset=offset)
    world = replace(world, policy=sender.policy)
    planned = _plan(lake, rows, world, sender, now)
    delivery = Delivery(sender, markers, now, offset, report, window=rate_limit_window(still, now))
    delivery.changed += [
        decided_row(p, now=now, waits=sender.row_waits) for p in planned if not p.calls_provider
    ]
    try:
        delivery.run([p for p in planned if p.calls_provider])
        report.rate_limited_until = delivery.paused_until()
    finally:  # whatever happened, what was sent is committed (the addresses refused land first)
        try:
            land_refusals(landing, delivery.refusals, sender.wall_clock())
        finally:
            write_statuses(lake, markers, delivery.changed, report)
    return report


def land_refusals(landing: LandingResource, events: list[dict], at: datetime) -> None:
    """Land the run's `Email Bounced` events (addresses the provider refused) as one file, before the
    statuses: the next ingest suppresses the addresses. A crash between the two leaves the rows
    `unknown` (their markers), the events landed; landed again, the ingest drops them (fixed messageIds)."""
    if events:
        landing.land_messages("sends-refused", events, at)


def _plan(
    lake: LakeResource, rows: pl.DataFrame, world: SendWorld, sender: Sender, now: datetime
) -> list[Planned]:
    """Every due row's step; the events are read for bestsellers only when an email falls back to them."""
    plan = partial(
        plan_sends,
        now=now,
        shop=sender.shop,
        staleness=sender.staleness,
        can_lookup=sender.can_lookup,
        resends=sender.resends,
    )
    planned = plan(rows.iter_rows(named=True), world)
    if not any(wants_bestsellers(p) for p in planned):
        return planned
    world = replace(world, bestsellers=kept_bestsellers(lake, now))
    return [plan([p.row], world)[0] if wants_bestsellers(p) else p for p in planned]


def read_world(
    lake: LakeResource,
    stores: tuple[StateResource, LandingResource],
    rows: pl.DataFrame,
    markers: AttemptMarkers,
    *,
    secret: str,
    now: datetime,
    offset: timedelta,
) -> SendWorld:
    """The facts the due rows are checked against, as they stand at `now`: the shoppers' state, customers,
    suppressions and the catalog from one snapshot of the state store, their decisions from the log.
    The profiles are as of the moment that snapshot reflects every landed line up to (a stalled ingest
    makes them stale, and their emails generic)."""
    users = sorted(set(rows["user_id"].drop_nulls()))
    state, landing = stores
    with state.reader() as reader:
        runs = reads.rows_of(reader, "decided_triggers", rows["trigger_id"], DECIDED_SCHEMA)
        state_rows, links = reads.profile_state(reader, map(of_user, users))
        as_of = reflected_as_of(landing, reader, now, offset)
        profiles = derive(state_rows, reads.customers(reader, users, links), as_of)
        catalog = reads.catalog(reader, None)
        suppressed = reads.suppressed_users(reader, profiles, secret)
    decided = decided_rows(lake, rows["trigger_id"], runs)
    # Re-checked right before sending: the rule's exit condition, suppressions, consent; a user an alias
    # renamed since the decision by the id they go by now (their state, profile and address are its).
    now_named = renamed_to(links)
    current = decided.with_columns(pl.col("user_id").replace(now_named))
    candidates = current.with_columns(user_principal(pl.col("user_id")).alias("principal"))
    exits = exit_reasons_now(candidates, state=state_rows, catalog=catalog, now=now).to_list()
    by_user = {p["user_id"]: p for p in profiles.iter_rows(named=True)}
    by_user |= {old: by_user[new] for old, new in now_named.items() if new in by_user}
    return SendWorld(
        triggers={t["trigger_id"]: t for t in decided.iter_rows(named=True)},
        profiles=by_user,
        aborts=abort_reasons(current, exits, suppressed, by_user),
        catalog=Catalog.of(catalog),
        marked=frozenset(s for s in rows["send_id"] if markers.marked(s)),
    )


def decided_rows(lake: LakeResource, trigger_ids: pl.Series, runs: pl.DataFrame) -> pl.DataFrame:
    """The `send` rows of `trigger_ids` from the log, read from the engine runs that decided them (the
    store's `decided_triggers`: file skipping on `evaluation`); ids the store lacks: the whole log."""
    ids = trigger_ids.unique().to_list()
    known = runs.filter(pl.col("decision") == "send")
    where = pl.col("evaluation").is_in(known["evaluation"].unique().implode())
    if set(known["trigger_id"]) != set(ids):
        where = pl.lit(True)
    sent = where & pl.col("trigger_id").is_in(ids) & (pl.col("decision") == "send")
    return lake.collect(
        "triggers", TRIGGERS_SCHEMA, lambda rows: rows.filter(sent).unique("trigger_id", keep="first")
    )


def kept_bestsellers(lake: LakeResource, now: datetime) -> list[str]:
    """`read_bestsellers` as a run of this process read it at most BESTSELLERS_KEPT before `now` (by the
    runs' clock), else read now: a lane's runs scanned a week of `events` each time an email fell back to
    bestsellers (45 ms a run with 1M events in the week, a minute with the 600M a week of 1,000 events/s
    makes; the profile API keeps them 300 s likewise). A week's ranking moves little in five minutes."""
    key = lake.table_uri("events")
    with _KEPT_LOCK:
        kept = _KEPT.get(key)
    if kept is not None and kept[0] <= now < kept[0] + BESTSELLERS_KEPT:
        return kept[1]
    ranking = read_bestsellers(lake, now)
    with _KEPT_LOCK:
        _KEPT[key] = (now, ranking)
    return ranking


def read_bestsellers(lake: LakeResource, now: datetime) -> list[str]:
    """Product ids most shoppers added to a cart in the week before `now`."""
    since = (now - BESTSELLER_WINDOW).date()
    recent = (pl.col("event_date") >= since) & pl.col("event_name").is_in(ADDED_EVENTS)
    columns = (principal().alias("principal"), "product_id")
    added = lake.collect("events", EVENTS_SCHEMA, lambda rows: rows.filter(recent).select(columns))
    return bestseller_ranking(added)


def write_statuses(
    lake: LakeResource, markers: AttemptMarkers, changed: list[dict], report: SendsReport
) -> None:
    """Every changed row in one MERGE on send_id (a row's `created_at` never changes: the files of older
    rows are not read); then their attempt markers go."""
    if not changed:
        return
    frame = pl.DataFrame(changed, schema=SENDS_SCHEMA)
    lake.upsert("sends", frame, key="send_id", since="created_at")
    markers.clear(frame["send_id"].to_list())
    report.rows = frame
