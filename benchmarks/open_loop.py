"""A bounded open-loop HTTP/1.1 GET load on loopback that measures the server, not itself.

Requests are due at a fixed rate whatever the answers do (open loop): request n is due at n / rate
seconds, and its latency counts from that moment, so a server that falls behind pays for the queue it
makes (no coordinated omission). Keep-alive connections, at most `connections` requests in flight (a
request waits for a free connection; the wait is in its latency). The client is raw asyncio streams
(no HTTP library's per-request work), and reports its own cost: its CPU per request and how late it
sent against the schedule. It stops by itself: every request is sent once, and the run ends at
`seconds` + GRACE_SECONDS whatever the server does (requests not answered by then are failures).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from benchmarks.stats import percentile

GRACE_SECONDS = 30.0
HEAD_LIMIT = 64 * 1024


@dataclass
class LoadResult:
    """What one open-loop run measured (latencies in ms)."""

    latencies: list[float] = field(default_factory=list)  # due -> answered, 2xx/404 answers
    service: list[float] = field(default_factory=list)  # written -> answered
    send_lag: list[float] = field(default_factory=list)  # due -> the client started it (its own lateness)
    statuses: dict[int, int] = field(default_factory=dict)
    failures: int = 0
    elapsed: float = 0.0
    client_cpu_seconds: float = 0.0

    def figures(self) -> dict[str, float]:
        sent = len(self.latencies) + self.failures
        return {
            "http_requests_per_s": sent / self.elapsed if self.elapsed else 0.0,
            "http_p50_ms": percentile(self.latencies, 50),
            "http_p99_ms": percentile(self.latencies, 99),
            "http_max_ms": max(self.latencies, default=float("nan")),
            "http_service_p99_ms": percentile(self.service, 99),
            "http_failures": float(self.failures),
            "client_send_lag_p99_ms": percentile(self.send_lag, 99),
            "client_cpu_us_per_request": 1e6 * self.client_cpu_seconds / max(1, sent),
        }


async def answer(reader: asyncio.StreamReader) -> int:
    """The status of one response, its body read (Content-Length framing, as uvicorn answers)."""
    head = await reader.readuntil(b"\r\n\r\n")
    if len(head) > HEAD_LIMIT:
        raise ValueError("response head too long")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    await reader.readexactly(length)
    return status


async def _run(
    host: str, port: int, path_of: Callable[[int], str], headers: dict[str, str],
    rate: float, seconds: float, connections: int, grace: float, result: LoadResult,
) -> None:  # fmt: skip
    idle: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
    opened: list[asyncio.StreamWriter] = []

    async def connect() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        opened.append(writer)
        idle.put_nowait((reader, writer))

    for _ in range(connections):
        await connect()
    extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())

    async def one(n: int, due: float) -> None:
        result.send_lag.append((time.perf_counter() - due) * 1000)  # the client's own lateness
        reader, writer = await idle.get()
        request = f"GET {path_of(n)} HTTP/1.1\r\nHost: {host}:{port}\r\n{extra}\r\n".encode()
        written = time.perf_counter()
        try:
            writer.write(request)
            status = await answer(reader)
        except (OSError, ValueError, asyncio.IncompleteReadError):
            result.failures += 1
            writer.close()
            with contextlib.suppress(OSError):  # else one connection fewer
                await connect()
            return
        idle.put_nowait((reader, writer))
        done = time.perf_counter()
        result.statuses[status] = result.statuses.get(status, 0) + 1
        if status < 500 and status != 401:
            result.latencies.append((done - due) * 1000)
            result.service.append((done - written) * 1000)
        else:
            result.failures += 1

    tasks, cpu, begun = [], time.process_time(), time.perf_counter()
    for n in range(int(rate * seconds)):
        due = begun + n / rate
        if (wait := due - time.perf_counter()) > 0:
            await asyncio.sleep(wait)
        tasks.append(asyncio.create_task(one(n, due)))
    _, late = await asyncio.wait(tasks, timeout=grace)
    for task in late:  # unanswered within the grace: failures
        task.cancel()
    result.failures += len(late)
    result.elapsed = time.perf_counter() - begun
    result.client_cpu_seconds = time.process_time() - cpu
    for writer in opened:
        writer.close()
    await asyncio.gather(*(w.wait_closed() for w in opened), return_exceptions=True)


def open_loop(
    host: str, port: int, path_of: Callable[[int], str], *, headers: dict[str, str],
    rate: float, seconds: float, connections: int = 32, grace: float = GRACE_SECONDS,
) -> LoadResult:  # fmt: skip
    """GET `path_of(n)` for n < rate * seconds, request n due n / rate s after the start; requests
    still unanswered `grace` s after the last is due are failures."""
    result = LoadResult()
    asyncio.run(_run(host, port, path_of, headers, rate, seconds, connections, grace, result))
    return result
