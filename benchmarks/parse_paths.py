"""The ingest's parse alone against the honest floor, in one process (#17): `python -m
benchmarks.parse_paths <landing events folder> [repeats]`. Prints events per CPU-second (all threads;
on a loaded machine the ratios are what counts) and the ratio of each path to the floor."""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.floor import read_group
from transforms.ingest.files import process_file
from transforms.ingest.group import process_files


def paths(files: list[Path]) -> dict[str, Callable[[], object]]:
    """The measured paths over the same files' bytes."""
    named = [(str(p), p.read_bytes(), datetime.now(UTC)) for p in files]
    now = datetime.now(UTC)

    def per_file(line_by_line: bool) -> Callable[[], object]:
        def run() -> object:
            return [
                process_file(
                    d, source_file=n, landed_at=a, ingested_at=now, batch_id=1, line_by_line=line_by_line
                )
                for n, d, a in named
            ]

        return run

    def floor() -> object:
        frame, _, _ = read_group(b"".join(data for _, data, _ in named))
        with tempfile.TemporaryDirectory() as tmp:
            frame.write_parquet(Path(tmp) / "floor.parquet", compression="zstd")
        return frame

    return {
        "every line judged by orjson first (the slow path)": per_file(True),
        "process_file, file by file": per_file(False),
        "process_files, validated as a group (as the ingest does)": lambda: process_files(
            named, ingested_at=now, batch_id=1
        ),
        "honest floor (one read_ndjson, nested schema, zstd write)": floor,
    }


def main(argv: list[str]) -> int:
    files = sorted(Path(argv[0]).glob("*.ndjson"))
    repeats = int(argv[1]) if len(argv) > 1 else 3
    lines = sum(p.read_bytes().count(b"\n") for p in files)
    runs = paths(files)
    rates: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):  # interleaved: each repeat sees the same load
        for name, run in runs.items():
            started = time.process_time()
            run()
            rates[name].append(lines / (time.process_time() - started))
    floor = statistics.median(rates[list(runs)[-1]])
    print(f"{len(files)} files, {lines:,} lines, median of {repeats}")
    for name, values in rates.items():
        median = statistics.median(values)
        print(f"{median:>12,.0f} events/CPU-s  {median / floor:5.2f}x floor  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
