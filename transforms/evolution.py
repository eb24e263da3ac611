"""Tables written by an earlier release: how a reader sees the columns and struct fields they lack.

A table keeps the schema it was written with until a write widens it (an append merges the new
columns in; an overwrite replaces the schema). Until then a reader asks for today's columns: what
the table lacks reads as null (a missing list column as null, a missing struct field as a null field),
and struct fields are read by name, whatever their order in the table.
"""

from __future__ import annotations

from collections.abc import Mapping

import polars as pl
from polars._typing import PolarsDataType


def widened(found: Mapping[str, pl.DataType], schema: Mapping[str, pl.DataType]) -> list[pl.Expr]:
    """Expressions selecting `schema`'s columns from a frame of schema `found`, as described above.

    A column or field present with another leaf type is left as it is (no cast): only what is
    missing or nested differently is rebuilt.
    """
    return [
        _adapt(pl.col(name), found[name], dtype).alias(name)
        if name in found
        else pl.lit(None, dtype=dtype).alias(name)
        for name, dtype in schema.items()
    ]


def _adapt(expr: pl.Expr, found: PolarsDataType, wanted: PolarsDataType) -> pl.Expr:
    if found == wanted:
        return expr
    if isinstance(found, pl.List) and isinstance(wanted, pl.List):
        if found.inner == wanted.inner:
            return expr
        return expr.list.eval(_adapt(pl.element(), found.inner, wanted.inner))
    if isinstance(found, pl.Struct) and isinstance(wanted, pl.Struct):
        have = {f.name: f.dtype for f in found.fields}
        fields = [
            _adapt(expr.struct.field(f.name), have[f.name], f.dtype).alias(f.name)
            if f.name in have
            else pl.lit(None, dtype=f.dtype).alias(f.name)
            for f in wanted.fields
        ]
        return pl.when(expr.is_not_null()).then(pl.struct(fields))
    return expr


def struct_widening(
    found: Mapping[str, pl.DataType], incoming: Mapping[str, pl.DataType]
) -> dict[str, pl.DataType] | None:
    """The schema of a table of schema `found` once it takes rows of schema `incoming`, when these add a
    field to one of its structs (at any depth); None when they add none.

    delta-rs' own readers (delete, merge, compaction) fail on a file that lacks a struct field of its
    table, so such rows are not appended beside the old files: the writer rewrites the table whole.
    """
    if not any(name in found and _adds_fields(found[name], dtype) for name, dtype in incoming.items()):
        return None
    return {**found, **incoming}


def _adds_fields(found: PolarsDataType, incoming: PolarsDataType) -> bool:
    if isinstance(found, pl.List) and isinstance(incoming, pl.List):
        return _adds_fields(found.inner, incoming.inner)
    if isinstance(found, pl.Struct) and isinstance(incoming, pl.Struct):
        have = {f.name: f.dtype for f in found.fields}
        return any(f.name not in have or _adds_fields(have[f.name], f.dtype) for f in incoming.fields)
    return False
