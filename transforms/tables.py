"""The lake tables of the public contract (PRODUCT.md section 3) by name, each with its columns.

`lakemail sql` answers every one of them by name, an empty one before its first write; and the lake is
set up with `SET_UP_TABLES` empty, the tables whose first write can come long after the first batch
(the first unsubscribe, audit or measure run), so that any Delta reader (DuckDB, Spark) finds them too.
"""

from __future__ import annotations

import polars as pl

from transforms.measure.tables import ATTRIBUTIONS_SCHEMA, EXPERIMENTS_SCHEMA
from transforms.operations.audits import AUDIT_RESULTS_SCHEMA
from transforms.schema import (
    CATALOG_SCHEMA,
    CUSTOMERS_SCHEMA,
    EVENTS_SCHEMA,
    IDENTITIES_SCHEMA,
    INGEST_LOG_SCHEMA,
    PROFILES_SCHEMA,
    QUARANTINE_SCHEMA,
    SENDS_SCHEMA,
    SUPPRESSIONS_SCHEMA,
    TRIGGERS_SCHEMA,
)

PUBLIC_TABLES: dict[str, dict[str, pl.DataType]] = {
    "events": EVENTS_SCHEMA,
    "quarantine": QUARANTINE_SCHEMA,
    "ingest_log": INGEST_LOG_SCHEMA,
    "identities": IDENTITIES_SCHEMA,
    "profiles": PROFILES_SCHEMA,
    "customers": CUSTOMERS_SCHEMA,
    "catalog": CATALOG_SCHEMA,
    "triggers": TRIGGERS_SCHEMA,
    "sends": SENDS_SCHEMA,
    "suppressions": SUPPRESSIONS_SCHEMA,
    "audit_results": AUDIT_RESULTS_SCHEMA,
    "attributions": ATTRIBUTIONS_SCHEMA,
    "experiments": EXPERIMENTS_SCHEMA,
}

# Created by the ingest, under its lock, when missing. Every other creator of these holds that lock too
# (suppressions: the ingest itself; erasure: every lock; the measure runs set them up through the ingest's
# set-up under it, then write them under their own), but the audits, whose append takes none. The other
# public tables are the lanes' own (created by their first write, under the lock of their lane): the sql
# command shows them empty until then.
SET_UP_TABLES = ("suppressions", "audit_results", "attributions", "experiments")
