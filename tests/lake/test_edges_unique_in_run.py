"""`identities_edge_unique` in a micro-batch judges the edges of the anonymous ids the batch saw, not the
whole table (#17: every micro-batch grouped every edge ever seen, 0.7 s at 3M edges). A batch writes only
edges of its own events' anonymous ids, so a double it leaves is among them; an older double is the
audits' to find (they read the table whole), and they do."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
from deltalake import write_deltalake

from orchestration.settings import Settings
from resources.lake import LakeResource
from resources.landing import LandingResource
from stores.ingest import ingest
from stores.operations.checks import LAKE_CHECKS, evaluate
from stores.operations.probe import Probe, Scope
from tests.conftest import land
from tests.events_data import file_lines, track
from transforms.operations.checks import CheckOutcome, Thresholds

[EDGES] = [c for c in LAKE_CHECKS if c.name == "identities_edge_unique"]


def judged(lake: LakeResource, landing: LandingResource, scope: Scope) -> CheckOutcome:
    return evaluate(EDGES, Probe(lake, landing, scope, Thresholds(), datetime.now(UTC)))


def scopes(lake: LakeResource) -> dict[str, Scope]:
    since = datetime.now(UTC) - timedelta(hours=1)
    return {
        "in_run": Scope(batch_id=lake.committed_batch(), since=since),  # as assets.checks.in_run_scope
        "hourly_audit": Scope(since=since),
        "nightly_audit": Scope(),
    }


def double(lake: LakeResource, anonymous_id: str) -> None:
    """The edge of `anonymous_id` appended again, as a writer that missed it would."""
    edges = pl.read_delta(lake.table_uri("identities")).filter(pl.col("anonymous_id") == anonymous_id)
    write_deltalake(lake.table_uri("identities"), edges.to_arrow(), mode="append")


def test_in_run_only_the_edges_of_the_batch_s_anonymous_ids_are_judged(
    settings: Settings, lake: LakeResource, landing: LandingResource
) -> None:
    land(settings, "a.ndjson", file_lines("a", 20))  # a-0 .. a-6 -> u-1
    ingest(lake, landing)
    land(settings, "b.ndjson", [track("b-0", user="u-2", anon="n-1"), track("b-1", user="u-2", anon="n-1")])
    ingest(lake, landing)
    assert pl.read_delta(lake.table_uri("identities")).height == 8

    double(lake, "a-0")  # an edge of the first batch doubled: not the latest batch's doing
    found = {name: judged(lake, landing, scope) for name, scope in scopes(lake).items()}
    assert found["in_run"].passed and found["in_run"].figures["rows"] == 1  # n-1 -> u-2 alone
    for name in ("hourly_audit", "nightly_audit"):
        assert not found[name].passed and found[name].figures["duplicate_keys"] == 1, name

    double(lake, "n-1")  # the latest batch's edge doubled: found in-run
    outcome = judged(lake, landing, scopes(lake)["in_run"])
    assert not outcome.passed and outcome.figures == {
        "rows": 2,
        "keys": 1,
        "duplicate_keys": 1,
        "extra_rows": 1,
    }
