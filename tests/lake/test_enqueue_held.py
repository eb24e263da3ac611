"""`enqueue` looks up the send ids it adds in the outbox files that can hold them (#17): it read the send_id
column of every file of `sends`, every email ever sent, in each decide run. A row holding one of them was
made by an earlier enqueue of the same decision, at or after its `due_at` (`transforms.sends.rows
.held_since`), so the files of rows created before the decisions' earliest due_at are not opened."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from resources.lake import LakeResource
from stores.sends import enqueue
from transforms.schema import RUN_APP, SENDS_APP, SENDS_SCHEMA, TRIGGERS_SCHEMA
from transforms.sends.message import send_id_for
from transforms.sends.rows import held_since

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
DAY, MIN = timedelta(days=1), timedelta(minutes=1)


def decision(trigger: str, due: datetime | None) -> dict:
    """A `send` decision of engine run 1, taken a minute after `due`."""
    decided = (due or NOW - 2 * MIN) + MIN
    return {"trigger_id": trigger, "kind": "abandoned_cart", "user_id": "u-1", "principal": "u-1"} | {
        "decision": "send",
        "due_at": due,
        "decided_at": decided,
        "evaluation": 1,
    }


def outbox_row(send_id: str, created: datetime) -> dict:
    return {"send_id": send_id, "trigger_id": "t", "status": "sent", "attempts": 1, "created_at": created}


def history(lake: LakeResource, days: int) -> list[Path]:
    """A day a commit of sent emails, the last `days` days; their data files. Each file's send ids span
    every id's range (as a file of many rows does), so only `created_at` can rule one out."""
    for day in range(days, 0, -1):
        ids = [f"s-0{day:03d}", *(send_id_for(f"old-{day}-{i}") for i in range(3)), f"s-g{day:03d}"]
        rows = [outbox_row(s, NOW - day * DAY) for s in ids]
        lake.write("sends", pl.DataFrame(rows, schema=SENDS_SCHEMA))
    table = lake.table("sends")
    assert table is not None
    return [Path(uri.removeprefix("file://")) for uri in table.file_uris()]


def decide(lake: LakeResource, *decisions: dict) -> None:
    """The engine run 1 that took `decisions` (its tag, as the engine writes it)."""
    lake.write_tagged("triggers", pl.DataFrame(list(decisions), schema=TRIGGERS_SCHEMA), {RUN_APP: 1})


def test_enqueue_opens_no_file_of_earlier_rows_and_still_keeps_a_held_row(lake: LakeResource) -> None:
    older = history(lake, 30)
    decide(lake, decision("t1", NOW - 10 * MIN), decision("t2", NOW - 5 * MIN))
    # t1's row, enqueued before by a run whose tag did not land (an earlier release), and sent since
    held = outbox_row(send_id_for("t1"), NOW - 3 * MIN) | {"trigger_id": "t1"}
    lake.write("sends", pl.DataFrame([held], schema=SENDS_SCHEMA))
    for path in older:  # a read of any of them now fails
        path.unlink()

    assert enqueue(lake, provider="sandbox", now=NOW) == 2
    recent = pl.col("created_at") >= NOW - 10 * MIN
    found = lake.collect("sends", SENDS_SCHEMA, lambda rows: rows.filter(recent).sort("trigger_id"))
    assert len(older) == 30
    assert found.select("trigger_id", "status").rows() == [("t1", "sent"), ("t2", "pending")]
    assert lake.app_version("sends", SENDS_APP) == 1


def test_with_a_decision_without_a_due_at_enqueue_reads_every_file(lake: LakeResource) -> None:
    """A decision of an earlier release may lack its due_at: no bound, the whole outbox is read."""
    older = history(lake, 3)
    decide(lake, decision("t1", None), decision("t2", NOW - 5 * MIN))
    older[0].unlink()
    with pytest.raises(FileNotFoundError):
        enqueue(lake, provider="sandbox", now=NOW)


@pytest.mark.parametrize(
    ("due", "expected"),
    [
        ([NOW - MIN, NOW - 5 * MIN], NOW - 5 * MIN),
        ([NOW - MIN, None], None),
        ([], None),
    ],
)
def test_held_rows_are_created_since_the_least_due_at(due: list[datetime | None], expected: datetime) -> None:
    rows = pl.DataFrame({"due_at": due}, schema={"due_at": SENDS_SCHEMA["due_at"]})
    assert held_since(rows) == expected
