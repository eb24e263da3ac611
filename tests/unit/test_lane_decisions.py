"""The decide lane's rule (#15): a run for a batch the engine has not seen, for decisions not yet in the
outbox, or for something due; one request per engine run and batch; none while a decide run is in flight."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from orchestration.lanes import DecideWork, decide_now

NOW = datetime(2026, 12, 2, 12, tzinfo=UTC)
IDLE = DecideWork(committed=4, considered=4, evaluation=9, enqueued=9, due=None)


def test_nothing_new_nothing_due_is_a_skip() -> None:
    decision = decide_now(IDLE, in_flight=False, now=NOW)
    assert decision.run_key is None and "no batch" in (decision.skip_reason or "")


def test_a_committed_batch_the_engine_has_not_seen_starts_a_run_keyed_by_batch_and_engine_run() -> None:
    work = DecideWork(committed=5, considered=4, evaluation=9, enqueued=9, due=None)
    decision = decide_now(work, in_flight=False, now=NOW)
    assert decision.run_key == "decide-b5-e9" and decision.files == ()
    assert decide_now(work, in_flight=False, now=NOW).run_key == decision.run_key
    after = DecideWork(committed=6, considered=4, evaluation=9, enqueued=9, due=None)
    assert decide_now(after, in_flight=False, now=NOW).run_key == "decide-b6-e9"


def test_decisions_not_in_the_outbox_start_a_run() -> None:
    work = DecideWork(committed=4, considered=4, evaluation=9, enqueued=8, due=None)
    assert decide_now(work, in_flight=False, now=NOW).run_key == "decide-b4-e9"


def test_something_due_starts_a_run_once_it_is_due() -> None:
    due = NOW + timedelta(minutes=5)
    work = DecideWork(committed=4, considered=4, evaluation=9, enqueued=9, due=due)
    assert decide_now(work, in_flight=False, now=NOW).run_key is None
    decision = decide_now(work, in_flight=False, now=due)
    assert decision.run_key == f"decide-b4-e9-due-{due.isoformat()}"


def test_a_decide_run_in_flight_is_waited_for() -> None:
    work = DecideWork(committed=5, considered=4, evaluation=9, enqueued=8, due=NOW)
    decision = decide_now(work, in_flight=True, now=NOW)
    assert decision.run_key is None and "in flight" in (decision.skip_reason or "")
