"""Policies over every marketing trigger: holdout, A/B variant, quiet hours, frequency cap."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import polars as pl

from transforms.schema import PENDING_DECISIONS, UTC_TS


@dataclass(frozen=True)
class Policy:
    """The cross-trigger policy values (the product's defaults: consent, cap, quiet hours, holdout)."""

    holdout_rate: float = 0.05
    quiet_start: time = time(21)
    quiet_end: time = time(8)
    quiet_hours: bool = True  # False: no quiet hours at all (demos, transactional-only shops)
    cap_short: tuple[int, timedelta] = (1, timedelta(hours=16))
    cap_long: tuple[int, timedelta] = (3, timedelta(days=7))
    variants: tuple[str, ...] = ("a", "b")


def unit_hash(text: str) -> float:
    """A stable number in [0, 1) for `text` (the same in every run, process and Python version)."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") / 2**64


def per_distinct(columns: list[pl.Series], of: Callable[..., object], dtype: pl.DataType) -> pl.Series:
    """`of(*values)` for each row of `columns`, computed once per distinct row (an engine run has ~15
    candidates per user and a handful of time zones: the Python call per row was most of its time, #17)."""
    rows = pl.DataFrame(columns)
    distinct = rows.unique(maintain_order=True)
    values = pl.Series("_value", [of(*row) for row in distinct.iter_rows()], dtype=dtype)
    found = rows.join(
        distinct.with_columns(values), on=rows.columns, how="left", nulls_equal=True, maintain_order="left"
    )
    return found["_value"]


def in_holdout(user_ids: pl.Series, rate: float) -> pl.Series:
    """The global holdout: a stable `rate` share of users by a hash of their id (the engine's: the id she was
    first known by, `renamed.arm_ids`, so a rename moves no one in or out)."""
    return per_distinct(
        [user_ids], lambda u: u is not None and unit_hash(f"holdout:{u}") < rate, pl.Boolean()
    )


def variants(kinds: pl.Series, user_ids: pl.Series, names: tuple[str, ...]) -> pl.Series:
    """The A/B variant per (trigger kind, user), by hash: stable and independent of the holdout (the engine
    passes the id she was first known by, as to `in_holdout`)."""

    def pick(kind: str, user: str | None) -> str | None:
        return names[int(unit_hash(f"variant:{kind}:{user}") * len(names))] if user is not None else None

    return per_distinct([kinds, user_ids], pick, pl.String())


def _zone(name: str | None) -> ZoneInfo:
    """The time zone `name` says, UTC when it names none. The name is the shopper's (a trait, an event's
    context): one naming a folder of the tz database (`America`) or too long for a file name raises an
    OSError, which must not stop the decisions and sends of everyone else (found by review)."""
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return ZoneInfo("UTC")


def quiet_until(now: datetime, timezones: pl.Series, policy: Policy) -> pl.Series:
    """Per user: the end of quiet hours (next local 08:00) when `now` falls in them, else null."""
    if not policy.quiet_hours:
        return pl.Series([None] * len(timezones), dtype=UTC_TS)

    def end(name: str | None) -> datetime | None:
        zone = _zone(name)
        local = now.astimezone(zone)
        if policy.quiet_end <= local.time() < policy.quiet_start:
            return None
        day = local.date() if local.time() < policy.quiet_end else local.date() + timedelta(days=1)
        return datetime.combine(day, policy.quiet_end, tzinfo=zone).astimezone(now.tzinfo)

    return per_distinct([timezones], end, UTC_TS)


def resumed_due(now: datetime) -> pl.Expr:
    """A decision's `due_at` (of rows with decision, due_at, previous, previous_due): for the decision that
    follows quiet hours that deferred it (`previous_due`, their end, passed), that end when later. Its email
    could go from then on, so its latency (landed -> sent), the send-latency SLO and the send budget count
    from there (found by review: a cart due at 21:30, deferred, sent at 08:00 counted 10.5 h the policy
    held it as the system's latency and failed the send budget, every morning)."""
    ended = (pl.col("previous") == "quiet_hours_deferred") & (pl.col("previous_due") <= now)
    ended = ended & ~pl.col("decision").is_in(PENDING_DECISIONS)
    return pl.max_horizontal("due_at", pl.when(ended).then(pl.col("previous_due")))


def capped(candidates: pl.DataFrame, history: pl.DataFrame, now: datetime, policy: Policy) -> pl.Series:
    """Which of `candidates` (user_id, priority, due_at, trigger_id) the frequency cap skips.

    `history` holds earlier `send` decisions (user_id, decided_at). Within this evaluation the
    candidates go in priority order, so each user gets at most what both caps still allow.
    """
    counts = []
    for limit, window in (policy.cap_short, policy.cap_long):
        recent = history.filter(pl.col("decided_at") > now - window).group_by("user_id").agg(pl.len())
        counts.append((limit, recent))
    ranked = candidates.with_row_index("_row").sort("user_id", "priority", "due_at", "trigger_id")
    ranked = ranked.with_columns(pl.int_range(pl.len()).over("user_id").alias("_rank"))
    skip = pl.lit(False)
    for index, (limit, recent) in enumerate(counts):
        ranked = ranked.join(recent.rename({"len": f"_n{index}"}), on="user_id", how="left")
        skip = skip | (pl.col(f"_n{index}").fill_null(0) + pl.col("_rank") >= limit)
    return ranked.sort("_row").select(skip.alias("capped"))["capped"]
