"""The CRM (`customers/`) and catalog (`catalog/`) files of a micro-batch: latest row per key, and the
catalog's changes (restocks, price drops) logged before the catalog moves."""

from __future__ import annotations

import polars as pl

from resources.lake import LakeResource
from transforms.ingest.reference import ReferenceResult
from transforms.ingest.reference_tables import catalog_changes, latest_rows
from transforms.schema import CATALOG_SCHEMA, CUSTOMERS_SCHEMA, batch_column

REFERENCE_FOLDERS = {"customers/": ("customers", "user_id"), "catalog/": ("catalog", "product_id")}


def reference_counts(references: list[tuple[str, ReferenceResult]]) -> pl.DataFrame:
    """ingest_log counts of customers / catalog files: every row is accepted or quarantined."""
    return pl.DataFrame(
        [(path, r.lines, r.rows.height, r.quarantine.height, 0) for path, r in references],
        schema={
            "source_file": pl.String,
            "lines": pl.Int64,
            "accepted": pl.Int64,
            "quarantined": pl.Int64,
            "duplicates": pl.Int64,
        },
        orient="row",
    )


def merge_reference(
    lake: LakeResource,
    references: list[tuple[str, ReferenceResult]],
    batch_id: int,
    written: dict[str, pl.DataFrame] | None = None,
) -> int:
    """Latest row per key into `customers` and `catalog`; catalog changes logged before the catalog moves.

    Both tables are rewritten whole (they are small next to events, and no predicate is logged). A retry
    of a batch that crashed after rewriting the catalog compares against the version before it.
    """
    changed = 0
    for folder, (name, key) in REFERENCE_FOLDERS.items():
        incoming = [r.rows for path, r in references if path.startswith(folder)]
        if not incoming:
            continue
        schema = CUSTOMERS_SCHEMA if name == "customers" else CATALOG_SCHEMA
        before = _before_batch(lake, name, schema)
        after = latest_rows(before, pl.concat(incoming), key)
        if name == "catalog":  # every step of the batch's rows, not only first to last
            changes = catalog_changes(before, pl.concat(incoming)).with_columns(batch_column(batch_id))
            lake.append("catalog_changes", changes, batch_id=batch_id)
            changed += changes.height
        lake.overwrite(name, after.select(list(schema)), batch_id=batch_id)
        if written is not None:
            brought = pl.concat(incoming)[key].unique().implode()
            written[name] = after.filter(pl.col(key).is_in(brought)).select(list(schema))
    return changed


def _before_batch(lake: LakeResource, name: str, schema: dict[str, pl.DataType]) -> pl.DataFrame:
    version = lake.version(name)
    if version is not None and lake.batch_version(name) > lake.committed_batch():
        return lake.read(name, schema, version=version - 1)  # this batch's own earlier, crashed attempt
    return lake.read(name, schema)
