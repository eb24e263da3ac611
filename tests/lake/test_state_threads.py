"""A store opened in one thread while another thread's commit is in flight never deadlocks the process.

Found in the runner (the Prometheus e2e hung in CI and locally, 2026-12-05): a `/metrics` scrape built a
`LmdbStore` (opening its named databases began a write transaction, which waits for LMDB's writer lock
holding the GIL) while the ingest's store commit, inside its write transaction, waited for the GIL to
pack its next value: the runner froze for good. The scenario runs in a child process so that a deadlock
fails the test by its timeout instead of hanging the suite.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

CHILD = r"""
import sys, threading
from resources.state import StateResource
from resources.state_lmdb import LmdbStore, open_environment
from transforms.state import StateChanges

state = StateResource(uri=sys.argv[1])
store = state.store()
inside, go = threading.Event(), threading.Event()
original = StateChanges.ordered_puts

def paused(self, namespace):  # the commit pauses inside its write transaction, as a slow pack would
    for number, pair in enumerate(original(self, namespace)):
        if number == 1:
            inside.set()
            go.wait()
        yield pair

StateChanges.ordered_puts = paused
changes = StateChanges()
for number in range(4):
    changes.put("profiles", f"u{number}", b"x" * 3000)
committing = threading.Thread(target=store.commit, args=(1, changes))
committing.start()
inside.wait()
for _ in range(3):  # what a scrape, a lookup and the other lane do meanwhile
    LmdbStore(open_environment(state.path, create=False))
    state.existing().stamps()
go.set()
committing.join()
print("stamps", state.stamps())
"""


def test_opening_the_store_during_a_commit_in_another_thread_does_not_deadlock(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[2]
    argv = [sys.executable, "-c", CHILD, str(tmp_path / "state")]
    try:
        done = subprocess.run(argv, cwd=root, capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        raise AssertionError("deadlocked: a store opened during another thread's commit") from None
    assert done.returncode == 0, done.stderr[-2000:]
    assert "'ingest': 1" in done.stdout
