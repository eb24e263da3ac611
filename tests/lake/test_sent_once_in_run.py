"""`sends_trigger_id_sent_once` in a micro-batch reads the rows the hour's sends could be doubled by, not
the whole outbox (#17): it semi-joined every send ever made on the hour's trigger ids, so each delivery
run read the trigger id and send id of the whole history. Now it reads the rows created since the
earliest `due_at` of the hour's sends (Delta skips older files by their statistics); a double older than
that (a second decision of the trigger) is the hourly audit's and the nightly one's to find, and they do.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
from deltalake import DeltaTable

from resources.lake import LakeResource
from resources.landing import LandingResource
from stores.operations.checks import LAKE_CHECKS, evaluate
from stores.operations.probe import Probe, Scope
from transforms.operations.checks import CheckOutcome, Thresholds
from transforms.schema import SENDS_SCHEMA
from transforms.sends.message import send_id_for

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
HOUR, DAY, MIN = timedelta(hours=1), timedelta(days=1), timedelta(minutes=1)
[SENT_ONCE] = [c for c in LAKE_CHECKS if c.name == "sends_trigger_id_sent_once"]
SCOPES = {
    "in_run": Scope(batch_id=7, since=NOW - HOUR, evaluation=3),  # as assets.checks.in_run_scope
    "hourly_audit": Scope(since=NOW - HOUR),
    "nightly_audit": Scope(),
}


def sent(trigger: str, due: datetime, *, send_id: str | None = None, after: timedelta = MIN) -> dict:
    """An outbox row of `trigger` created at `due` + `after` and sent a second later."""
    created = due + after
    return {
        "send_id": send_id or send_id_for(trigger),
        "trigger_id": trigger,
        "user_id": "u-1",
        "kind": "abandoned_cart",
        "template": "abandoned_cart",
        "status": "sent",
        "attempts": 1,
        "due_at": due,
        "created_at": created,
        "sent_at": created + timedelta(seconds=1),
    }


def append(lake: LakeResource, *rows: dict) -> None:
    """One commit of `rows` (the outbox's columns, as the lake writes them: with file statistics)."""
    lake.write("sends", pl.DataFrame(list(rows), schema=SENDS_SCHEMA))


def judged(lake: LakeResource, scope: str) -> CheckOutcome:
    """The check's outcome in `scope` (one that raised: failed, with the error's type)."""
    landing = LandingResource(uri=str(lake.root))  # not read by this check
    return evaluate(SENT_ONCE, Probe(lake, landing, SCOPES[scope], Thresholds(), NOW))


def history(lake: LakeResource, days: int) -> list[str]:
    """A day a commit of sent emails, the last `days` days before the hour; the data files they wrote."""
    for day in range(days, 0, -1):
        due = NOW - day * DAY
        append(lake, *(sent(f"old-{day}-{i}", due + i * MIN) for i in range(5)))
    files = pl.DataFrame(DeltaTable(lake.table_uri("sends")).get_add_actions(flatten=True))["path"]
    return [str(Path(lake.table_uri("sends")) / path) for path in files]


def test_in_run_the_check_opens_none_of_the_files_of_earlier_sends(lake: LakeResource) -> None:
    older = history(lake, 30)
    append(lake, sent("t1", NOW - 30 * MIN), sent("t2", NOW - 20 * MIN))
    append(lake, sent("t3", NOW - 10 * MIN), sent("t1", NOW - 30 * MIN, send_id="doubled", after=25 * MIN))
    for path in older:  # a read of any of them now fails
        Path(path).unlink()

    outcome = judged(lake, "in_run")
    assert len(older) == 30 and "error" not in outcome.figures, outcome.figures
    assert not outcome.passed and outcome.figures["trigger_ids_sent_twice"] == 1
    assert outcome.figures["rows"] == 4  # the hour's sends and the double: none of the 150 earlier ones
    # the audits read the whole outbox (the window's trigger ids in it): they open the files it lost
    assert "error" in judged(lake, "hourly_audit").figures


def test_a_double_created_after_the_earliest_due_at_is_found_in_run_however_old_its_file(
    lake: LakeResource,
) -> None:
    """A row held a day (retries, an open circuit) and sent in the hour: the rows of its trigger may have
    been created at any time since its due_at, so the read reaches back that far."""
    history(lake, 3)
    due = NOW - 20 * HOUR
    append(lake, sent("held", due, send_id="first", after=MIN))  # sent at due + 1 min, 20 hours ago
    append(lake, sent("t2", NOW - 10 * MIN))
    append(lake, sent("held", due, after=20 * HOUR - 5 * MIN))  # sent again in the hour
    for scope in SCOPES:
        outcome = judged(lake, scope)
        assert not outcome.passed and outcome.figures["trigger_ids_sent_twice"] == 1, scope
    assert judged(lake, "in_run").figures["rows"] == 3


def test_a_trigger_decided_and_sent_again_days_later_is_found_by_both_audits(lake: LakeResource) -> None:
    """A second `send` decision of a trigger (which the blocking triggers check stops in the run that takes
    it) enqueues a row days after the first: outside the in-run read, found by the hourly audit (the
    window's trigger ids in the whole outbox) and the nightly one (the whole outbox)."""
    history(lake, 3)
    append(lake, sent("again", NOW - 3 * DAY - HOUR, send_id="first"))
    append(lake, sent("again", NOW - 10 * MIN), sent("t2", NOW - 5 * MIN))
    outcomes = {scope: judged(lake, scope) for scope in SCOPES}
    assert outcomes["in_run"].passed and outcomes["in_run"].figures["rows"] == 2
    for scope in ("hourly_audit", "nightly_audit"):
        assert not outcomes[scope].passed and outcomes[scope].figures["trigger_ids_sent_twice"] == 1, scope


def test_rows_without_a_due_at_are_judged_against_the_whole_outbox_in_run(lake: LakeResource) -> None:
    """An outbox row of an earlier release may lack a due_at: its trigger's rows are all read."""
    append(lake, sent("old", NOW - 5 * DAY, send_id="first"))
    again = sent("old", NOW - 10 * MIN) | {"due_at": None}
    append(lake, again)
    outcome = judged(lake, "in_run")
    assert not outcome.passed and outcome.figures["trigger_ids_sent_twice"] == 1
