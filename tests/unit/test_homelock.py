"""One `lakemail up` per home: the lock file, its message, and a child that keeps dying (#13)."""

from __future__ import annotations

import os
from collections import deque
from pathlib import Path

import pytest

from orchestration import homelock
from orchestration.children import DEATH_WINDOW_S, MAX_DEATHS, keeps_dying


def test_a_held_home_names_the_pid_holding_it_and_is_free_once_released(tmp_path: Path) -> None:
    with homelock.acquire(tmp_path):
        with pytest.raises(homelock.HomeInUse) as caught:
            homelock.acquire(tmp_path)  # another open file: flock refuses it as it would another process
        assert caught.value.pid == os.getpid()
        assert f"{tmp_path} is in use by lakemail up (pid {os.getpid()})" in str(caught.value)
        assert (tmp_path / homelock.LOCK_NAME).read_text() == f"{os.getpid()}\n"
    homelock.acquire(tmp_path).close()


def test_a_lock_file_without_a_pid_still_says_the_home_is_in_use(tmp_path: Path) -> None:
    error = homelock.HomeInUse(tmp_path, None)
    assert str(error).startswith(f"{tmp_path} is in use by another lakemail up;")


@pytest.mark.parametrize(
    ("deaths", "gives_up"),
    [
        ([], False),
        ([0.0, 1.0], False),
        ([0.0, 1.0, DEATH_WINDOW_S - 1], True),  # MAX_DEATHS within the window: broken
        ([0.0, 1.0, DEATH_WINDOW_S + 1], False),  # spread out: only unlucky (a kill, a crash)
        ([0.0, 100.0, 101.0, 102.0], True),
    ],
)
def test_a_child_is_restarted_until_it_dies_too_often_too_fast(deaths: list[float], gives_up: bool) -> None:
    assert MAX_DEATHS == 3
    assert keeps_dying(deque(deaths, maxlen=MAX_DEATHS)) is gives_up
