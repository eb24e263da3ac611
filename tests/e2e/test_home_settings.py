"""Every process of one LAKEMAIL_HOME decides with what `lakemail up` chose (#13, point 17).

`up` records its decision settings in `$LAKEMAIL_HOME/settings.json`; `lakemail process` and `replay`,
started on their own with none of those variables set, decide with the same demo delays, and a
variable that says otherwise stops them at start-up.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import polars as pl

from orchestration.settings import Settings, record_decisions
from orchestration.supervisor import Plan, _environment
from tests.conftest import land, storage_env, table
from tests.story import at, message

LAKEMAIL = str(Path(sys.executable).parent / "lakemail")
ROOT = Path(__file__).resolve().parents[2]  # the child runs this checkout's code


def lakemail(settings: Settings, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    """A `lakemail` command on the home of `settings`, with no decision variable of its own."""
    env = {
        "LAKEMAIL_HOME": str(settings.home),
        "LAKEMAIL_ESP_URL": str(settings.esp_url),
        "LAKEMAIL_SECRET": "test-secret",
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(ROOT),
        **storage_env(),
        **extra,
    }
    return subprocess.run(
        [LAKEMAIL, *args], env=env, cwd=settings.home, capture_output=True, text=True, timeout=300
    )


def record_as_up_does(settings: Settings) -> None:
    """What `lakemail up` (demo delays, the default) records before it starts anything."""
    up_settings = Settings.from_env({"LAKEMAIL_HOME": str(settings.home)}, dotenv=None)
    plan = Plan(3000, 1, 1.0, False, 8025, demo_delays=True, runner=True, sandbox=False)
    env = _environment(up_settings, up_settings.dagster_home, plan)
    record_decisions(up_settings, env, demo=True)


def test_process_and_replay_decide_with_the_delays_up_recorded(settings: Settings) -> None:
    record_as_up_does(settings)
    recorded = orjson.loads((settings.home / "settings.json").read_bytes())
    assert recorded["demo"] is True
    assert recorded["variables"]["LAKEMAIL_ABANDONED_CART_DELAY"] == "2m"
    cart = message("Product Added", at(0), user="u-ann", cart_id="c1", product_id="p1", price=9.5)
    signup = message("identify", at(-60), user="u-ann", email="ann@example.com", marketing_consent=True)
    land(settings, "a.ndjson", [orjson.dumps(signup), orjson.dumps(cart)])

    done = lakemail(settings, "process", "--now", at(5).isoformat())
    assert done.returncode == 0, done.stderr[-3000:]
    carts = table(settings, "triggers").filter(pl.col("kind") == "abandoned_cart")
    # The demo's 2 minutes, not the product's hour: decided (not held) five minutes on.
    assert carts["due_at"].to_list() == [at(2)]
    assert carts["decision"].to_list() != ["held"]

    [evaluation] = carts["evaluation"].to_list()
    done = lakemail(settings, "replay", "--trigger", "abandoned_cart", "--as-of", str(evaluation))
    assert done.returncode == 0, done.stderr[-3000:]
    assert "0 decisions differ (1 then, 1 in the replay; 0 the run did not decide)" in done.stdout


def test_a_variable_that_contradicts_the_record_stops_start_up(settings: Settings) -> None:
    record_as_up_does(settings)
    done = lakemail(settings, "process", LAKEMAIL_ABANDONED_CART_DELAY="1h")
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert "LAKEMAIL_ABANDONED_CART_DELAY='1h' conflicts with '2m'" in done.stderr
    assert "settings.json" in done.stderr
    same = lakemail(settings, "process", LAKEMAIL_ABANDONED_CART_DELAY="120s")  # the recorded value
    assert same.returncode == 0, same.stderr[-3000:]
