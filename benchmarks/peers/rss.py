"""Peak memory of a process tree (python + the JVM it starts), read from /proc while it runs."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from types import TracebackType

PROC = Path("/proc")


def parents() -> dict[int, int]:
    """pid -> parent pid for every live process."""
    out = {}
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # gone since the listing
            continue
        # Field 4 is the parent; the command name (field 2) may hold spaces, so split after its ')'.
        out[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    return out


def tree(root: int, parent_of: dict[int, int] | None = None) -> set[int]:
    """`root` and all its descendants."""
    children: dict[int, list[int]] = {}
    for pid, parent in (parents() if parent_of is None else parent_of).items():
        children.setdefault(parent, []).append(pid)
    found, todo = {root}, [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def status_kb(pid: int, key: str) -> int:
    """A `key:  N kB` line of /proc/<pid>/status (VmRSS, VmHWM); 0 when the process is gone."""
    try:
        lines = (PROC / str(pid) / "status").read_text().splitlines()
    except OSError:
        return 0
    return next((int(line.split()[1]) for line in lines if line.startswith(f"{key}:")), 0)


def image(pid: int) -> tuple[str, bytes] | None:
    """Executable and command line: a fork that has not exec'd yet has its parent's (None: gone)."""
    try:
        return os.readlink(PROC / str(pid) / "exe"), (PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return None


def own_memory(root: int) -> set[int]:
    """The processes of `root`'s tree that are not a fork of their parent not yet exec'd.

    Without Hadoop's native library the JVM starts a helper process (chmod, readlink) for many file
    operations; until it execs, such a child shares the JVM's memory and reports it as its own.
    """
    parent_of = parents()
    pids = tree(root, parent_of)
    shared = {p for p in pids if p != root and image(p) in (None, image(parent_of[p]))}
    return pids - shared


class PeakRss:
    """Samples the tree under `root` every `interval` s while it runs; `.peak_mb` afterwards.

    The peak is the larger of the tree's summed VmRSS at any sample and the largest process's VmHWM
    (its kernel-tracked peak, what wait4 reports), which catches a spike between samples.
    """

    def __init__(self, root: int, interval: float = 0.25) -> None:
        self.root, self.interval = root, interval
        self.tree_kb = self.process_kb = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @property
    def peak_mb(self) -> float:
        return max(self.tree_kb, self.process_kb) / 1024

    def sample(self) -> None:
        pids = own_memory(self.root)
        self.tree_kb = max(self.tree_kb, sum(status_kb(pid, "VmRSS") for pid in pids))
        self.process_kb = max([self.process_kb, *(status_kb(pid, "VmHWM") for pid in pids)])

    def _run(self) -> None:
        while True:
            self.sample()
            if self._stop.wait(self.interval):
                return

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join()
