"""An in-run check step reads the tables of its checks only (`tables_read`, #17): the decide lane's steps
brought all seven checked tables up to date, the ingest lane's five for nothing, twice a decide run."""

from __future__ import annotations

from stores.operations.checks import INGEST_TABLES, LAKE_CHECKS, checks_for, tables_read


def test_the_decide_lanes_checks_read_the_decisions_and_the_outbox_only() -> None:
    assert tables_read(checks_for({"triggers", "sends"}, in_run=True)) == ("triggers", "sends")
    assert tables_read(checks_for({"triggers"}, in_run=True)) == ("triggers",)


def test_the_ingest_lanes_checks_read_its_tables_and_what_reconciles_them() -> None:
    read = tables_read(checks_for(INGEST_TABLES, in_run=True))
    assert set(read) == {"events", "quarantine", "ingest_log", "identities"}
    reconcile = [c for c in LAKE_CHECKS if c.name == "ingest_log_files_reconcile"]
    assert tables_read(reconcile) == ("events", "quarantine", "ingest_log")
