"""The trigger engine's tables and its lake readers: `triggers`, `trigger_state`, replay.

`triggers` is the append-only decision log; `trigger_state` a checkpoint of the candidates still pending,
which the log's later rows bring up to date (`stores.triggers_pending`). Each engine run has a number,
recorded as a Delta application transaction on its `triggers` commit, with the version of every table of
ENGINE_TABLES (READ_APP), so `lakemail replay` can read the lake again as that run's inputs stood
(`engine_world`, the lake readers). The live engine decides from the state store instead
(`stores.decide.engine.run_engine`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import polars as pl
from deltalake.exceptions import DeltaError

from resources.lake import LakeResource
from resources.vacuumed import VACUUMED
from stores.profiles import shopper_customers, state_for
from stores.suppressions import suppressed_users
from stores.triggers_pending import considered_batch, pending_rows
from transforms.principals import of_user, user_of
from transforms.profiles.derive import derive
from transforms.profiles.merge import linked_principals, renamed_to
from transforms.profiles.partials import principal
from transforms.profiles.state import VIEWED_OR_CARTED
from transforms.schema import (
    CATALOG_CHANGES_SCHEMA,
    CATALOG_SCHEMA,
    CUSTOMERS_SCHEMA,
    EVENTS_SCHEMA,
    INGEST_APP_ID,
    PENDING_DECISIONS,
    READ_APP,
    RUN_APP,
    TRIGGERS_SCHEMA,
)
from transforms.triggers.decide import World, with_decided
from transforms.triggers.exits import renewable_rows
from transforms.triggers.policies import Policy
from transforms.triggers.rules.catalog_alerts import LOOKBACK, in_window

log = logging.getLogger(__name__)
# The sends a run reads: browse re-entry counts 14 days back from a due time that can be two days old
# (a view a day before the last activity, due 2 h after it, expiring 24 h later), so 17 days.
HISTORY = timedelta(days=17)
VIEWERS_SCHEMA = {"principal": pl.String(), "product_id": pl.String(), "last_ts": pl.Datetime("us", "UTC")}
# Every table an engine run reads, each at the version it had when the run began (`LakeResource.snapshot`).
ENGINE_TABLES = (
    "ingest_log",
    "events",
    "identities",
    "customers",
    "catalog",
    "catalog_changes",
    "profile_state",
    "profile_updates",
    "suppressions",
    "triggers",
    "trigger_state",
)


@dataclass
class EngineReport:
    evaluation: int = 0
    batch_id: int = 0
    rows: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=TRIGGERS_SCHEMA))
    pending: int = 0
    next_due: datetime | None = None
    checkpoint: bool = False  # whether the run rewrote `trigger_state` (`stores.triggers_pending`)


def touched_principals(lake: LakeResource, after_batch: int, upto: int) -> list[str]:
    """The principals of the events of batches (`after_batch`, `upto`], and the users whose CRM row they
    brought (a consent given in the CRM makes a welcome due without an event of the shopper)."""
    if upto <= after_batch:
        return []
    events = lake.scan("events", EVENTS_SCHEMA).filter(
        (pl.col("batch_id") > after_batch) & (pl.col("batch_id") <= upto)
    )
    touched = events.select(principal().alias("p")).unique().collect()["p"].to_list()
    return sorted(set(touched) | set(map(of_user, _crm_changes(lake, after_batch))))


def _crm_changes(lake: LakeResource, after_batch: int) -> list[str]:
    """Users whose `customers` row is new or other than after batch `after_batch` (the table is rewritten
    whole by the batches that bring CRM rows: the two versions are compared; a later batch's rows, when
    the view has them, are taken early, which is harmless). Every row counts as new when that version is
    gone: its log cleaned up, or its files vacuumed (an erasure's vacuum, at retention 0, while the
    decide lane was behind the ingest lane)."""
    if lake.batch_version("customers") <= after_batch:
        return []
    base = _version_after(lake, "customers", after_batch)
    now = lake.scan("customers", CUSTOMERS_SCHEMA)
    if base is not None:
        try:
            before = lake.read("customers", CUSTOMERS_SCHEMA, version=base)
        except VACUUMED:
            log.warning(
                "customers as batch %s left it was vacuumed: every CRM row counts as new", after_batch
            )
        else:
            now = now.join(before.lazy(), on=list(CUSTOMERS_SCHEMA), how="anti", nulls_equal=True)
    return now.select("user_id").collect()["user_id"].to_list()


def _version_after(lake: LakeResource, name: str, batch: int) -> int | None:
    """The version of table `name` as batch `batch` left it (the last one a batch up to it wrote); None
    when there was none, or its log is gone (then every row counts as new)."""
    table = lake.table(name)
    assert table is not None

    def written_by(version: int) -> int | None:  # the batch, None for a version whose log is gone
        try:
            found = lake.table(name, version)
        except DeltaError:
            return None
        return (found.transaction_version(INGEST_APP_ID) or 0) if found is not None else None

    low, high = -1, table.version()  # batches only grow with versions; a gone log is the oldest part
    while low < high:
        middle = (low + high + 1) // 2
        wrote = written_by(middle)
        low, high = (middle, high) if wrote is None or wrote <= batch else (low, middle - 1)
    return low if low >= 0 and written_by(low) is not None else None


def catalog_changes_between(lake: LakeResource, after_batch: int, upto: int) -> pl.DataFrame:
    changes = lake.scan("catalog_changes", CATALOG_CHANGES_SCHEMA).filter(
        (pl.col("batch_id") > after_batch) & (pl.col("batch_id") <= upto)
    )
    return changes.collect()


def _viewers(lake: LakeResource, changes: pl.DataFrame) -> pl.DataFrame:
    """Who viewed or carted a changed product in the 30 days before a change of it (`in_window`: as the
    store's world, `stores.decide.world.store_world`)."""
    if changes.height == 0:
        return pl.DataFrame(schema=VIEWERS_SCHEMA)
    earliest = changes["changed_at"].min()
    assert isinstance(earliest, datetime)
    since = earliest - LOOKBACK
    events = lake.scan("events", EVENTS_SCHEMA).filter(
        pl.col("product_id").is_in(changes["product_id"].unique().to_list())
        & pl.col("event_name").is_in(VIEWED_OR_CARTED)
        & (pl.col("event_date") >= since.date())
    )
    last = events.group_by(principal().alias("principal"), "product_id").agg(
        pl.col("event_ts").max().alias("last_ts")
    )
    return in_window(last.collect(), changes)


def run_snapshot(lake: LakeResource, evaluation: int) -> LakeResource | None:
    """The lake as engine run `evaluation` read it (the versions its `triggers` commit recorded); None when
    that commit is gone from the log, or the run recorded no versions (runs before they were recorded)."""
    commit = lake.commit_of("triggers", RUN_APP, evaluation)
    log = lake.table("triggers", commit) if commit is not None else None
    if log is None:
        return None
    versions = {name: log.transaction_version(READ_APP + name) for name in ENGINE_TABLES}
    return lake.at(versions) if any(v is not None for v in versions.values()) else None


def engine_world(
    lake: LakeResource,
    *,
    now: datetime,
    secret: str,
    delays: dict[str, timedelta] | None = None,
    policy: Policy | None = None,
    evaluation: int,
) -> World:
    """What engine run `evaluation` decides from, read from `lake` (the run's snapshot, or replay's)."""
    last_batch = considered_batch(lake)
    committed = lake.committed_batch()
    pending = pending_rows(lake)
    changes = catalog_changes_between(lake, last_batch, committed)
    viewers = _viewers(lake, changes)
    due = pending.filter(pl.col("due_at") <= now)
    principals = sorted(
        set(touched_principals(lake, last_batch, committed))
        | set(due["principal"])
        | set(viewers["principal"])
    )
    state, links = state_for(lake, principals)
    users = [u for u in map(user_of, state["principal"]) if u is not None]
    customers = shopper_customers(lake, users, links)  # a renamed user's CRM row is hers
    profiles = derive(state, customers, now)
    involved = set(principals) | set(state["principal"]) | linked_principals(links)
    world = World(
        now=now,
        state=state,
        profiles=profiles,
        pending=pending.filter(pl.col("principal").is_in(list(involved)) | (pl.col("due_at") <= now)),
        decided=pl.Series([], dtype=pl.String),
        history=_history(lake, [*users, *renamed_to(links)], now),  # a renamed user's sends count
        suppressed=suppressed_users(lake, profiles, secret),
        catalog=lake.read("catalog", CATALOG_SCHEMA),
        catalog_changes=changes,
        catalog_viewers=viewers,
        links=links,
        customers=customers,
        delays=delays or {},
        policy=policy or Policy(),
        lake_version=_version(lake, "events"),
        batch_id=committed,
        evaluation=evaluation,
    )
    return _with_decided(lake, world)


def _version(lake: LakeResource, name: str) -> int:
    version = lake.version(name)
    return version if version is not None else -1


def _history(lake: LakeResource, users: list[str], now: datetime) -> pl.DataFrame:
    return (
        lake.scan("triggers", TRIGGERS_SCHEMA)
        .filter(
            (pl.col("decision") == "send")
            & (pl.col("decided_at") >= now - HISTORY)
            & pl.col("user_id").is_in(users)
        )
        .select("user_id", "kind", "anchor", "decided_at")
        .collect()
    )


def _with_decided(lake: LakeResource, world: World) -> World:
    terminal = ~pl.col("decision").is_in(PENDING_DECISIONS)

    def decided(proposed: pl.Series) -> pl.Series:
        rows = lake.scan("triggers", TRIGGERS_SCHEMA).filter(pl.col("trigger_id").is_in(proposed.to_list()))
        return rows.filter(terminal).select("trigger_id").unique().collect()["trigger_id"]

    def renewable(proposed: pl.Series) -> pl.DataFrame:
        rows = lake.scan("triggers", TRIGGERS_SCHEMA).filter(pl.col("trigger_id").is_in(proposed.to_list()))
        columns = ("trigger_id", "decision", "decided_at", "evaluation")
        return renewable_rows(rows.filter(terminal).select(columns).collect())

    return with_decided(world, decided, renewable)
