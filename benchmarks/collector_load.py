"""A bounded loopback load test of the collector (issue #16): batches of 100 simulated Segment messages
from a few concurrent clients for a fixed time; requests/s, messages/s, p50/p99 of the 200, fsyncs/s.

    python -m benchmarks.collector_load [--clients 4] [--seconds 10] [--rate REQUESTS_PER_S] [--url URL]

Without --url it starts `lakemail serve collector` on a free 127.0.0.1 port over a temporary home
(default options: 100 ms commit window). Loopback only; the load stops after --seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

from benchmarks.open_loop import answer
from benchmarks.steady import free_port
from simulator.dirt import Dirt
from simulator.shoppers import ShopperSimulator

KEY = "bench-write-key"
ROOT = Path(__file__).resolve().parent.parent


def bodies(count: int, size: int = 100) -> list[bytes]:
    """`count` `/v1/batch` bodies of `size` realistic messages each (the simulator's, no dirt)."""
    now = datetime.now(UTC)
    sim = ShopperSimulator(users=2_000, seed=1, start=now, dirt=Dirt.none())
    return [
        b'{"batch":[' + b",".join(line.data for line in sim.step(now, size)) + b"]}" for _ in range(count)
    ]


async def client(
    url: str, payloads: list[bytes], until: float, interval: float | None, out: list[float]
) -> int:
    """Send batches on one keep-alive connection until `until` (every `interval` s when given); the 200s'
    latencies go to `out`. Raw asyncio streams (as benchmarks.open_loop): the load generator shares the
    2 cores with the collector, so its own cost per request is kept to a fraction of the server's."""
    host, _, port = url.removeprefix("http://").partition(":")
    auth = base64.b64encode(f"{KEY}:".encode()).decode()
    heads = [
        (
            f"POST /v1/batch HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Basic {auth}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        for body in payloads
    ]
    failed = 0
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        n, next_at = 0, time.monotonic()
        while time.monotonic() < until:
            if interval is not None:
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))
                next_at += interval
            started = time.perf_counter()
            writer.write(heads[n % len(heads)])
            writer.write(payloads[n % len(payloads)])
            status = await answer(reader)
            if status == 200:
                out.append(time.perf_counter() - started)
            else:
                failed += 1
            n += 1
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    return failed


async def load(url: str, clients: int, seconds: float, rate: float | None) -> dict[str, float]:
    payloads = bodies(50)
    async with httpx.AsyncClient(base_url=url) as http:
        before = (await http.get("/health")).json()
    latencies: list[float] = []
    interval = clients / rate if rate else None
    started = time.monotonic()
    until = started + seconds
    failed = await asyncio.gather(
        *(client(url, payloads, until, interval, latencies) for _ in range(clients))
    )
    elapsed = time.monotonic() - started
    async with httpx.AsyncClient(base_url=url) as http:
        after = (await http.get("/health")).json()
    ordered = sorted(latencies)
    return {
        "requests_per_s": len(ordered) / elapsed,
        "messages_per_s": (after["messages"] - before["messages"]) / elapsed,
        "p50_ms": 1000 * statistics.median(ordered),
        "p99_ms": 1000 * ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))],
        "files_per_s": (after["files"] - before["files"]) / elapsed,
        "fsyncs_per_s": (after["fsyncs"] - before["fsyncs"]) / elapsed,
        "refused": float(sum(failed)),
    }


def start_collector(
    home: Path, extra_env: dict[str, str] | None = None, wait_seconds: float = 60
) -> tuple[subprocess.Popen[bytes], str]:
    """`lakemail serve collector` on a free loopback port of `home`, once its /health answers 200."""
    port = free_port()
    env = {**os.environ, "LAKEMAIL_HOME": str(home), "LAKEMAIL_WRITE_KEY": KEY, "PYTHONPATH": str(ROOT)}
    env |= extra_env or {}
    argv = [sys.executable, "-m", "orchestration.cli", "serve", "collector", "--port", str(port)]
    process = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + wait_seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return process, url
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    process.kill()
    raise RuntimeError("the collector did not start")


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.collector_load", description=__doc__)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument(
        "--rate", type=float, help="requests per second in all (default: as fast as answered)"
    )
    parser.add_argument("--url", help=f"a running collector (its write key must be {KEY})")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="collector-load-") as home:
        process, url = (None, args.url) if args.url else start_collector(Path(home))
        try:
            figures = asyncio.run(load(url, args.clients, min(args.seconds, 120.0), args.rate))
        finally:
            if process is not None:
                process.terminate()
                process.wait(30)
    for name, value in figures.items():
        print(f"{name:>16}: {value:,.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
