"""The `profile_api` figure of BENCHMARKS.md (issue #16's profile API target, issue #15's store lookup).

`python -m benchmarks --only profile_api [--quick]`: a store of 1M shoppers (10,000 with --quick), the
lookup measured in process, then `lakemail serve collector` under an open-loop load of 500 requests/s
on each route (benchmarks.open_loop, its own cost reported beside).
"""

from __future__ import annotations

from collections.abc import Callable

from benchmarks.figures import Figure
from benchmarks.profile_api import measure
from benchmarks.stats import Target

SHOPPERS, QUICK_SHOPPERS = 1_000_000, 10_000
RATE = 500.0
SECONDS, QUICK_SECONDS = 20.0, 5.0
HTTP_P99 = Target("GET /v1/profiles/{user_id} p99 at 500 requests/s", 10.0, at_least=False, unit="ms")
LOOKUP_P99 = Target("store lookup p99 (one shopper, cold, in process)", 1.0, at_least=False, unit="ms")
ROWS = (
    ("profile_http_p50_ms", "GET /v1/profiles/{user_id} p50 at 500 requests/s", "ms"),
    ("profile_http_p99_ms", HTTP_P99.label, "ms"),
    ("profile_http_max_ms", "GET /v1/profiles/{user_id} max", "ms"),
    ("profile_http_requests_per_s", "GET /v1/profiles/{user_id} requests/s sent", "requests/s"),
    ("profile_http_failures", "GET /v1/profiles/{user_id} failures", "requests"),
    ("profile_server_cpu_us_per_request", "server CPU per profile request", "us"),
    ("profile_client_cpu_us_per_request", "load client CPU per request (its own cost)", "us"),
    ("profile_client_send_lag_p99_ms", "load client lateness against its schedule, p99", "ms"),
    ("content_http_p50_ms", "GET /v1/profiles/{user_id}/content p50 at 500 requests/s", "ms"),
    ("content_http_p99_ms", "GET /v1/profiles/{user_id}/content p99 at 500 requests/s", "ms"),
    ("content_http_failures", "GET /v1/profiles/{user_id}/content failures", "requests"),
    ("content_server_cpu_us_per_request", "server CPU per content request", "us"),
    ("cold_p50_ms", "store lookup p50 (one shopper, cold, in process)", "ms"),
    ("cold_p99_ms", LOOKUP_P99.label, "ms"),
)


def profile_api_figure(quick: bool, repeat: int, say: Callable[[str], None]) -> Figure:
    shoppers, seconds = (QUICK_SHOPPERS, QUICK_SECONDS) if quick else (SHOPPERS, SECONDS)
    say(f"profile API: {shoppers:,} shoppers, {repeat} x {seconds:.0f} s per route at {RATE:.0f}/s")
    runs = measure(shoppers, RATE, seconds, repeat)
    figure = Figure(
        "profile_api",
        f"Profile API: lookups at {RATE:.0f} requests/s with {shoppers:,} shoppers in the store",
        commands=[f"python -m benchmarks.profile_api --shoppers {shoppers} --seconds {seconds:.0f}"],
    )
    summaries = {key: figure.add(label, unit, [run[key] for run in runs]) for key, label, unit in ROWS}
    figure.check(HTTP_P99, summaries["profile_http_p99_ms"])
    figure.check(LOOKUP_P99, summaries["cold_p99_ms"])
    figure.notes.append(
        "Latency counts from each request's due time in an open loop (a server that falls behind pays for "
        "its queue); keep-alive loopback connections, at most 32 in flight. The server derives a profile in "
        "plain Python (`transforms.profiles.one`); `/content` builds the email's content with the send "
        "stage's `build_content` (Polars per cart). On a shared machine, the CPU rows say more than the "
        "latencies: 500 requests/s need 500 x the server's CPU per request of one core."
    )
    return figure
