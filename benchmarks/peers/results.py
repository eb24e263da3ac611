"""What a peer run measured, as committed in results.json: typed, and readable without pyspark."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1
DEFAULT_PATH = Path(__file__).resolve().parent / "results.json"


@dataclass(frozen=True)
class PeerBacklogRun:
    """One repeat of the backlog: a fresh query over the same landed files, `availableNow`."""

    lines: int  # landed lines, the same denominator as lakemail's backlog drain
    wall_seconds: float  # the whole child: interpreter, JVM and session start, query, stop
    query_seconds: float  # query start to termination, as the child timed it
    startup_seconds: float  # child start to a ready SparkSession
    peak_rss_mb: float  # sum over the child's process tree (python + JVM), sampled
    rows_written: int  # rows in the parquet sink afterwards
    batches: int

    @property
    def events_per_s(self) -> float:
        return self.lines / self.wall_seconds

    @property
    def query_events_per_s(self) -> float:
        return self.lines / self.query_seconds


@dataclass(frozen=True)
class PeerSteadyRun:
    """One repeat of the steady load: a running query fed by the realtime simulator."""

    seed: int
    latencies: list[float]  # landed (file mtime) -> committed (sink log entry of its batch), seconds
    backlog: list[int]  # landed files of no committed batch, sampled every few seconds
    batch_seconds: list[float]  # triggerExecution of each batch that read input, as Spark reports it
    peak_rss_mb: float

    @property
    def files(self) -> int:
        return len(self.latencies)


@dataclass(frozen=True)
class PeerResults:
    """A peer's measurements with the context needed to read them next to lakemail's."""

    peer: str
    date: str  # when the file was written
    quick: bool
    machine: dict[str, str]
    measured: dict[str, str]  # "backlog", "steady" -> when, by which command, under what machine load
    versions: dict[str, str]
    settings: dict[str, str]
    commands: dict[str, list[str]]  # "backlog", "steady"
    notes: list[str]
    backlog_events: int
    steady_seconds: float
    backlog: list[PeerBacklogRun] = field(default_factory=list)
    steady: list[PeerSteadyRun] = field(default_factory=list)
    schema: int = SCHEMA_VERSION


def to_json(results: PeerResults) -> str:
    return json.dumps(asdict(results), indent=1) + "\n"


def from_dict(data: dict[str, Any]) -> PeerResults:
    if data.get("schema") != SCHEMA_VERSION:
        raise ValueError(f"peer results schema {data.get('schema')!r}, expected {SCHEMA_VERSION}")
    runs = {"backlog": PeerBacklogRun, "steady": PeerSteadyRun}
    parsed = {key: [kind(**run) for run in data.get(key, [])] for key, kind in runs.items()}
    return PeerResults(**{**data, **parsed})


def load_results(path: Path = DEFAULT_PATH) -> PeerResults | None:
    """The peer results at `path`, or None when no peer run has been recorded there."""
    if not path.is_file():
        return None
    return from_dict(json.loads(path.read_text()))
