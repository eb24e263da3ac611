"""The floor: what the same landing files cost with nothing but a read, and with Polars alone."""

from __future__ import annotations

import io
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import orjson
import polars as pl

from transforms.spec import RAW_MESSAGE_SCHEMA


@dataclass(frozen=True)
class FloorRun:
    read_mb_per_s: float
    rows_per_s: float
    rows: int
    files: int
    files_with_bad_lines: int
    dropped_lines: int


def plain_read(files: Sequence[Path]) -> tuple[int, float]:
    """Bytes read and seconds taken, reading each file whole."""
    started = time.perf_counter()
    total = 0
    for path in files:
        with path.open("rb") as handle:
            total += len(handle.read())
    return total, time.perf_counter() - started


def parseable_lines(data: bytes) -> tuple[bytes, int]:
    """The lines of `data` that are JSON objects, and how many were dropped (the cheapest fallback)."""
    kept: list[bytes] = []
    dropped = 0
    for line in data.splitlines():
        try:
            ok = isinstance(orjson.loads(line), dict)
        except orjson.JSONDecodeError:
            ok = False
        if ok:
            kept.append(line)
        else:
            dropped += int(bool(line.strip()))
    return b"\n".join(kept) + b"\n", dropped


def read_file(path: Path) -> tuple[pl.DataFrame, int]:
    """One landing file as a frame, and the lines dropped (only when a plain read_ndjson fails)."""
    try:
        return pl.read_ndjson(path, schema=RAW_MESSAGE_SCHEMA), 0
    except pl.exceptions.PolarsError:
        clean, dropped = parseable_lines(path.read_bytes())
        return pl.read_ndjson(io.BytesIO(clean), schema=RAW_MESSAGE_SCHEMA), dropped


def parse_and_write(files: Sequence[Path], out: Path) -> FloorRun:
    """read_ndjson with the explicit schema + write_parquet, file by file; plain-read rate alongside."""
    size, read_seconds = plain_read(files)
    out.mkdir(parents=True, exist_ok=True)
    rows = bad = dropped = 0
    started = time.perf_counter()
    for path in files:
        frame, lost = read_file(path)
        frame.write_parquet(out / f"{path.stem}.parquet")
        rows += frame.height
        bad += int(lost > 0)
        dropped += lost
    seconds = time.perf_counter() - started
    return FloorRun(size / 1e6 / read_seconds, rows / seconds, rows, len(files), bad, dropped)
