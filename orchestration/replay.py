"""`lakemail replay`: re-decide one engine run's candidates of a kind against the lake as it was.

Shadow mode: nothing is written and nothing is sent. The events are read at the Delta version the
run recorded (`lake_version`), the pending candidates and send history are rebuilt from the decision
log as it stood before that run, and the engine decides again with the rules as they are now. The
difference with what was decided then is what a rule change would have changed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import polars as pl
from deltalake import DeltaTable

from orchestration.settings import Settings
from resources.lake import LakeResource
from stores.triggers import VIEWERS_SCHEMA, apply
from transforms.profiles.partials import ANON, derive, merge_partials, partials, resolve
from transforms.schema import (
    CATALOG_CHANGES_SCHEMA,
    CATALOG_SCHEMA,
    CUSTOMERS_SCHEMA,
    IDENTITIES_SCHEMA,
    PENDING_DECISIONS,
    TRIGGERS_SCHEMA,
)
from transforms.triggers.decide import World, evaluate, propose
from transforms.triggers.rules import RULES

COMPARED = ("decision", "reason", "due_at")


class ReplayError(ValueError):
    """The replay cannot run: unknown kind, or no such engine run in the log."""


@dataclass(frozen=True)
class ReplayResult:
    kind: str
    evaluation: int
    lake_version: int
    decided_at: datetime
    then: pl.DataFrame
    now: pl.DataFrame
    diff: pl.DataFrame


def replay(settings: Settings, kind: str, evaluation: int, *, secret: str) -> ReplayResult:
    """Re-decide engine run `evaluation`'s `kind` candidates; `secret` is unused until suppressions."""
    if kind not in RULES:
        raise ReplayError(f"unknown trigger kind {kind!r} (known: {', '.join(sorted(RULES))})")
    lake = LakeResource(uri=settings.lake_uri)
    log = lake.read("triggers", TRIGGERS_SCHEMA)
    then = log.filter((pl.col("evaluation") == evaluation) & (pl.col("kind") == kind))
    if then.height == 0:
        raise ReplayError(f"engine run {evaluation} decided nothing of kind {kind!r}")
    version, decided_at = int(then["lake_version"][0]), then["decided_at"][0]
    before = log.filter(pl.col("evaluation") < evaluation)
    world = _world_then(lake, then, before, version, decided_at)
    now = evaluate(world).filter(
        (pl.col("kind") == kind) & pl.col("trigger_id").is_in(then["trigger_id"].implode())
    )
    return ReplayResult(kind, evaluation, version, decided_at, then, now, _diff(then, now))


def _world_then(
    lake: LakeResource, then: pl.DataFrame, before: pl.DataFrame, version: int, at: datetime
) -> World:
    principals = then["principal"].unique().to_list()
    users = [p for p in principals if not p.startswith(ANON)]
    anon = [p.removeprefix(ANON) for p in principals if p.startswith(ANON)]
    events = pl.scan_delta(DeltaTable(lake.table_uri("events"), version=version)).filter(
        pl.col("user_id").is_in(users) | pl.col("anonymous_id").is_in(anon)
    )
    events_then = events.filter(pl.col("batch_id") <= then["batch_id"].max()).collect()
    links = lake.read("identities", IDENTITIES_SCHEMA).filter(
        pl.col("user_id").is_in(users) | pl.col("anonymous_id").is_in(anon)
    )
    state = merge_partials(resolve(partials(events_then), links))
    customers = lake.read("customers", CUSTOMERS_SCHEMA)
    pending = apply(pl.DataFrame(schema=TRIGGERS_SCHEMA), before)
    world = World(
        now=at,
        state=state,
        profiles=derive(state, customers, at),
        pending=pending.filter(pl.col("principal").is_in(principals)),
        decided=pl.Series([], dtype=pl.String),
        history=before.filter(pl.col("decision") == "send").select("user_id", "kind", "anchor", "decided_at"),
        suppressed=frozenset(),
        catalog=lake.read("catalog", CATALOG_SCHEMA),
        catalog_changes=pl.DataFrame(schema=CATALOG_CHANGES_SCHEMA),
        catalog_viewers=pl.DataFrame(schema=VIEWERS_SCHEMA),
        links=links,
    )
    proposed = propose(world)["trigger_id"]
    terminal = before.filter(~pl.col("decision").is_in(PENDING_DECISIONS))["trigger_id"]
    return World(**{**world.__dict__, "decided": terminal.filter(terminal.is_in(proposed.implode()))})


def _diff(then: pl.DataFrame, now: pl.DataFrame) -> pl.DataFrame:
    keys = ["trigger_id", *COMPARED]
    joined = then.select(keys).join(
        now.select(keys), on="trigger_id", how="full", suffix="_replay", coalesce=True
    )
    changed = pl.any_horizontal([pl.col(c).ne_missing(pl.col(f"{c}_replay")) for c in COMPARED])
    return joined.filter(changed).sort("trigger_id")


def render_replay(result: ReplayResult) -> str:
    """What was decided then, what the rules decide now, and the difference."""
    head = (
        f"replay of engine run {result.evaluation}, kind {result.kind}, events at Delta version "
        f"{result.lake_version}, as of {result.decided_at.isoformat()} (shadow: nothing written or sent)\n"
    )
    counts = (
        result.then.group_by("decision")
        .agg(pl.len().alias("then"))
        .join(
            result.now.group_by("decision").agg(pl.len().alias("replay")),
            on="decision",
            how="full",
            coalesce=True,
        )
        .fill_null(0)
        .sort("decision")
    )
    body = f"{counts}\n{result.diff.height} of {result.then.height} decisions differ\n"
    return head + body + (f"{result.diff}\n" if result.diff.height else "")
