"""A store opened in one thread while another thread's commit is in flight never deadlocks the process.

Found in the runner (the Prometheus e2e hung in CI and locally, 2026-12-05): a `/metrics` scrape built a
`LmdbStore` (opening its named databases began a write transaction, which waits for LMDB's writer lock
holding the GIL) while the ingest's store commit, inside its write transaction, waited for the GIL to
pack its next value: the runner froze for good. The scenario runs in a child process so that a deadlock
fails the test by its timeout instead of hanging the suite.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from resources.state import StateResource

# A store whose commit pauses inside its write transaction until `go` is set (a child's first lines).
PAUSED_COMMIT = r"""
import sys, threading
from resources.state import StateResource
from transforms.state import StateChanges

state = StateResource(uri=sys.argv[1])
store = state.store()
inside, go = threading.Event(), threading.Event()
original = StateChanges.ordered_puts

def paused(self, namespace):  # paused inside its write transaction until `go`, as a slow pack would
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
"""

CHILD = (
    PAUSED_COMMIT
    + r"""
from resources.state_lmdb import LmdbStore, open_environment
for _ in range(3):  # what a scrape, a lookup and the other lane do meanwhile
    LmdbStore(open_environment(state.path, create=False))
    state.existing().stamps()
go.set()
committing.join()
print("stamps", state.stamps())
"""
)


def test_opening_the_store_during_a_commit_in_another_thread_does_not_deadlock(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[2]
    argv = [sys.executable, "-c", CHILD, str(tmp_path / "state")]
    try:
        done = subprocess.run(argv, cwd=root, capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        raise AssertionError("deadlocked: a store opened during another thread's commit") from None
    assert done.returncode == 0, done.stderr[-2000:]
    assert "'ingest': 1" in done.stdout


HOLDER = (
    PAUSED_COMMIT
    + r"""
print("inside", flush=True)
with open(sys.argv[2]) as fifo:  # blocks until the other process opens it to write
    fifo.read()
go.set()
committing.join()
print("committed", flush=True)
"""
)

OPENER = r"""
import sys, threading
from resources.state import StateResource

state = StateResource(uri=sys.argv[1])
started, opened = threading.Event(), []

def open_store():
    started.set()
    opened.append(state.existing())  # this process's first open: its named databases

opener = threading.Thread(target=open_store)
opener.start()
started.wait()
opener.join(0.5)  # needs the GIL: never returns while the opener waits holding it
waited = opener.is_alive()
with open(sys.argv[2], "w") as fifo:  # the other process's commit goes on
    fifo.write("go")
opener.join()
print("waited" if waited else "did not wait", "stamps", opened[0].stamps())
"""


def test_opening_the_store_during_another_process_commit_leaves_this_process_running(tmp_path: Path) -> None:
    """The collector's profile API opening the store during the runner's commit: the opening waits for the
    commit, the process's other threads do not (before, opening the named databases waited for LMDB's
    writer lock holding the GIL; here that deadlocks: the thread that lets the commit go on never runs)."""
    root = Path(__file__).resolve().parents[2]
    uri, fifo = str(tmp_path / "state"), tmp_path / "go"
    StateResource(uri=uri).store()  # the store exists, as the runner made it
    os.mkfifo(fifo)
    with subprocess.Popen(
        [sys.executable, "-c", HOLDER, uri, str(fifo)], cwd=root, stdout=subprocess.PIPE, text=True
    ) as holder:
        try:
            assert holder.stdout is not None
            assert holder.stdout.readline().strip() == "inside"
            opener = [sys.executable, "-c", OPENER, uri, str(fifo)]
            try:
                done = subprocess.run(opener, cwd=root, capture_output=True, text=True, timeout=30)
            except subprocess.TimeoutExpired:
                raise AssertionError("stalled: opening the store held the GIL through a commit") from None
            assert done.returncode == 0, done.stderr[-2000:]
            assert done.stdout.startswith("waited"), done.stdout  # it waited for the commit, on one thread
            assert "'ingest': 1" in done.stdout  # and sees it
            assert holder.wait(timeout=30) == 0
        finally:
            holder.kill()
