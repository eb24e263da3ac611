"""Shoppers an `alias` renamed, as an evaluation sees them (pure): where the principals of the world's links
end (`transforms.profiles.merge.principal_claims`), the earlier sends under the user ids they end at, and
the id their holdout and variants are hashed by, each once an evaluation (kept in its `Derived`, keyed by
the frame it was derived from)."""

from __future__ import annotations

import polars as pl

from transforms.profiles.aliases import first_known, renamed_ids
from transforms.profiles.merge import principal_claims
from transforms.triggers.rules.base import Derived

ARMS = {"user_id": pl.String(), "start": pl.String()}  # a renamed user -> the id her arms are hashed by


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


def arm_ids(derived: Derived, links: pl.DataFrame, users: pl.Series) -> pl.Series:
    """The id each of `users` (the ids they go by now) is assigned an experiment arm by, the holdout and the
    A/B variants (`policies.in_holdout`, `policies.variants`): the id she was first known by, an alias that
    renamed her followed back (`aliases.first_known`), so a rename moves no one between the arms
    `experiments` counts her in; her own id otherwise."""
    kept = derived.get("arms")
    if kept is None or kept[0] is not links:
        starts = first_known(links)
        frame = pl.DataFrame({"user_id": list(starts), "start": list(starts.values())}, schema=ARMS)
        kept = derived["arms"] = (links, frame)
    if kept[1].height == 0:
        return users
    return users.replace(dict(kept[1].iter_rows()))
