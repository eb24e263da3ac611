"""The Spark Structured Streaming peer query; runs inside .venv-peers (stdlib + pyspark only).

`backlog`: one `availableNow` query over a landed folder, then exit. `steady`: a query triggered every
`--trigger-seconds` until the `--stop` file appears. Both write a JSON report of Spark's own timings;
the orchestrator (benchmarks/peers/run.py, main venv) measures wall time, memory and latency itself.
"""

from __future__ import annotations

import time

STARTED = time.perf_counter()  # before pyspark's import: startup_seconds covers it

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from pyspark.sql import DataFrame, SparkSession  # noqa: E402
from pyspark.sql import functions as F  # noqa: E402
from pyspark.sql.streaming import StreamingQuery  # noqa: E402
from pyspark.sql.types import StringType, StructField, StructType  # noqa: E402

# The landed message fields, all read as strings: Spark's JSON reader keeps an object's raw JSON text
# for a string field, as lakemail's RAW_MESSAGE_SCHEMA does with Polars.
FIELDS = (
    "messageId",
    "type",
    "event",
    "userId",
    "anonymousId",
    "timestamp",
    "sentAt",
    "receivedAt",
    "properties",
    "traits",
    "context",
)
SCHEMA = StructType([StructField(name, StringType()) for name in FIELDS])


def session(driver_memory: str, shuffle_partitions: int) -> SparkSession:
    """local[2] with a small shuffle, no UI, and checkpoint logs kept whole for the latency read-out."""
    return (
        SparkSession.builder.master("local[2]")
        .appName("lakemail-peer")
        .config("spark.driver.memory", driver_memory)
        # 200 shuffle partitions (the default) would mean 200 state stores per batch on 2 cores.
        .config("spark.sql.shuffle.partitions", str(shuffle_partitions))
        .config("spark.ui.enabled", "false")
        .config("spark.sql.session.timeZone", "UTC")
        # The orchestrator maps files to batches and batches to commit times from these logs afterwards.
        .config("spark.sql.streaming.fileSource.log.deletion", "false")
        .config("spark.sql.streaming.fileSink.log.deletion", "false")
        .config("spark.sql.streaming.minBatchesToRetain", "100000")
        .config("spark.sql.streaming.numRecentProgressUpdates", "100000")
        .getOrCreate()
    )


def events(spark: SparkSession, landing: Path) -> DataFrame:
    """Parsed, typed and deduplicated events: the work lakemail's `events` asset does, minus quarantine."""
    raw = spark.readStream.format("json").schema(SCHEMA).option("mode", "DROPMALFORMED").load(str(landing))
    required = F.col("messageId").isNotNull() & F.col("type").isNotNull() & F.col("timestamp").isNotNull()
    # No watermark: lakemail keeps messageId unique over all time, so the peer keeps every id in state.
    return (
        raw.filter(required)
        .withColumn("event_time", F.try_to_timestamp(F.col("timestamp")))
        .dropDuplicates(["messageId"])
    )


def start(frame: DataFrame, sink: Path, checkpoint: Path, trigger: dict[str, Any]) -> StreamingQuery:
    writer = frame.writeStream.format("parquet").option("checkpointLocation", str(checkpoint))
    return writer.option("path", str(sink)).trigger(**trigger).start()


def batches(query: StreamingQuery) -> list[dict[str, float]]:
    """Spark's own account of each batch that read input."""
    out = []
    for progress in query.recentProgress:
        if progress.numInputRows > 0:
            duration = float(progress.durationMs.get("triggerExecution", 0))
            out.append({"batch": progress.batchId, "rows": progress.numInputRows, "ms": duration})
    return out


def wait_for_stop(query: StreamingQuery, stop: Path) -> None:
    while not stop.exists():
        if not query.isActive:
            raise RuntimeError(f"query stopped early: {query.exception()}")
        time.sleep(0.1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("mode", choices=("backlog", "steady"))
    for name in ("--landing", "--sink", "--checkpoint", "--report"):
        parser.add_argument(name, type=Path, required=True)
    parser.add_argument("--started", type=Path, help="steady: touched once the query runs")
    parser.add_argument("--stop", type=Path, help="steady: stop once this file exists")
    parser.add_argument("--trigger-seconds", type=float, default=0.0)
    parser.add_argument("--driver-memory", default="2g")
    parser.add_argument("--shuffle-partitions", type=int, default=2)
    args = parser.parse_args(argv)
    spark = session(args.driver_memory, args.shuffle_partitions)
    spark.sparkContext.setLogLevel("WARN")
    ready = time.perf_counter()
    if args.mode == "backlog":
        query = start(events(spark, args.landing), args.sink, args.checkpoint, {"availableNow": True})
        query.awaitTermination()
    else:
        trigger = {"processingTime": f"{args.trigger_seconds:g} seconds"}
        query = start(events(spark, args.landing), args.sink, args.checkpoint, trigger)
        args.started.touch()
        wait_for_stop(query, args.stop)
        query.stop()
    done = time.perf_counter()
    report = {
        "startup_seconds": ready - STARTED,
        "query_seconds": done - ready,
        "batches": batches(query),
    }
    spark.stop()
    args.report.write_text(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
