"""`lakemail erase` prints a summary of the certificate: a few lines whatever the erasure touched (#13)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from transforms.erasure.person import InvalidUserId, check_user_id
from transforms.erasure.records import ErasureCertificate, TableErasure, certificate_summary
from transforms.spec import MAX_LINE_BYTES


def certificate(remaining: int, unreadable: list[str]) -> ErasureCertificate:
    """A big erasure: 300 landing files, 400 old Delta files (the JSON runs to thousands of lines)."""
    return ErasureCertificate(
        request_id="erasure-1",
        request_source="erasure/x.json",
        user_key="k" * 64,
        erased_at=datetime(2026, 11, 22, tzinfo=UTC),
        anonymous_ids=3,
        emails=1,
        made_ids=4,
        tables=[
            TableErasure("events", "erased", "delete", 900, 4, 6, [f"part-{i}" for i in range(400)]),
            TableErasure("sends", "erased", "rewrite", 2, 1, 2, [], [], remaining),
            TableErasure("profiles", "missing table"),
        ],
        landing_files={f"events/f{i}.ndjson": 3 for i in range(300)},
        landing_unreadable=unreadable,
        erased_events=900,
        suppressions_added=2,
    )


def test_a_passing_erasure_is_summed_up_in_a_few_lines() -> None:
    cert = certificate(0, [])
    assert len(cert.to_json().splitlines()) > 700
    assert certificate_summary(cert).splitlines() == [
        "erasure erasure-1: PASSED: no trace left",
        "  tables:   3 checked, 902 rows removed from 2, 0 rows remaining",
        "  linked:   3 anonymous ids, 1 emails, 4 trigger and send ids",
        "  landing:  900 lines blanked in 300 files, 0 lines remaining, 0 unreadable",
        "  history:  400 old Delta files removed, 0 rows remaining in old versions",
        "  logs:     0 log files scrubbed, 0 log lines remaining",
        "  kept:     900 erased events as daily counts, 2 suppressions added",
        "  certificate: the `erasures` table, request_id erasure-1 (--json prints it)",
    ]


def test_a_failing_erasure_names_where_traces_are_left() -> None:
    lines = certificate_summary(certificate(2, ["events/bad.ndjson.gz"])).splitlines()
    assert lines[0] == "erasure erasure-1: FAILED: traces left (see below)"
    assert "  remaining in: sends (2)" in lines
    assert "  unreadable landing files: events/bad.ndjson.gz" in lines


def test_rows_left_in_old_versions_fail_the_erasure_and_are_named() -> None:
    cert = certificate(0, [])
    cert.tables.append(TableErasure("trigger_state", "erased", "vacuum", 0, 3, 5, ["part-x"], [[0, 2]], 0, 4))
    cert.checks = {"tables": {"trigger_state": 0}, "history": {"trigger_state": 0, "ingest_log": 0}}
    assert cert.passed
    history = "  history:  401 old Delta files removed (with 4 rows only old versions held), 0 rows remaining"
    assert f"{history} in old versions" in certificate_summary(cert).splitlines()
    cert.checks["history"]["ingest_log"] = 2  # a table the erasure keeps read the person in an old version
    lines = certificate_summary(cert).splitlines()
    assert not cert.passed and lines[0] == "erasure erasure-1: FAILED: traces left (see below)"
    assert "  remaining in old versions: ingest_log (2)" in lines
    again = ErasureCertificate.from_json(cert.to_json())
    assert again.tables[-1].old_rows == 4 and not again.passed


@pytest.mark.parametrize("user_id", ["", " ", "\t\n", "x" * (MAX_LINE_BYTES + 1), "ü" * 16513])
def test_an_erasure_cannot_be_about_an_empty_or_overlong_id(user_id: str) -> None:
    with pytest.raises(InvalidUserId):
        check_user_id(user_id)
    assert check_user_id("u-1") == "u-1"


@pytest.mark.parametrize("user_id", ["x" * 257, "ü" * 300, "x" * MAX_LINE_BYTES, "ü" * (MAX_LINE_BYTES // 2)])
def test_an_erasure_takes_any_user_id_a_landed_line_can_hold(user_id: str) -> None:
    """Ids over 256 characters were refused, though the ingest takes any a line holds (found by review)."""
    assert check_user_id(user_id) == user_id
