"""The state store under SIGKILL (issue #15): a writer killed mid-commit leaves the last committed batch,
and a reader in another process never sees half a batch."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from resources.state import StateResource
from resources.state_lmdb import close_environment

ROOT = Path(__file__).resolve().parents[2]
KEYS = 50_000  # every batch rewrites all of them: a commit takes long enough to be killed inside
# `customers`: a namespace put last-wins (`event_ids` keeps the first put, transforms.state.FIRST_PUT_WINS)
# Commits batch after batch: each sets every key (and one marker key of its own) to its batch number.
WRITER = f"""
import sys
from resources.state import StateResource
from transforms.state import StateChanges
state = StateResource(uri=sys.argv[1])
number = state.stamps()["ingest"]
while True:
    number += 1
    changes = StateChanges()
    for i in range({KEYS}):
        changes.put("customers", f"m-{{i:06d}}", str(number).encode())
    changes.put("landed_files", f"batch-{{number}}", b"1")
    print(number, flush=True)  # about to commit `number`
    state.commit(number, changes)
"""


def writer(uri: str) -> subprocess.Popen[str]:
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    args = [sys.executable, "-c", WRITER, uri]
    return subprocess.Popen(args, env=env, stdout=subprocess.PIPE, text=True)


def consistent(state: StateResource) -> int:
    """The stamp, after asserting that the store holds exactly that batch, whole."""
    store = state.store()
    stamp = store.stamps()["ingest"]
    values = set(store.get_many("customers", [f"m-{i:06d}" for i in range(KEYS)]).values())
    assert values == ({str(stamp).encode()} if stamp else set())
    assert store.counts()["landed_files"] == stamp
    assert store.get_many("landed_files", [f"batch-{stamp + 1}"]) == {}
    return stamp


def test_sigkill_mid_commit_leaves_the_previous_batch_whole(tmp_path: Path) -> None:
    state = StateResource(uri=str(tmp_path / "state"))
    rng = random.Random(15)
    stamps = []
    for _ in range(6):
        process = writer(state.uri)
        assert process.stdout is not None
        process.stdout.readline()  # it is committing a batch now
        time.sleep(rng.uniform(0.0, 0.6))
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        process.stdout.close()
        close_environment(state.path)  # read the file afresh, as a restarted process would
        stamps.append(consistent(state))
    assert stamps == sorted(stamps) and stamps[-1] >= 2


def test_a_reader_in_another_process_sees_whole_batches_while_the_writer_commits(tmp_path: Path) -> None:
    state = StateResource(uri=str(tmp_path / "state"))
    process = writer(state.uri)
    assert process.stdout is not None
    try:
        while int(process.stdout.readline()) < 2:  # batch 1 committed
            pass
        store, seen = state.store(), set[bytes]()
        keys = [f"m-{i:06d}" for i in range(KEYS)]
        deadline = time.monotonic() + 20
        while len(seen) < 3 and time.monotonic() < deadline:
            values = set(store.get_many("customers", keys).values())  # one read: one batch, whole
            assert len(values) == 1
            seen |= values
            assert int(values.pop()) <= store.stamps()["ingest"]
        assert len(seen) >= 3, f"the writer committed too slowly to be watched: {seen}"
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
        process.stdout.close()
