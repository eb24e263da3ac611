"""The `collector` figure of BENCHMARKS.md (issue #16's tracking-API targets).

`python -m benchmarks --only collector [--quick]`, three parts:

1. Throughput: `lakemail serve collector` on a loopback port, four clients posting `/v1/batch` bodies of
   100 simulator messages as fast as they are answered (benchmarks.collector_load); messages/s
   acknowledged durably (each 200 after the fsync and rename), and what each fsync costs.
2. Ack latency at 1,000 messages/s: the same clients paced to 10 batches/s in all.
3. End to end: `lakemail up` with the simulator posting through the collector (`--via-collector`) at
   1,000 events/s; per welcome email, its message acknowledged (the collector's file landed) -> the
   provider's 202.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import polars as pl

from benchmarks.collector_load import load, start_collector
from benchmarks.common import env_for, ingest_log, lake_of, lakemail, landed_files, temp_home
from benchmarks.figures import Figure
from benchmarks.stats import Target
from benchmarks.steady import free_port, system_up, wait_until, warm_up
from orchestration.settings import DEMO_WRITE_KEY
from transforms.schema import SENDS_SCHEMA

CLIENTS = 32  # concurrent keep-alive connections, as a shop's many browsers and servers make
PACED_CLIENTS = 4
BATCH = 100  # messages a batch (benchmarks.collector_load.bodies)
PACED_RATE = 1_000.0  # messages/s in the latency part
THROUGHPUT_SECONDS, QUICK_THROUGHPUT_SECONDS = 10.0, 3.0
PACED_SECONDS, QUICK_PACED_SECONDS = 20.0, 5.0
E2E_SECONDS, QUICK_E2E_SECONDS = 120.0, 30.0
FSYNC_SAMPLES = 50
FSYNC_BYTES = 512 * 1024  # about one commit group's file under load

THROUGHPUT = Target(
    "messages/s acknowledged durably (batches of 100)", 20_000, at_least=True, unit="messages/s"
)
ACK_P99 = Target("ack p99 at 1,000 messages/s", 250.0, at_least=False, unit="ms")


def fsync_ms(folder: Path) -> float:
    """Median milliseconds of write + fsync of a FSYNC_BYTES file in `folder` (the landing zone's disk)."""
    folder.mkdir(parents=True, exist_ok=True)
    payload = os.urandom(FSYNC_BYTES)
    timings = []
    for i in range(FSYNC_SAMPLES):
        path = folder / f".fsync-probe-{i}"
        with path.open("wb") as out:
            out.write(payload)
            out.flush()
            started = time.perf_counter()
            os.fsync(out.fileno())
            timings.append(time.perf_counter() - started)
        path.unlink()
    return 1000 * statistics.median(timings)


def tracking_runs(throughput_seconds: float, paced_seconds: float) -> dict[str, float]:
    """One throughput and one paced load against a fresh collector."""
    with tempfile.TemporaryDirectory(prefix="lakemail-bench-collector-") as tmp:
        home = Path(tmp)
        process, url = start_collector(home)
        try:
            fast = asyncio.run(load(url, CLIENTS, throughput_seconds, None))
            paced = asyncio.run(load(url, PACED_CLIENTS, paced_seconds, PACED_RATE / BATCH))
        finally:
            process.terminate()
            process.wait(30)
        return {
            "messages_per_s": fast["messages_per_s"],
            "fast_p99_ms": fast["p99_ms"],
            "fsyncs_per_s": fast["fsyncs_per_s"],
            "files_per_s": fast["files_per_s"],
            "refused": fast["refused"] + paced["refused"],
            "paced_messages_per_s": paced["messages_per_s"],
            "paced_p50_ms": paced["p50_ms"],
            "paced_p99_ms": paced["p99_ms"],
            "fsync_ms": fsync_ms(home / "landing"),
        }


def end_to_end(seconds: float, seed: int) -> dict[str, float]:
    """`lakemail up` fed through its collector at 1,000 events/s; welcome emails' event time -> 202."""
    with temp_home("collector-e2e") as tmp:
        home = Path(tmp)
        port = free_port()
        with system_up(home, collector_port=port):
            warm_up(home)
            url = f"http://127.0.0.1:{port}"
            argv = [
                lakemail(),
                "simulate",
                "--users",
                "10000",
                "--rate",
                "1000",
                "--duration",
                f"{seconds:g}",
                "--seed",
                str(seed),
                "--via-collector",
                url,
            ]
            env = env_for(home, LAKEMAIL_WRITE_KEY=DEMO_WRITE_KEY)
            with (home / "simulate.log").open("wb") as log:
                subprocess.run(argv, env=env, stdout=log, stderr=subprocess.STDOUT, check=True)
            landed = len(landed_files(home))
            wait_until(lambda: committed(home) >= landed, 180, "the collector's files committed")
            time.sleep(10)  # the decide lane's last runs and their sends
        sends = lake_of(home).read("sends", SENDS_SCHEMA, ["kind", "status", "landed_at", "sent_at"])
        welcome = sends.filter((pl.col("kind") == "welcome") & (pl.col("status") == "sent"))
        if welcome.height == 0:
            raise RuntimeError("no welcome email was sent in the end-to-end run")
        landed_to_sent = (welcome["sent_at"] - welcome["landed_at"]).dt.total_microseconds() / 1e6
        return {
            "landed_p50_s": float(landed_to_sent.quantile(0.5) or 0.0),
            "landed_p99_s": float(landed_to_sent.quantile(0.99) or 0.0),
            "emails": float(welcome.height),
        }


def committed(home: Path) -> int:
    log = ingest_log(home)
    return 0 if log.height == 0 else int(log["source_file"].str.starts_with("events/").sum())


ROWS = (
    ("messages_per_s", THROUGHPUT.label, "messages/s"),
    ("fast_p99_ms", "ack p99 at full throughput", "ms"),
    ("files_per_s", "landing files per second at full throughput (group commits)", "files/s"),
    ("fsyncs_per_s", "fsyncs per second at full throughput (file and folder)", "fsyncs/s"),
    ("fsync_ms", "one fsync of a 512 KB file on the landing disk (write + fsync)", "ms"),
    ("paced_messages_per_s", "messages/s acknowledged in the paced run", "messages/s"),
    ("paced_p50_ms", "ack p50 at 1,000 messages/s", "ms"),
    ("paced_p99_ms", ACK_P99.label, "ms"),
    ("refused", "batches refused (429/503) in both runs", "batches"),
)
E2E_ROWS = (
    ("landed_p50_s", "message acknowledged (its file landed) -> email accepted, p50", "s"),
    ("landed_p99_s", "message acknowledged (its file landed) -> email accepted, p99", "s"),
    ("emails", "welcome emails measured", "emails"),
)


def collector_figure(quick: bool, repeat: int, say: Callable[[str], None]) -> Figure:
    throughput_s, paced_s, e2e_s = (
        (QUICK_THROUGHPUT_SECONDS, QUICK_PACED_SECONDS, QUICK_E2E_SECONDS)
        if quick
        else (THROUGHPUT_SECONDS, PACED_SECONDS, E2E_SECONDS)
    )
    figure = Figure(
        "collector",
        "Collector: the tracking API on loopback, and events through it to the email",
        commands=[
            f"python -m benchmarks.collector_load --clients {CLIENTS} --seconds {throughput_s:g}",
            f"python -m benchmarks.collector_load --clients {PACED_CLIENTS} --seconds {paced_s:g} --rate 10",
            "lakemail up --no-simulator --collector-port <free port>   # then:",
            f"lakemail simulate --users 10000 --rate 1000 --duration {e2e_s:g} --via-collector <collector>",
        ],
    )
    runs = []
    for i in range(repeat):
        runs.append(tracking_runs(throughput_s, paced_s))
        say(f"collector {i + 1}/{repeat}: {runs[-1]['messages_per_s']:,.0f} messages/s")
    summaries = {key: figure.add(label, unit, [run[key] for run in runs]) for key, label, unit in ROWS}
    figure.check(THROUGHPUT, summaries["messages_per_s"])
    figure.check(ACK_P99, summaries["paced_p99_ms"])
    say(f"collector end to end: {e2e_s:.0f} s at 1,000 events/s")
    e2e = end_to_end(e2e_s, seed=21)
    for key, label, unit in E2E_ROWS:
        figure.add(label, unit, [e2e[key]])
    figure.notes += [
        f"Throughput and latency: {repeat} fresh collectors (default options: at most one file per 100 ms, "
        f"or sooner when full), {CLIENTS} keep-alive raw-socket clients in one process on the same 2 cores "
        "(their CPU is part of the cost); a 200 means the messages were written, fsynced and renamed into "
        "the landing zone.",
        "End to end is one run of `lakemail up` (runner lanes, sandbox provider), warmed up by one small "
        "file, fed by the realtime simulator through the collector; per welcome email, the landing of the "
        "collector file that held its identify (the moment the message was acknowledged) -> the "
        "provider's 202. Message sent -> email accepted is that plus the ack latency above (the paced "
        "run's). Event times are not used: the simulator's dirt skews device clocks.",
    ]
    return figure
