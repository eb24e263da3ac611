"""The in-run checks of the decide lane judge what the run committed, at the run's `now` (found by review).

`triggers_terminal_decision_unique` read only the decisions of the last wall-clock hour, so a run that
decided a trigger again that an earlier run had decided (a welcome sent at noon, decided again at 3 p.m.)
passed: the earlier decision was outside the hour. And the in-run windows were the wall clock's, not the
run's: a run at `--now` three weeks back judged the sends of the hour before today's wall clock, none of
the run's own (a trigger sent twice passed `sends_trigger_id_sent_once`).
"""

from __future__ import annotations

from typing import Any

import dagster as dg
import polars as pl
from deltalake import write_deltalake

from orchestration.definitions import build_defs
from orchestration.jobs import MICROBATCH_JOB, microbatch_config
from orchestration.settings import Settings
from resources.lake import LakeResource
from resources.state import StateResource, StateStore
from stores.state.namespaces import VALUE_SCHEMAS
from tests.conftest import table
from tests.dagster.sends_harness import SHOPPERS, signups
from tests.story import at
from transforms.schema import PENDING_DECISIONS, RUN_APP
from transforms.state import StateChanges, encode

FIRST, SECOND = SHOPPERS[0], SHOPPERS[1]


class DoublingLake(LakeResource):
    """The real lake, but the engine run's `triggers` commit also decides `doubled` again, as an engine
    that missed its earlier decision would: a second terminal row, stamped with this run's evaluation, and
    indexed in the state store as that engine's commit would index it."""

    doubled: str
    state_uri: str

    def write_tagged(self, name: str, frame: pl.DataFrame, tags: dict[str, int], **kwargs: Any) -> None:
        if name == "triggers" and frame.height:
            log = pl.read_delta(self.table_uri("triggers"))
            earlier = log.filter(
                (pl.col("trigger_id") == self.doubled) & ~pl.col("decision").is_in(PENDING_DECISIONS)
            ).head(1)
            again = earlier.with_columns(
                pl.lit(frame["decided_at"].max()).alias("decided_at"),
                pl.lit(tags[RUN_APP]).cast(pl.Int64).alias("evaluation"),
            )
            frame = pl.concat([frame, again.select(frame.columns)])
            index_again(StateResource(uri=self.state_uri).store(), again)
        super().write_tagged(name, frame, tags, **kwargs)


def index_again(store: StateStore, again: pl.DataFrame) -> None:
    """`again` put in `decided_triggers` under its own engine run (put last-wins, this overwrote the first
    decision's entry, and the in-run check, finding this run's in the index, passed)."""
    changes = StateChanges()
    schema = VALUE_SCHEMAS["decided_triggers"]
    changes.put_many("decided_triggers", encode(again.lazy(), pl.col("trigger_id"), schema).collect())
    store.commit(store.stamps()["triggers"], changes, lane="triggers")


def run(
    settings: Settings, instance: dg.DagsterInstance, minutes: float, lake: LakeResource | None = None
) -> dg.ExecuteInProcessResult:
    job = build_defs(settings, lake=lake).resolve_job_def(MICROBATCH_JOB)
    config = microbatch_config(None, 64, at(minutes).isoformat())
    return job.execute_in_process(instance=instance, run_config=config, raise_on_error=False)


def check(result: dg.ExecuteInProcessResult, name: str) -> dg.AssetCheckEvaluation:
    [found] = [e for e in result.get_asset_check_evaluations() if e.check_name == name]
    return found


def welcome_of(settings: Settings, user: str) -> str:
    decided = table(settings, "triggers").filter(
        (pl.col("user_id") == user) & (pl.col("kind") == "welcome") & (pl.col("decision") == "send")
    )
    [trigger_id] = decided["trigger_id"].unique().to_list()
    return str(trigger_id)


def test_a_trigger_decided_again_hours_after_its_first_decision_fails_in_run(
    settings: Settings, instance: dg.DagsterInstance
) -> None:
    signups(settings, [FIRST])
    first = run(settings, instance, 0)
    assert first.success and check(first, "triggers_terminal_decision_unique").passed
    doubled = welcome_of(settings, FIRST)

    signups(settings, [SECOND], name="later.ndjson")  # three hours on, the engine decides again
    lake = DoublingLake(uri=settings.lake_uri, doubled=doubled, state_uri=settings.state_store_uri)
    second = run(settings, instance, 180, lake=lake)

    outcome = check(second, "triggers_terminal_decision_unique")
    assert not outcome.passed
    assert outcome.metadata["decided_before"].value == 1
    assert outcome.metadata["not_in_state_store"].value == 0  # found through the store's index
    assert not second.success  # blocking: the run's sends wait
    log = table(settings, "triggers").filter(pl.col("trigger_id") == doubled)
    assert log.filter(~pl.col("decision").is_in(PENDING_DECISIONS)).height == 2  # what the check saw


def test_a_clean_run_after_hours_passes_and_reads_only_its_own_decisions(
    settings: Settings, instance: dg.DagsterInstance
) -> None:
    signups(settings, [FIRST])
    assert run(settings, instance, 0).success
    signups(settings, [SECOND], name="later.ndjson")
    second = run(settings, instance, 180)
    outcome = check(second, "triggers_terminal_decision_unique")
    assert second.success and outcome.passed
    assert outcome.metadata["rows"].value == 1  # the run's one welcome decision, not the whole log


def test_the_in_run_windows_are_the_run_s_now_not_the_wall_clock(
    settings: Settings, instance: dg.DagsterInstance
) -> None:
    signups(settings, [FIRST])
    assert run(settings, instance, 0).success  # the welcome is sent at the run's now, T0
    sends = table(settings, "sends")
    assert sends.height == 1 and sends["status"].to_list() == ["sent"]
    doubled = sends.with_columns(pl.lit("doubled-send").alias("send_id"))  # the trigger sent twice
    write_deltalake(LakeResource(uri=settings.lake_uri).table_uri("sends"), doubled.to_arrow(), mode="append")

    later = run(settings, instance, 10)  # ten minutes on, on the run's clock (weeks behind the wall's)
    outcome = check(later, "sends_trigger_id_sent_once")
    assert not outcome.passed and outcome.metadata["trigger_ids_sent_twice"].value == 1
