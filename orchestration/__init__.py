"""Definitions, jobs, sensors, schedules, the runner and the `lakemail` command.

Importing this package tunes Polars' allocator for the processes lakemail starts (`lakemail` and the
Dagster processes it launches inherit the environment). Polars allocates with jemalloc, configured at
its first allocation from `_RJEM_MALLOC_CONF`, so this must run before Polars is imported (Polars' import
puts its own defaults, `dirty_decay_ms:500,muzzy_decay_ms:1000`, before what it finds there, and
jemalloc takes an option's last value); a value the user set is kept instead.
`muzzy_decay_ms:0`: freed pages go back to the system (MADV_DONTNEED) after jemalloc's dirty decay
(Polars sets 500 ms) instead of being MADV_FREE'd first, as jemalloc does by default: a MADV_FREE'd page
still counts in the process's RSS until the kernel needs the memory. On the 1M-event backlog (#17) it
took the ingest's peak RSS from 2.03-2.20 GB to 1.94-2.02 GB (`stores.ingest.ingest` alone, five
paired runs; `narenas:2` on top changed nothing more). Its cost is more page faults (about 20 %), in the
run-to-run noise of the ingest's time on the reference machine.
`dirty_decay_ms:1000` (Polars sets 500): a freed page is kept a second before it goes back, so that a
commit group's frames reuse the last one's pages instead of faulting in fresh ones. The 1M-event ingest
on one pinned core beside the 500 ms one at once (as `benchmarks.pinned` runs two trees), four pairs:
CPU -0.4 to -5 % (about -3 %), peak RSS +25-40 MB. Longer goes further but costs memory: 5,000 ms saved
9-16 % of the CPU and added 340 MB to the peak, taking the backlog drain over its 2 GB target (#17).
"""

import os

ALLOCATOR = "_RJEM_MALLOC_CONF"
ALLOCATOR_SETTINGS = "muzzy_decay_ms:0,dirty_decay_ms:1000"

os.environ.setdefault(ALLOCATOR, ALLOCATOR_SETTINGS)
