"""Two source trees' ingest of one backlog, side by side on pinned cores: a steadier A/B than runs in turn.

This machine's speed swings 20-30 % within minutes (the same code's ingest took 29-39 s within six), so
runs in turn cannot tell a 5 % change. Here both trees ingest the same landed backlog at the same time,
each pinned to its own core (Polars sizes its pools to the one core it may use), then again with the
cores swapped: whatever slows the machine slows both. Compare their CPU seconds (user + sys): on one
core that is the work itself, without the two-core run's overlap. One tree against itself (#17): new/old
0.98 and 1.07 in two pairs, where the same code's walls in turn spread 30 %; a pair still moves a few
per cent, so a change of a few per cent needs several pairs.

    python -m benchmarks.pinned OLD_TREE NEW_TREE [--pairs 2] [--events 1000000] [--source HOME]

A tree is a checkout of lakemail (`git worktree add /tmp/old <commit>`); its code is put first on the
child's PYTHONPATH, the environment's packages are shared. Needs two cores or more.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

SEED = 7
ALLOCATOR = "_RJEM_MALLOC_CONF"  # Polars' jemalloc settings: each tree's `orchestration` sets its own
USER_ALLOCATOR = os.environ.get(ALLOCATOR)  # read before any import here could set it


def child(home: Path, source: Path) -> None:
    """Ingest `source`'s landing zone into a fresh lake and store under `home`; print one result line."""
    shutil.rmtree(home, ignore_errors=True)
    shutil.copytree(source / "landing", home / "landing")
    import orchestration  # noqa: F401  (first: it sets the allocator as `lakemail` runs it)
    from resources.lake import LakeResource
    from resources.landing import LandingResource
    from resources.state import StateResource
    from stores.ingest import ingest

    started = time.perf_counter()
    report = ingest(
        LakeResource(uri=str(home / "lake")),
        LandingResource(uri=str(home / "landing")),
        state=StateResource(uri=str(home / "state")),
        secret="pinned",
    )
    wall = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(
        f"RESULT wall={wall:.2f} cpu={usage.ru_utime + usage.ru_stime:.2f} rss={usage.ru_maxrss / 1024:.0f}"
        f" lines={report.lines} accepted={report.accepted}"
    )


def _start(tree: Path, core: int, home: Path, source: Path) -> subprocess.Popen[str]:
    from benchmarks.common import env_for

    env = {k: v for k, v in env_for(home).items() if k != ALLOCATOR}
    env["PYTHONPATH"] = str(tree.resolve())
    if USER_ALLOCATOR is not None:
        env[ALLOCATOR] = USER_ALLOCATOR
    # This file run as a script: the old tree need not have it, and the child imports only the tree's code.
    argv = [sys.executable, __file__, "--child", str(home), "--source", str(source)]
    return subprocess.Popen(
        argv,
        env=env,
        cwd=tree,
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: os.sched_setaffinity(0, {core}),
    )


def _result(process: subprocess.Popen[str]) -> dict[str, float]:
    out, _ = process.communicate()
    line = next((x for x in out.splitlines() if x.startswith("RESULT ")), None)
    if process.returncode != 0 or line is None:
        raise RuntimeError(f"a pinned child failed (exit {process.returncode}):\n{out[-2000:]}")
    return {k: float(v) for k, v in (item.split("=") for item in line.split()[1:])}


def compare(
    old: Path, new: Path, source: Path, pairs: int, work: Path
) -> list[tuple[dict[str, float], dict[str, float]]]:
    """`pairs` runs of both trees at once, the old one on core 0 then 1 alternately, the new on the other."""
    cores = sorted(os.sched_getaffinity(0))[:2]
    if len(cores) < 2:
        raise SystemExit("benchmarks.pinned needs two cores")
    results = []
    for pair in range(pairs):
        first, second = (cores[0], cores[1]) if pair % 2 == 0 else (cores[1], cores[0])
        a = _start(old, first, work / "old", source)
        b = _start(new, second, work / "new", source)
        results.append((_result(a), _result(b)))
        old_run, new_run = results[-1]
        print(
            f"pair {pair + 1}: old (core {first}) cpu {old_run['cpu']:.1f} s, wall {old_run['wall']:.1f} s, "
            f"rss {old_run['rss']:.0f} MB | new (core {second}) cpu {new_run['cpu']:.1f} s, "
            f"wall {new_run['wall']:.1f} s, rss {new_run['rss']:.0f} MB | new/old cpu "
            f"{new_run['cpu'] / old_run['cpu']:.3f}",
            flush=True,
        )
        if old_run["accepted"] != new_run["accepted"]:
            print(f"  accepted counts differ: {old_run['accepted']:.0f} vs {new_run['accepted']:.0f}")
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.pinned", description=__doc__.split("\n")[0])
    parser.add_argument("old", nargs="?", type=Path)
    parser.add_argument("new", nargs="?", type=Path)
    parser.add_argument("--pairs", type=int, default=2)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--source", type=Path, help="a home with a landed backlog (else one is simulated)")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
        return child(args.child, args.source)
    if args.old is None or args.new is None:
        parser.error("give the old and the new tree")
    from benchmarks.common import remove_tree, simulate, temp_home

    with temp_home("pinned") as tmp:
        work = Path(tmp)
        source = args.source
        if source is None:
            source = work / "source"
            print(f"simulating {args.events:,} events", flush=True)
            simulate(source, args.events, SEED)
        results = compare(args.old, args.new, source, args.pairs, work)
        remove_tree(work / "old")
        remove_tree(work / "new")
    ratios = [new["cpu"] / old["cpu"] for old, new in results]
    print(
        f"new/old cpu: median {statistics.median(ratios):.3f} (min {min(ratios):.3f}, max {max(ratios):.3f})"
    )


if __name__ == "__main__":
    main()
