"""The public tables the ingest sets up empty (`transforms.tables.SET_UP_TABLES`), so that every reader of
the lake (`lakemail sql`, DuckDB, Spark) finds them by name before their first write."""

from __future__ import annotations

import polars as pl
from deltalake import DeltaTable
from deltalake.exceptions import CommitFailedError

from resources.lake import LakeResource
from transforms.tables import PUBLIC_TABLES, SET_UP_TABLES

# Tables this process has seen in place: no later batch asks again (on an object store each ask is a
# listing; nothing here ever removes a table).
_SEEN: set[str] = set()


def set_up_tables(lake: LakeResource) -> list[str]:
    """Create each of SET_UP_TABLES that does not exist yet, empty with its columns; the names created.

    Idempotent and never destructive: an existing table is left as it is (nothing is written to it, a
    lake from an earlier release with other columns included). Called under the ingest lock, which the
    other writers of these tables hold too; one that holds none (an audit's first append) racing this
    creation is committed by Delta as the next version, its rows and the same schema kept; when both
    create the table at once, Delta refuses one of the two commits ("protocol changed since last commit"):
    here the table is then there, which is all this wants (seen in CI: four set-ups at once).
    """
    created = []
    for name in SET_UP_TABLES:
        uri = lake.table_uri(name)
        if uri in _SEEN or DeltaTable.is_deltatable(uri):  # no log is read
            _SEEN.add(uri)
            continue
        try:
            lake.write(name, pl.DataFrame(schema=PUBLIC_TABLES[name]))
        except CommitFailedError:  # created by another writer at the same moment ("protocol changed")
            if not DeltaTable.is_deltatable(uri):
                raise
        else:
            created.append(name)
        _SEEN.add(uri)
    return created
