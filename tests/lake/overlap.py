"""Work overlapping a test's own, in a thread of its own, held until it waits on a lake lock or ends: the
instant another writer would find the lock taken, with no timing window."""

from __future__ import annotations

import fcntl
import threading
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest

import resources.lake_locks


class Overlapping:
    """`work` in a thread of its own: `start` returns once it waits on a lake lock someone holds, or ends."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, work: Callable[[], Any]) -> None:
        self.work, self.result = work, None
        self.error: BaseException | None = None
        self.stopped, self.waited = threading.Event(), False
        self.thread = threading.Thread(target=self._run, daemon=True)
        real = fcntl.flock

        def flock(fd: int, operation: int) -> None:
            if operation == fcntl.LOCK_EX and threading.current_thread() is self.thread:
                try:
                    return real(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:  # held by another: say so, then wait for it
                    self.waited = True
                    self.stopped.set()
            return real(fd, operation)

        shim = SimpleNamespace(flock=flock, LOCK_EX=fcntl.LOCK_EX, LOCK_UN=fcntl.LOCK_UN)
        monkeypatch.setattr(resources.lake_locks, "fcntl", shim)

    def _run(self) -> None:
        try:
            self.result = self.work()
        except BaseException as error:  # handed to `join`
            self.error = error
        finally:
            self.stopped.set()

    def start(self) -> Overlapping:
        self.thread.start()
        assert self.stopped.wait(120), "the overlapping work neither ended nor waited on a lock"
        return self

    def join(self) -> Any:
        self.thread.join(120)
        assert not self.thread.is_alive(), "the overlapping work never ended"
        if self.error is not None:
            raise self.error
        return self.result
