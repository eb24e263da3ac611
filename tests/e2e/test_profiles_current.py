"""`profiles` always current (#15 acceptance): after one `lakemail process` of a backlog, `lakemail sql`
counts every known shopper in `profiles`, and a cart change in the next batch shows in the next answer;
`profiles_job` writes the `profiles` Delta table from the state store, tagged with its batch."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import orjson
import polars as pl

from orchestration.definitions import build_defs
from orchestration.settings import Settings
from resources.lake import LakeResource
from resources.landing import LandingResource
from simulator.run import run_simulation
from stores.state.refresh import PROFILES_APP
from transforms.schema import CUSTOMERS_SCHEMA, EVENTS_SCHEMA

REPO = Path(__file__).resolve().parents[2]
START = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


def lakemail(home: Path, *args: str) -> str:
    env = {"LAKEMAIL_HOME": str(home), "PATH": os.environ["PATH"], "PYTHONPATH": str(REPO)}
    env |= {"LAKEMAIL_SECRET": "test-secret", "DAGSTER_HOME": str(home / "dagster_home")}
    done = subprocess.run(
        [sys.executable, "-m", "orchestration.cli", *args],
        env=env,
        cwd=home,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def answer(home: Path, query: str) -> list[dict[str, object]]:
    return list(orjson.loads(lakemail(home, "sql", query, "--format", "json")))


def test_profiles_are_current_after_one_process_and_move_with_the_next_batch(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / "dagster_home").mkdir(parents=True)
    run_simulation(home / "landing", users=120, rate=600, duration=4, seed=7, realtime=False, start=START)
    lakemail(home, "process")
    lake = LakeResource(uri=str(home / "lake"))
    known = set(lake.read("events", EVENTS_SCHEMA)["user_id"].drop_nulls())
    known |= set(lake.read("customers", CUSTOMERS_SCHEMA)["user_id"])
    [row] = answer(home, "select count(*) as n from profiles")
    assert row["n"] == len(known) > 10

    shopper = sorted(known)[0]
    where = f"where user_id = '{shopper}'"
    [before] = answer(home, f"select cart_value, cart_items from profiles {where}")
    added = {"type": "track", "event": "Product Added", "userId": shopper, "messageId": "m-cart-change"}
    added |= {"timestamp": "2026-11-22T11:00:00Z"}
    added["properties"] = {"product_id": "p-new", "cart_id": "c-new", "price": 1234.5, "quantity": 1}
    LandingResource(uri=str(home / "landing")).land("events/cart-change.ndjson", orjson.dumps(added) + b"\n")
    lakemail(home, "process")
    [after] = answer(home, f"select cart_value, cart_items from profiles {where}")
    assert after != before and after["cart_value"] == 1234.5

    # The Delta table for other readers: written by profiles_job from the store, tagged with the batch.
    settings = Settings(home=home, lake_uri=str(home / "lake"), landing_uri=str(home / "landing"))
    result = build_defs(settings).resolve_job_def("profiles_job").execute_in_process()
    assert result.success
    table = pl.read_delta(lake.table_uri("profiles"))
    assert table.height == len(known) and lake.app_version("profiles", PROFILES_APP) == lake.committed_batch()
    assert table.filter(pl.col("user_id") == shopper)["cart_value"].item() == 1234.5
