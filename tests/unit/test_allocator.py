"""Polars' allocator settings (orchestration/__init__.py) reach every process lakemail starts, before
Polars is loaded, and a value the user set wins."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from orchestration import ALLOCATOR, ALLOCATOR_SETTINGS

ROOT = Path(__file__).resolve().parents[2]
# What a process sees once the `lakemail` command's modules are loaded, and whether Polars was loaded
# before the setting was made (jemalloc reads it at its first allocation).
PROBE = (
    "import os, sys; import orchestration; before = 'polars' in sys.modules; import orchestration.cli; "
    f"import polars; print(os.environ.get({ALLOCATOR!r}), before)"
)


def _probe(env: dict[str, str]) -> str:
    command = [sys.executable, "-c", PROBE]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=True)
    return done.stdout.strip()


def test_the_command_sets_the_allocator_before_polars_loads() -> None:
    env = {k: v for k, v in os.environ.items() if k != ALLOCATOR}
    # Polars' import puts its own defaults first (`dirty_decay_ms:500,muzzy_decay_ms:1000`): jemalloc
    # takes the last value of an option, ours.
    setting, polars_was_loaded = _probe(env).split()
    assert setting.startswith("dirty_decay_ms:") and setting.endswith("," + ALLOCATOR_SETTINGS)
    assert polars_was_loaded == "False"


def test_a_users_allocator_setting_is_kept() -> None:
    env = {**{k: v for k, v in os.environ.items() if k != ALLOCATOR}, ALLOCATOR: "narenas:1"}
    setting, _ = _probe(env).split()
    assert setting.endswith(",narenas:1") and ALLOCATOR_SETTINGS not in setting


def test_a_child_process_inherits_the_setting() -> None:
    """A Dagster process launched by `lakemail up` sees the setting without importing anything."""
    env = {k: v for k, v in os.environ.items() if k != ALLOCATOR}
    child = f"import os; print(os.environ.get({ALLOCATOR!r}))"
    parent = f"import orchestration, subprocess, sys; subprocess.run([sys.executable, '-c', {child!r}])"
    command = [sys.executable, "-c", parent]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.strip() == ALLOCATOR_SETTINGS
