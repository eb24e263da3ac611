"""The state store rebuilt from a lake that real micro-batches wrote (issue #15): every namespace holds
what the lake does, `check` finds a row changed by hand, a store ahead of the lake, and a rebuild is
deterministic."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from orchestration.cli import main
from orchestration.instance import PG_URL_VARIABLE
from orchestration.process import process_once
from orchestration.settings import Settings
from resources.lake import LakeResource
from resources.state import StateResource
from resources.state_lmdb import close_environment
from simulator.run import run_simulation
from stores.profiles import state_for
from stores.state.namespaces import VALUE_SCHEMAS
from stores.state.rebuild import check, rebuild
from stores.triggers_pending import pending_rows
from tests.conftest import NO_CAPTURE
from transforms.principals import is_anonymous
from transforms.profiles.state import PARTIAL_SCHEMA, canonical
from transforms.schema import (
    CATALOG_SCHEMA,
    EVENTS_SCHEMA,
    IDENTITIES_SCHEMA,
    INGEST_LOG_SCHEMA,
    PENDING_DECISIONS,
    TRIGGERS_SCHEMA,
)
from transforms.state import NAMESPACES, StateChanges, decode

START = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


# One module-scoped lake for the module's tests, built on one worker (make test runs --dist loadgroup).
pytestmark = pytest.mark.xdist_group("state_rebuild")


@pytest.fixture(scope="module")
def processed_home(tmp_path_factory: pytest.TempPathFactory, shared_sandbox: str) -> Path:
    """A home after two micro-batches of simulated shoppers (partials and decisions span batches), made
    once per module; each test works on a copy (`processed`). Its Dagster storage is SQLite of its own:
    the runs that made it are not what these tests look at."""
    home = tmp_path_factory.mktemp("processed")
    made = Settings(
        home=home, lake_uri=str(home / "lake"), landing_uri=str(home / "landing"), esp_url=shared_sandbox
    )
    (home / "dagster_home").mkdir()
    with pytest.MonkeyPatch.context() as env:  # what the function-scoped fixtures give a test
        env.setenv("LAKEMAIL_SECRET", "test-secret")
        env.delenv(PG_URL_VARIABLE, raising=False)
        _process_twice(made)
    close_environment(Path(made.state_store_uri))
    return home


def _process_twice(made: Settings) -> None:
    home = made.home
    with dg.instance_for_test(
        temp_dir=str(home / "dagster_home"), overrides={"compute_logs": NO_CAPTURE}
    ) as instance:
        for seed, offset in ((4, 0), (5, 5)):
            run_simulation(
                home / "landing", users=40, rate=400, duration=3, seed=seed, realtime=False, start=START
            )
            now = START.replace(minute=offset).isoformat()
            assert process_once(made, instance, now=now)["status"] == "SUCCESS"


@pytest.fixture
def processed(processed_home: Path, settings: Settings, lake: LakeResource) -> LakeResource:
    """This test's copy of the processed home's lake, landing zone and state store."""
    for part in ("lake", "landing"):
        shutil.copytree(processed_home / part, settings.home / part)
    store = processed_home / "state"  # the default state_store_uri, as this test's settings have it
    shutil.copytree(store, Path(settings.state_store_uri), ignore=shutil.ignore_patterns("lock.mdb"))
    assert lake.committed_batch() >= 2
    return lake


def dump(state: StateResource) -> dict[str, list[tuple[str, bytes]]]:
    store = state.store()
    return {name: list(store.scan(name)) for name in NAMESPACES}


def keys(state: StateResource, namespace: str) -> set[str]:
    return {k for k, _ in state.store().scan(namespace)}


def test_rebuild_holds_what_the_lake_holds_in_every_namespace(
    processed: LakeResource, state: StateResource
) -> None:
    lake = processed
    counts = rebuild(lake, state)
    assert counts == state.store().counts() and set(counts) == set(NAMESPACES)
    assert state.stamps()["ingest"] == lake.committed_batch()
    events = lake.read("events", EVENTS_SCHEMA, ["event_id"])["event_id"]
    assert keys(state, "event_ids") == set(events) and events.n_unique() == events.len() > 0
    assert keys(state, "landed_files") == set(lake.read("ingest_log", INGEST_LOG_SCHEMA)["source_file"])
    pending = pending_rows(lake)  # trigger_state (a checkpoint) and the log after it
    assert keys(state, "pending_triggers") == set(pending["trigger_id"]) and pending.height > 0
    assert {k.split("|")[1] for k in keys(state, "pending_due")} == set(pending["trigger_id"])
    log = lake.read("triggers", TRIGGERS_SCHEMA)
    terminal = log.filter(~pl.col("decision").is_in(PENDING_DECISIONS))
    assert keys(state, "decided_triggers") == set(terminal["trigger_id"])
    sent = log.filter(pl.col("decision") == "send")["user_id"].drop_nulls()
    assert keys(state, "recent_sends") == set(sent)
    assert keys(state, "catalog") == set(lake.read("catalog", CATALOG_SCHEMA)["product_id"])
    links = lake.read("identities", IDENTITIES_SCHEMA)
    assert keys(state, "identity_links") == {"anon:" + a for a in links["anonymous_id"]} | {
        "user:" + u for u in links["user_id"]
    }
    catalog = decode([v for _, v in state.store().scan("catalog")], VALUE_SCHEMAS["catalog"])
    assert catalog.sort("product_id").equals(lake.read("catalog", CATALOG_SCHEMA).sort("product_id"))


def test_profile_state_in_the_store_is_the_profile_stores_state(
    processed: LakeResource, state: StateResource
) -> None:
    rebuild(processed, state)
    expected, _ = state_for(processed, None)
    stored = decode([v for _, v in state.store().scan("profiles")], PARTIAL_SCHEMA)
    users = [p for p in expected["principal"] if not is_anonymous(p)]
    assert len(users) > 10 and stored.height == expected.height
    mine, theirs = state_for(processed, users[:5])[0], stored.filter(pl.col("principal").is_in(users[:5]))
    assert canonical(theirs).sort("principal").equals(canonical(mine).sort("principal"))
    assert canonical(stored).sort("principal").equals(canonical(expected).sort("principal"))


def test_check_finds_a_row_changed_by_hand_and_a_store_ahead_of_the_lake(
    processed: LakeResource, state: StateResource
) -> None:
    rebuild(processed, state)
    assert check(processed, state).equal
    [(key, _)] = list(state.store().scan("profiles", limit=1))
    changed = StateChanges()
    changed.put("profiles", key, b'{"principal": "tampered"}')
    changed.delete("event_ids", next(iter(keys(state, "event_ids"))))
    state.commit(processed.committed_batch(), changed)
    report = check(processed, state)
    assert not report.equal and not report.ahead
    assert {n for n, d in report.namespaces.items() if not d.equal} == {"profiles", "event_ids"}
    assert (report.namespaces["profiles"].different, report.namespaces["event_ids"].missing) == (1, 1)
    state.commit(processed.committed_batch() + 1, StateChanges())  # a lake restored from an older backup
    ahead = check(processed, state)
    assert ahead.ahead == ["ingest"] and any("must be rebuilt" in line for line in ahead.summary())
    rebuild(processed, state)
    assert check(processed, state).equal


def test_rebuilding_twice_gives_identical_store_contents(
    processed: LakeResource, state: StateResource
) -> None:
    rebuild(processed, state)
    first = dump(state)
    rebuild(processed, state)
    assert dump(state) == first and sum(map(len, first.values())) > 1000


def test_lakemail_state_check_exits_0_when_equal_and_1_with_a_summary_when_not(
    processed: LakeResource,
    state: StateResource,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("LAKEMAIL_HOME", str(settings.home))
    monkeypatch.chdir(settings.home)
    close_environment(state.path)  # the micro-batches made one: gone, as a lost store folder
    shutil.rmtree(state.path)
    assert main(["state", "check"]) == 1
    assert "no state store" in capsys.readouterr().out
    assert main(["state", "rebuild"]) == 0
    printed = capsys.readouterr().out
    assert "event_ids" in printed and "peak RSS" in printed
    assert main(["state", "check"]) == 0
    changed = StateChanges()
    changed.delete("catalog", next(iter(keys(state, "catalog"))))
    state.commit(processed.committed_batch(), changed)
    assert main(["state", "check"]) == 1
    assert "catalog: lake" in capsys.readouterr().out
