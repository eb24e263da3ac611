"""Where a backlog drain's CPU goes, by thread and by library: `perf record` of `lakemail process` (#17).

py-spy sees Python threads only. Polars works on threads of its own (its rayon workers, and the async
executor that runs `read_ndjson`), delta-rs on tokio workers, jemalloc purges on a thread of its own, and
the kernel's share (page faults from allocation churn) shows in none of them. `perf` samples every thread
of the child, so its shares add up to the CPU the drain used. Linux only: it needs `perf` and leave to
sample one's own processes (`kernel.perf_event_paranoid` <= 2).

    python -m benchmarks.cpu_profile [--events 1000000] [--landing DIR] [--top 25]

Prints Markdown tables (shares of all samples of the child): thread groups, libraries, and the top
symbols. `perf report -i <data> --sort comm,dso,sym` on the kept data file answers more.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from benchmarks.common import env_for, lakemail, run_child, simulate, temp_home
from benchmarks.figures import Table
from benchmarks.microbatch import sandbox
from benchmarks.run import BACKLOG_SEED

# Thread name prefix -> what runs there; every other thread is the interpreter's (named after the command).
THREAD_GROUPS = (
    ("polars-", "Polars' rayon workers (frame work: filters, sorts, joins, decodes)"),
    ("async-executor", "Polars' async executor (`read_ndjson`)"),
    ("tokio-rt-worker", "delta-rs' tokio workers (Parquet encoding and writes)"),
    ("jemalloc_bg_thd", "jemalloc's purge thread (memory given back)"),
)
PYTHON_THREADS = "Python threads (with the Polars, LMDB and delta-rs calls they make)"
SAMPLE_HZ = 499
_SHARE = re.compile(r"^\s*([\d.]+)%\s+(.+?)\s*$")


def shares(report: str) -> dict[str, float]:
    """{key: percent} from the text of `perf report --stdio` sorted by one key (comment lines skipped)."""
    found: dict[str, float] = {}
    for line in report.splitlines():
        if line.startswith("#") or not (match := _SHARE.match(line)):
            continue
        key = match.group(2)
        found[key] = found.get(key, 0.0) + float(match.group(1))
    return found


def thread_groups(by_thread: dict[str, float]) -> dict[str, float]:
    """Thread shares summed per THREAD_GROUPS entry (perf cuts names at 15 characters), the rest Python's."""
    grouped = {label: 0.0 for _, label in THREAD_GROUPS} | {PYTHON_THREADS: 0.0}
    for name, share in by_thread.items():
        label = next((label for prefix, label in THREAD_GROUPS if name.startswith(prefix)), PYTHON_THREADS)
        grouped[label] += share
    return grouped


def table(title: str, rows: dict[str, float], top: int | None = None) -> str:
    """`rows` largest first (the `top` ones) as the Markdown table `make bench` writes."""
    ordered = sorted(rows.items(), key=lambda item: -item[1])[:top]
    cells = [[name.replace("|", "/"), f"{share:.1f}"] for name, share in ordered]
    return "\n".join(Table(f"By {title}:", [title, "% of the drain's CPU samples"], cells).markdown())


def perf_report(data: Path, sort: str) -> str:
    argv = ["perf", "report", "-i", str(data), "--sort", sort, "--stdio"]
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout


def record(landing: Path, data: Path) -> float:
    """`lakemail process` on a copy of `landing` under `perf record`; returns the child's wall seconds."""
    with temp_home("cpu-profile") as tmp:
        home = Path(tmp)
        shutil.copytree(landing, home / "landing")
        with sandbox(home) as mail:
            argv = ["perf", "record", "-F", str(SAMPLE_HZ), "-o", str(data), "--", lakemail(), "process"]
            result = run_child(argv, env_for(home, **mail), home / "process.log")
        if result.returncode != 0:
            raise RuntimeError(
                f"lakemail process under perf exited {result.returncode}:\n{result.output[-2000:]}"
            )
        return result.seconds


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="simulated events (without --landing)")
    parser.add_argument("--landing", type=Path, help="a landing folder to drain instead of simulating one")
    parser.add_argument("--top", type=int, default=25, help="symbols listed")
    parser.add_argument(
        "--out", type=Path, default=Path("data/cpu-profile.perf"), help="perf's data file (kept)"
    )
    args = parser.parse_args(argv)
    if shutil.which("perf") is None:
        print("perf is not installed (linux-tools): nothing measured", file=sys.stderr)
        return 2
    with temp_home("cpu-source") as tmp:
        landing = args.landing
        if landing is None:
            simulate(Path(tmp), args.events, BACKLOG_SEED)  # `make bench`'s backlog
            landing = Path(tmp) / "landing"
        seconds = record(landing, args.out.absolute())
    print(f"`lakemail process` under `perf record -F {SAMPLE_HZ}`: {seconds:.1f} s wall\n")
    print(table("thread group", thread_groups(shares(perf_report(args.out, "comm")))), end="\n\n")
    print(table("library", shares(perf_report(args.out, "dso")), top=10), end="\n\n")
    print(table("symbol", shares(perf_report(args.out, "sym")), top=args.top))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
