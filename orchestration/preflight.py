"""What `lakemail up` checks before it starts anything: the ports its parts will listen on are free.

Before, a taken port (another `lakemail up` in another home has the runners' metrics ports; the demo's
8000 is often taken) was found by the part itself: `up` printed "lakemail is up", the part crash-looped
and `up` stopped with only "see .../logs/collector.log" (found by QA).
"""

from __future__ import annotations

import socket

MAX_PORT = 65535


def planned_ports(
    *, webserver: int | None, collector: int, sandbox: int | None, metrics: int | None
) -> list[tuple[int, str]]:
    """(port, whose and which option sets it) for each part that will listen (None: not started)."""
    ports = [(collector, "the collector's (--collector-port)")]
    if webserver is not None:
        ports.append((webserver, "the Dagster UI's (--port)"))
    if sandbox is not None:
        ports.append((sandbox, "the email sandbox's (--sandbox-port)"))
    if metrics is not None:  # one runner per lane, on this port and the next
        ports.append((metrics, "the ingest runner's /metrics (--metrics-port)"))
        ports.append((metrics + 1, "the decide runner's /metrics (--metrics-port + 1)"))
    return ports


def port_problems(ports: list[tuple[int, str]], host: str = "127.0.0.1") -> list[str]:
    """Why each port of `ports` cannot be listened on: beyond the range, planned twice, or in use."""
    problems, seen = [], dict[int, str]()
    for port, whose in ports:
        if port > MAX_PORT:
            problems.append(f"port {port}, {whose}, is beyond {MAX_PORT}")
        elif port in seen:
            problems.append(f"port {port} is both {seen[port]} and {whose}")
        elif not _free(host, port):
            problems.append(f"port {port}, {whose}, is in use on {host}")
        seen.setdefault(port, whose)
    return problems


def _free(host: str, port: int) -> bool:
    """Whether a server could listen on `host:port` now. As the servers do (uvicorn, http.server), with
    SO_REUSEADDR: a port an earlier run left in TIME_WAIT is free, one with a listener is not."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
            probe.listen(1)
        except OSError:
            return False
    return True
