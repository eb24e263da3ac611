"""Pages of a memory-mapped file dropped from this process's resident set (Linux; elsewhere a no-op).

LMDB reads through a read-only shared map of its data file: every page a lookup or a copy-on-write touches
stays mapped, and counts in the process's RSS, until the map is unmapped. A backlog's ingest looks up
and rewrites most of the event-id index at every commit (random keys), so the store's whole file ends
up mapped: about 0.5 GB of the 1M-event drain's peak RSS (#17), page cache that the kernel reclaims
only under pressure. `MADV_DONTNEED` on such a map drops the process's mappings of those pages; the next
access maps the same bytes again from the page cache (a minor fault; the file and the cache are
untouched, and a read in flight on another thread sees the same bytes).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys
from functools import cache
from pathlib import Path

log = logging.getLogger(__name__)
MADV_DONTNEED = 4
MAPS = Path("/proc/self/maps")


@cache
def _madvise() -> ctypes._NamedFuncPointer | None:
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    call = libc.madvise
    call.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    call.restype = ctypes.c_int
    return call


def mapped_ranges(file: Path, maps: str) -> list[tuple[int, int]]:
    """(start, end) of each map of `file` in a `/proc/<pid>/maps` text (a replaced file: `(deleted)`)."""
    name = str(file)
    ranges = []
    for line in maps.splitlines():
        fields = line.split(maxsplit=5)
        if len(fields) == 6 and fields[5].removesuffix(" (deleted)") == name:
            start, _, end = fields[0].partition("-")
            ranges.append((int(start, 16), int(end, 16)))
    return ranges


def release(file: Path) -> int:
    """Drop this process's resident pages of its maps of `file`; the bytes of address space advised."""
    madvise = _madvise()
    if madvise is None:
        return 0
    try:
        ranges = mapped_ranges(file.absolute(), MAPS.read_text())
    except OSError:
        return 0
    advised = 0
    for start, end in ranges:
        if madvise(start, end - start, MADV_DONTNEED) == 0:
            advised += end - start
        else:
            log.warning("madvise of a map of %s failed: errno %d", file.name, ctypes.get_errno())
    return advised
