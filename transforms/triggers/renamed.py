"""Shoppers an `alias` renamed, as an evaluation sees them (pure): where the principals of the world's links
end (`transforms.profiles.merge.principal_claims`), and the earlier sends under the user ids they end at,
each once an evaluation (kept in its `Derived`, keyed by the frame it was derived from)."""

from __future__ import annotations

import polars as pl

from transforms.profiles.aliases import renamed_ids
from transforms.profiles.merge import principal_claims
from transforms.triggers.rules.base import Derived


def claims_of(derived: Derived, links: pl.DataFrame) -> pl.DataFrame:
    """`principal_claims` of `links` (identities rows), once for these very links."""
    kept = derived.get("claims")
    if kept is None or kept[0] is not links:
        kept = derived["claims"] = (links, principal_claims(links))
    return kept[1]


def renamed_history(derived: Derived, history: pl.DataFrame, links: pl.DataFrame) -> pl.DataFrame:
    """`history` (earlier sends: user_id, ...) each under the user its id ends at by `links`: what a user an
    alias renamed was sent counts for the new id (the frequency cap, the cooldowns, browse re-entry)."""
    if history.height == 0 or links.height == 0:
        return history
    kept = derived.get("history")
    if kept is None or kept[0] is not history:
        now_named = renamed_ids(claims_of(derived, links))
        resolved = history.with_columns(pl.col("user_id").replace(now_named)) if now_named else history
        kept = derived["history"] = (history, resolved)
    return kept[1]
