"""`lakemail state rebuild|check`: make the state store from the lake alone / compare the two."""

from __future__ import annotations

import resource
import sys
import time

from orchestration.settings import Settings
from resources.lake import LakeResource
from resources.state import StateResource
from stores.state.rebuild import check, rebuild
from transforms.state import StateError


def _resources(settings: Settings) -> tuple[LakeResource, StateResource]:
    return LakeResource(uri=settings.lake_uri), StateResource(uri=settings.state_store_uri)


def rebuild_command(settings: Settings) -> int:
    """Rebuild; print keys per namespace, the stamps, the time taken and the peak RSS."""
    lake, state = _resources(settings)
    started = time.perf_counter()
    try:
        with lake.writer_lock():  # both lanes (#15): no batch or engine run commits while it is rebuilt
            counts = rebuild(lake, state)
    except StateError as error:
        print(f"lakemail state: {error}", file=sys.stderr)
        return 2
    seconds = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    width = max(map(len, counts))
    for namespace, n in counts.items():
        print(f"{namespace:<{width}}  {n:>12,}")
    stamps = state.stamps()
    size_mb = state.store().size_bytes() / 2**20
    print(f"stamps: batch {stamps['ingest']}, engine run {stamps['triggers']}; {size_mb:,.1f} MB")
    print(f"rebuilt {state.path} in {seconds:.2f} s, peak RSS {peak_mb:,.0f} MB")
    return 0


def check_command(settings: Settings) -> int:
    """0 when the store equals what the lake implies; 1 with one line per difference."""
    lake, state = _resources(settings)
    try:
        report = check(lake, state)
    except StateError as error:
        print(f"lakemail state: {error}", file=sys.stderr)
        return 2
    if report.equal:
        total = sum(d.store for d in report.namespaces.values())
        print(f"state store equals the lake: batch {report.lake_stamps['ingest']}, {total:,} keys")
        return 0
    print("state store differs from the lake:")
    for line in report.summary():
        print(f"  {line}")
    return 1
