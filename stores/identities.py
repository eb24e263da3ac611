"""The `identities` table: anonymous id -> user id edges, each with its earliest sighting (and alias)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import polars as pl

from resources.lake import LakeResource
from resources.vacuumed import VACUUMED
from stores.state.links import Links, stored_links
from transforms.schema import IDENTITIES_SCHEMA, INGEST_APP_ID

KEY = ["anonymous_id", "user_id"]
TIMES = ("first_seen_at", "aliased_at")  # each kept at its earliest
log = logging.getLogger(__name__)


def merge_identities(
    lake: LakeResource, edges: pl.DataFrame, batch_id: int, store: Links | None = None
) -> None:
    """Add new anonymous -> user edges and move first_seen_at / aliased_at back when seen earlier (an
    alias of an edge known from an identify first included; idempotent).

    Not a Delta MERGE: delta-rs writes a filter built from the source's values (person ids) into the
    commit's record, and `_delta_log` must never hold one. New edges are appended; the rare earlier
    sighting of a known edge rewrites this small table whole, which records no predicate.
    """
    if edges.height == 0:  # nothing to read (the append only creates the table at a first batch)
        lake.append("identities", edges, batch_id=batch_id)
        return
    existing = held_edges(lake, edges["anonymous_id"].unique(), store)
    known = edges.join(existing, on=KEY, how="inner", suffix="_known")
    earlier = [
        (pl.col(t) < pl.col(f"{t}_known")) | (pl.col(t).is_not_null() & pl.col(f"{t}_known").is_null())
        for t in TIMES
    ]
    if known.filter(pl.any_horizontal(earlier).fill_null(False)).height == 0:
        lake.append("identities", edges.join(existing, on=KEY, how="anti"), batch_id=batch_id)
        return
    merged = (
        pl.concat([lake.read("identities", IDENTITIES_SCHEMA), edges.select(list(IDENTITIES_SCHEMA))])
        .group_by(KEY)
        .agg(pl.col(t).min() for t in TIMES)
        .sort(KEY)
    )
    lake.overwrite("identities", merged.select(list(IDENTITIES_SCHEMA)), batch_id=batch_id)


def held_edges(lake: LakeResource, anons: pl.Series, store: Links | None) -> pl.DataFrame:
    """The rows of `identities` (IDENTITIES_SCHEMA) of the anonymous ids `anons`.

    With the state store, its `identity_links` (`anon:` keys): a keyed lookup per id (#17: 3-5 ms for 1,000
    ids, where the lake's anonymous_id column scanned whole took 47 ms at 1M edges, 106 ms at 3M). The store
    holds the table as of the batch before: `stores.state.sync.ready` catches it up under the ingest
    lock, each batch's store commit is done before the next batch commits (`stores.ingest._commit_groups`),
    an unfinished batch's edges are rolled back (`roll_back_identities`) and a store holding them rebuilt.
    Without one, the lake's scan (no Delta statistic may name a person, so no file is skipped)."""
    if store is not None:
        return stored_links(store, "anonymous_id", anons)
    wanted = anons.implode()
    return lake.collect(
        "identities", IDENTITIES_SCHEMA, lambda rows: rows.filter(pl.col("anonymous_id").is_in(wanted))
    )


@dataclass(frozen=True)
class RolledBack:
    """What `roll_back_identities` did: the anonymous ids whose rows it changed and the rows it left of
    theirs (IDENTITIES_SCHEMA), or why it could not (`gone`)."""

    anons: pl.Series = field(default_factory=lambda: pl.Series("anonymous_id", [], pl.String))
    rows: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=IDENTITIES_SCHEMA))
    gone: str | None = None

    def distrust(self, store: Links) -> str | None:
        """Why `store` cannot answer for `identities` (None: it can): those ids' edges are not the ones
        the lake holds now (a store rebuilt while the lake held the batch's edges: a later batch asking it
        would not append them), or the edges stayed (`gone`), which no store commit brought."""
        if self.gone is not None or self.anons.len() == 0:
            return self.gone
        held = stored_links(store, "anonymous_id", self.anons)
        if sorted(held.rows()) != sorted(self.rows.rows()):
            return "the store holds identities edges of a batch that did not complete"
        return None


def roll_back_identities(lake: LakeResource, committed: int) -> RolledBack:
    """Undo what a batch that did not complete (numbered above `committed`) did to `identities`: the edges
    it added go, the times it moved back return, what others did since stays (an erasure's deletes).

    Its rows carry no batch number: they are told by the table's version before the batch's first commit
    (read whole, once per crash). Kept, they were edges the live store lacked (a batch's store commit
    follows its `ingest_log` commit), and a batch that takes the files again may group them otherwise:
    a later batch asking the store for them appended them twice. When that version is gone (vacuumed,
    its log cleaned), they stay, and the state store must be rebuilt from the lake to hold them too."""
    if lake.batch_version("identities") <= committed:
        return RolledBack()
    log.warning("rolling back table identities: batch %s did not complete", committed + 1)
    try:
        before = _version_before(lake, committed)
        old = lake.read("identities", IDENTITIES_SCHEMA, version=before) if before is not None else None
    except VACUUMED:
        gone = "identities keeps edges of a batch that did not complete: its version before is gone"
        return RolledBack(gone=gone)
    now = lake.read("identities", IDENTITIES_SCHEMA)
    old = old if old is not None else now.clear()
    changed = now.join(old, on=list(IDENTITIES_SCHEMA), how="anti", nulls_equal=True).select(KEY).unique()
    if changed.height == 0:  # nothing to undo: the table's batch number goes back (one empty commit)
        lake.write_tagged("identities", now.clear(), {INGEST_APP_ID: committed})
        return RolledBack()
    kept = pl.concat([now.join(changed, on=KEY, how="anti"), old.join(changed, on=KEY, how="semi")])
    lake.overwrite("identities", kept.sort(KEY), batch_id=committed)
    anons = changed["anonymous_id"].unique()
    return RolledBack(anons, kept.filter(pl.col("anonymous_id").is_in(anons.implode())))


def _version_before(lake: LakeResource, committed: int) -> int | None:
    """The last version of `identities` that no batch above `committed` wrote (None: one created it)."""
    version = lake.version("identities")
    while version is not None and version >= 0:
        table = lake.table("identities", version)
        if table is not None and (table.transaction_version(INGEST_APP_ID) or 0) <= committed:
            return version
        version -= 1
    return None
