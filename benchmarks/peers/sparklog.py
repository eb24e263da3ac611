"""Read a Spark file-to-file query's logs: which batch took each landed file, and when it committed.

The file source logs `{"path", "timestamp", "batchId"}` per file under `<checkpoint>/sources/0/` (every
tenth batch as a compacted `N.compact` holding all earlier entries too). The parquet sink writes
`<sink>/_spark_metadata/N` (or `N.compact`) when batch N's files become visible: that file's mtime is the
batch's commit time, as `committed_at` is lakemail's.
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import unquote, urlparse


def batch_id(name: str) -> int | None:
    """`12` or `19.compact` -> the batch; None for anything else (`.12.crc`, temp files)."""
    stem = name.removesuffix(".compact")
    return int(stem) if stem.isdigit() else None


def log_files(folder: Path) -> dict[int, Path]:
    """The entries of a Spark metadata log folder by batch id (missing folder: none)."""
    if not folder.is_dir():
        return {}
    found = ((batch_id(p.name), p) for p in folder.iterdir())
    return {batch: path for batch, path in found if batch is not None}


def local_path(uri: str) -> str:
    """`file:///tmp/a%20b/x.ndjson` -> `/tmp/a b/x.ndjson`."""
    parsed = urlparse(uri)
    return unquote(parsed.path) if parsed.scheme in ("file", "") else uri


def file_batches(checkpoint: Path) -> dict[str, int]:
    """Landed file path -> the batch that read it, from the file source log."""
    batches: dict[str, int] = {}
    for _, path in sorted(log_files(checkpoint / "sources" / "0").items()):
        for line in path.read_text().splitlines()[1:]:  # line 1 is the log version, "v1"
            if line.strip():
                entry = json.loads(line)
                batches.setdefault(local_path(entry["path"]), int(entry["batchId"]))
    return batches


def commit_times(sink: Path) -> dict[int, float]:
    """Batch -> when the sink committed it (epoch seconds, the mtime of its sink log entry)."""
    return {batch: path.stat().st_mtime for batch, path in log_files(sink / "_spark_metadata").items()}


def latencies(files: list[Path], checkpoint: Path, sink: Path) -> list[float]:
    """Landed -> committed seconds for each of `files` (in order); raises if one is not committed."""
    batches, commits = file_batches(checkpoint), commit_times(sink)
    out = []
    for path in files:
        batch = batches.get(str(path))
        if batch is None or batch not in commits:
            raise RuntimeError(f"{path.name} is in no committed batch")
        out.append(commits[batch] - path.stat().st_mtime)
    return out


def uncommitted(files: list[Path], checkpoint: Path, sink: Path) -> int:
    """How many of `files` no committed batch has taken yet (the peer's backlog)."""
    batches, commits = file_batches(checkpoint), commit_times(sink)
    return sum(1 for path in files if batches.get(str(path)) not in commits)
