"""One small ingest of Segment's documented payloads on a real lake, end to end: the one lake test the fast
tier runs too (`make test-fast`, marked `smoke`), so a slip in the ingest's event path fails there in seconds,
not only in `make test`."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from resources.lake import LakeResource
from resources.landing import LandingResource
from resources.state import StateResource
from stores.ingest import ingest
from stores.ingest_report import PREVIEW
from stores.state.rebuild import check
from transforms.schema import EVENTS_SCHEMA

SEGMENT = Path(__file__).parent.parent / "fixtures" / "segment"


@pytest.mark.smoke
def test_segment_payloads_end_in_events_quarantine_or_duplicates_and_the_store_equals_a_rebuilt_one(
    tmp_path: Path,
) -> None:
    lake, landing = LakeResource(uri=str(tmp_path / "lake")), LandingResource(uri=str(tmp_path / "landing"))
    state = StateResource(uri=str(tmp_path / "state"))
    lines = (SEGMENT / "ecommerce_v2.ndjson").read_bytes().splitlines()
    lines += (SEGMENT / "spec_calls.ndjson").read_bytes().splitlines()
    landing.land("events/a.ndjson", b"\n".join([*lines, b"{broken", lines[0]]) + b"\n")
    report = ingest(lake, landing, state=state, secret="test-secret")
    events = lake.read("events", EVENTS_SCHEMA)
    quarantine = pl.read_delta(f"{lake.uri}/quarantine")
    assert (report.files, report.lines) == (1, len(lines) + 2)
    # Six of spec_calls' seven share one messageId (as Segment's docs do), and the first line comes twice.
    assert (report.accepted, report.duplicates, report.quarantined) == (30, 6, {"invalid_json": 1})
    assert events.height == report.accepted == events["event_id"].n_unique()
    assert quarantine.height == sum(report.quarantined.values())
    assert report.preview is not None and set(PREVIEW) <= set(report.preview.columns)
    assert check(lake, state).equal


def test_the_reports_counts_add_up_to_its_lines_with_customer_and_catalog_files(tmp_path: Path) -> None:
    """`lakemail process` printed customers' and catalog's lines but none of their accepted rows ("19
    lines, 0 accepted, 0 duplicates, 14 quarantined"; found by QA): they are `reference_rows` now."""
    lake, landing = LakeResource(uri=str(tmp_path / "lake")), LandingResource(uri=str(tmp_path / "landing"))
    lines = (SEGMENT / "ecommerce_v2.ndjson").read_bytes().splitlines()[:3]
    landing.land("events/a.ndjson", b"\n".join([*lines, b"{broken"]) + b"\n")
    landing.land("customers/crm.csv", b"user_id,email\nu1,a@example.com\nu2,b@example.com\n")
    landing.land("catalog/p.ndjson", b'{"product_id": "p-1", "name": "Boots", "price": 10}\nnot json\n')
    report = ingest(lake, landing)
    quarantined = sum(report.quarantined.values())
    assert (report.accepted, report.reference_rows, report.duplicates, quarantined) == (3, 3, 0, 2)
    assert report.lines == report.accepted + report.reference_rows + report.duplicates + quarantined
