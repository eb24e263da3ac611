"""The profile API's lookup latency (issue #16: p99 <= 10 ms at 500 requests/s with 1M shoppers).

    python -m benchmarks.profile_api [--shoppers 1000000] [--rate 500] [--seconds 20] [--quick]

Builds a temporary home: a simulated shop through the real ingest and `lakemail state rebuild`'s code,
then the store filled up to --shoppers profiles (the simulated shoppers' stored values under new ids,
so every value is a real one). Measures, on uniformly random shoppers (cold: the API's cache of derived
profiles rarely helps at 1M), first in this process (`ProfileStore.profile`: store reads + derivation),
then through `lakemail serve collector` on a free loopback port at a fixed open-loop --rate.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

from benchmarks.collector_load import start_collector
from benchmarks.open_loop import open_loop
from benchmarks.stats import percentile
from resources.lake import LakeResource
from resources.landing import LandingResource
from resources.state import StateResource
from services.collector.profile_store import ProfileStore
from simulator.run import run_simulation
from stores.ingest import ingest
from stores.state.rebuild import rebuild
from transforms.principals import user_of

KEY = "bench-profile-api-key-0123456789"
PROFILE, CONTENT = "/v1/profiles/{user_id}", "/v1/profiles/{user_id}/content"
CHUNK = 100_000


def build_store(home: Path, shoppers: int) -> tuple[StateResource, list[str]]:
    """A store of `shoppers` known users' profiles (and CRM rows where the simulation has them)."""
    landing, lake = LandingResource(uri=str(home / "landing")), LakeResource(uri=str(home / "lake"))
    start = datetime.now(UTC).replace(microsecond=0)
    run_simulation(landing.root, users=2_000, rate=2_000, duration=10, seed=3, realtime=False, start=start)
    ingest(lake, landing)
    state = StateResource(uri=str(home / "state"))
    rebuild(lake, state)
    store = state.store()
    seeds = [(k, v) for k, v in store.scan("profiles") if user_of(k) == k]
    crm = dict(store.scan("customers"))
    users = [f"bench-{n:07d}" for n in range(max(0, shoppers - len(seeds)))]
    for first in range(0, len(users), CHUNK):
        profiles, customers = [], []
        for n, user in enumerate(users[first : first + CHUNK], start=first):
            key, value = seeds[n % len(seeds)]
            quoted = b'"%s"' % key.encode()
            profiles.append((user, value.replace(quoted, b'"%s"' % user.encode(), 1)))
            if key in crm:
                customers.append((user, crm[key].replace(quoted, b'"%s"' % user.encode(), 1)))
        store.load("profiles", profiles)
        store.load("customers", customers)
    return state, [k for k, _ in seeds] + users


def in_process(state: StateResource, users: list[str], lookups: int) -> dict[str, float]:
    """p50/p99 (ms) of `ProfileStore.profile` on random shoppers, cold, then one shopper again and again
    (the API looks each request's shopper up on its own: no batching of waiting lookups any more)."""
    store, pick = ProfileStore(state, secret="bench"), random.Random(1)
    cold: list[float] = []
    for _ in range(lookups):
        user = pick.choice(users)
        started = time.perf_counter()
        assert store.profile(user) is not None
        cold.append((time.perf_counter() - started) * 1000)
    warm: list[float] = []
    for _ in range(lookups):
        started = time.perf_counter()
        store.profile(users[0])
        warm.append((time.perf_counter() - started) * 1000)
    return {
        "cold_p50_ms": percentile(cold, 50),
        "cold_p99_ms": percentile(cold, 99),
        "cached_p50_ms": percentile(warm, 50),
        "cached_p99_ms": percentile(warm, 99),
    }


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process `pid` so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load(url: str, users: list[str], rate: float, seconds: float, route: str, pid: int) -> dict[str, float]:
    """Open loop (benchmarks.open_loop) at `rate` for `seconds` on random shoppers, then the server's
    own quantiles of that route (its histogram) and its CPU per request."""
    pick = random.Random(2)
    chosen = [pick.choice(users) for _ in range(int(rate * seconds))]
    suffix = "/content" if route == CONTENT else ""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    cpu = cpu_seconds(pid)
    result = open_loop(
        host, int(port), lambda n: f"/v1/profiles/{chosen[n]}{suffix}",
        headers={"Authorization": f"Bearer {KEY}"}, rate=rate, seconds=seconds,
    )  # fmt: skip
    served = cpu_seconds(pid) - cpu
    server = server_quantiles(httpx.get(f"{url}/metrics").text, route)
    per_request = {"server_cpu_us_per_request": 1e6 * served / max(1, len(chosen))}
    return {**result.figures(), **server, **per_request}


def server_quantiles(metrics: str, route: str) -> dict[str, float]:
    """The server's own p50/p99 (ms, the bucket bound reached) of the lookups: its histogram."""
    prefix = 'lakemail_profile_lookup_seconds_bucket{le="'
    buckets = []
    for line in metrics.splitlines():
        if line.startswith(prefix) and f'route="{route}"' in line:
            le = line[len(prefix) :].split('"', 1)[0]
            buckets.append((float(le), float(line.rsplit(" ", 1)[1])))
    total = max((c for _, c in buckets), default=0.0)
    found: dict[str, float] = {}
    for q in (50, 99):
        reached = next((b for b, c in sorted(buckets) if c >= total * q / 100), float("inf"))
        found[f"server_p{q}_ms_at_most"] = reached * 1000
    return found


def serve(home: Path) -> tuple[subprocess.Popen[bytes], str]:
    """The collector with the profile API on, over `home`'s lake, landing zone and state store."""
    env = {"LAKEMAIL_WRITE_KEY": "bench", "LAKEMAIL_API_KEY": KEY}
    env |= {f"LAKEMAIL_{n.upper()}_URI": str(home / n) for n in ("lake", "landing", "state")}
    return start_collector(home, env, wait_seconds=90)


def measure(shoppers: int, rate: float, seconds: float, repeat: int = 1) -> list[dict[str, float]]:
    """Figures of `repeat` runs over one store of `shoppers`: in process, then each route's open-loop load."""
    runs = []
    with tempfile.TemporaryDirectory(prefix="profile-api-") as folder:
        home = Path(folder)
        started = time.perf_counter()
        state, users = build_store(home, shoppers)
        print(f"store: {len(users):,} shoppers, {state.store().size_bytes() / 2**20:,.0f} MB, "
              f"built in {time.perf_counter() - started:.0f} s", flush=True)  # fmt: skip
        for _ in range(repeat):
            figures = in_process(state, users, 2_000)
            print(", ".join(f"{name} {value:,.2f}" for name, value in figures.items()), flush=True)
            process, url = serve(home)
            try:
                for route, name in ((PROFILE, "profile"), (CONTENT, "content")):
                    measured = load(url, users, rate, seconds, route, process.pid)
                    figures |= {f"{name}_{k}": v for k, v in measured.items()}
            finally:
                process.terminate()
                process.wait(30)
            runs.append(figures)
    return runs


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile_api", description=__doc__)
    parser.add_argument("--shoppers", type=int, default=1_000_000)
    parser.add_argument("--rate", type=float, default=500.0, help="requests per second (open loop)")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--quick", action="store_true", help="10,000 shoppers, 5 s")
    args = parser.parse_args()
    shoppers, seconds = (10_000, 5.0) if args.quick else (args.shoppers, min(args.seconds, 120.0))
    (figures,) = measure(shoppers, args.rate, seconds)
    for name, value in figures.items():
        print(f"{name:>40}: {value:,.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
