"""`lakemail replay`: re-decide one engine run's candidates of a kind against the lake as that run read it.

Shadow mode: nothing is written and nothing is sent. An engine run records the version of every table it
reads; the replay reads them again at those versions, builds the world the way the engine does
(`stores.triggers.engine_world`: the same readers, suppressions included) and decides again with the rules,
delays and policy as they are now. The difference with what was decided then is what a change would change.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import polars as pl

from assets.triggers import kind_delays
from orchestration.settings import Settings
from resources.lake import LakeResource
from resources.vacuumed import VACUUMED
from stores.triggers import engine_world, run_snapshot
from transforms.schema import TRIGGERS_SCHEMA
from transforms.triggers.decide import evaluate
from transforms.triggers.rules import RULES

COMPARED = ("decision", "reason", "due_at")


class ReplayError(ValueError):
    """The replay cannot run: unknown kind, no such engine run in the log, no record of what it read, or
    what it read is gone (vacuumed)."""


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
    """Re-decide engine run `evaluation`'s `kind` candidates (`secret` keys the suppressions)."""
    if kind not in RULES:
        raise ReplayError(f"unknown trigger kind {kind!r} (known: {', '.join(sorted(RULES))})")
    lake = LakeResource(uri=settings.lake_uri)
    run = lake.scan("triggers", TRIGGERS_SCHEMA).filter(pl.col("evaluation") == evaluation).collect()
    if run.height == 0:  # its clock is only known from its rows
        raise ReplayError(f"engine run {evaluation} decided nothing, of any kind: no such run to replay")
    then = run.filter(pl.col("kind") == kind)
    seen = run_snapshot(lake, evaluation)
    if seen is None:
        raise ReplayError(
            f"engine run {evaluation} has no record of the table versions it read "
            "(it ran before lakemail recorded them, or its commit has left the Delta log)"
        )
    decided_at = run["decided_at"][0]
    delays, policy = kind_delays(settings.delays), settings.policy
    try:
        world = engine_world(
            seen, now=decided_at, secret=secret, delays=delays, policy=policy, evaluation=evaluation
        )
    except VACUUMED as error:
        raise ReplayError(_gone(evaluation, seen, error)) from None
    # Every candidate the rules propose now, those the run did not decide included: the world is the
    # run's (the principals it considered, what was decided before it), so an unchanged rule proposes
    # exactly what was decided then, and an edited one shows what it would add.
    now = evaluate(world).filter(pl.col("kind") == kind)
    return ReplayResult(kind, evaluation, world.lake_version, decided_at, then, now, _diff(then, now))


def _gone(evaluation: int, seen: LakeResource, error: Exception) -> str:
    """Why engine run `evaluation` cannot be read again: a table version it read lost its files."""
    text = str(error)
    names = [name for name in seen.pinned if f"/{name}/" in text or f"{name}/_delta_log" in text]
    which = f" ({names[0]} at version {seen.pinned[names[0]]})" if names else ""
    return (
        f"engine run {evaluation} cannot be replayed: a table version it read{which} is gone, vacuumed by "
        "an erasure (at once) or by maintenance (past its retention, 7 days by default)"
    )


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
    added = result.diff.filter(pl.col("decision").is_null()).height
    body = (
        f"{counts}\n{result.diff.height} decisions differ ({result.then.height} then, {result.now.height}"
        f" in the replay; {added} the run did not decide)\n"
    )
    return head + body + (f"{result.diff}\n" if result.diff.height else "")
