"""The catalog as emails read it: in-stock products per category, recommendations and bestsellers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import Any

import polars as pl


def product_ids(ids: Sequence[str]) -> pl.Series:
    """Product ids as one list value, the unambiguous right-hand side of `is_in`."""
    return pl.Series(list(ids), dtype=pl.String).implode()


def _not_in(exclude: Sequence[str]) -> pl.Expr:
    return ~pl.col("product_id").is_in(product_ids(exclude))


@dataclass(frozen=True)
class Catalog:
    """The catalog as emails read it: the frame, and each category's in-stock products by product_id.

    Built once per run: picking recommendations is then a list walk per email, not a Polars query
    (which costs far more than the pick itself when a run renders hundreds of emails).
    """

    frame: pl.DataFrame
    in_stock: Mapping[str, list[dict[str, Any]]]

    @classmethod
    def of(cls, frame: pl.DataFrame) -> Catalog:
        stocked = frame.filter((pl.col("stock") > 0) & pl.col("category").is_not_null()).sort("product_id")
        groups: dict[str, list[dict[str, Any]]] = {}
        seen: set[tuple[str, str]] = set()
        for row in stocked.iter_rows(named=True):
            key = (row["category"], row["product_id"])
            if key not in seen:  # one card per product (the table's key; defensive)
                seen.add(key)
                groups.setdefault(row["category"], []).append(row)
        return cls(frame, groups)

    def recommend(self, category: str | None, exclude: Sequence[str], limit: int = 3) -> list[dict[str, Any]]:
        """In-stock products of `category` not in `exclude`, by product_id; none without a category."""
        if category is None:
            return []
        skip = set(exclude)
        wanted = (row for row in self.in_stock.get(category, []) if row["product_id"] not in skip)
        return list(islice(wanted, limit))


def recommendations(
    catalog: pl.DataFrame, *, category: str | None, exclude: Sequence[str], limit: int = 3
) -> pl.DataFrame:
    """In-stock products of `category` not in `exclude`, by product_id; empty without a category."""
    return pl.DataFrame(Catalog.of(catalog).recommend(category, exclude, limit), schema=catalog.schema)


def in_stock_bestsellers(
    catalog: pl.DataFrame, ranked: Sequence[str], exclude: Sequence[str]
) -> pl.DataFrame:
    """In-stock bestsellers not in `exclude`, in rank order."""
    ranks = pl.DataFrame({"product_id": list(ranked)}, schema={"product_id": pl.String})
    stocked = catalog.filter((pl.col("stock") > 0) & _not_in(exclude))
    return (
        ranks.unique(keep="first", maintain_order=True)
        .join(stocked, on="product_id", maintain_order="left")
        .head(3)
    )


def bestseller_ranking(added: pl.DataFrame, limit: int = 20) -> list[str]:
    """Product ids by how many shoppers added them to a cart (`added`: principal, product_id)."""
    if added.height == 0:
        return []
    ranked = (
        added.drop_nulls("product_id")
        .group_by("product_id")
        .agg(pl.col("principal").n_unique().alias("shoppers"))
        .sort(["shoppers", "product_id"], descending=[True, False])
        .head(limit)
    )
    return ranked["product_id"].to_list()
