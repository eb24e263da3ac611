"""`lakemail up`: start the webserver, the daemon and the simulator; Ctrl-C stops all of them.

One `lakemail up` per LAKEMAIL_HOME (orchestration.homelock). A child that dies is started again
(a few times a minute at most); when the supervisor itself dies, even by SIGKILL, its children die
with it (PR_SET_PDEATHSIG) and the reaper kills what they started (code servers, run workers).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

from orchestration import homelock
from orchestration.children import Child, stop_all
from orchestration.preflight import planned_ports, port_problems
from orchestration.settings import (
    API_KEY_VARIABLE,
    DEMO_WRITE_KEY,
    Settings,
    ensure_secret,
    process_environment,
    record_decisions,
)

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# `make run` shows emails within minutes: short delays unless LAKEMAIL_<KIND>_DELAY says otherwise.
DEMO_DELAYS = {
    "LAKEMAIL_ABANDONED_CHECKOUT_DELAY": "1m",
    "LAKEMAIL_ABANDONED_CART_DELAY": "2m",
    "LAKEMAIL_BROWSE_ABANDONMENT_DELAY": "3m",
    "LAKEMAIL_POST_PURCHASE_DELAY": "5m",
}
# ... and no quiet hours, a short frequency cap: a demo shows every kind of email within minutes.
DEMO_POLICY = {"LAKEMAIL_QUIET_HOURS": "off", "LAKEMAIL_FREQUENCY_CAP": "1/2m,10/1d"}


def _bin(name: str) -> str:
    """A console script from this environment (the venv's bin folder), not whatever is on PATH."""
    return str(Path(sys.executable).parent / name)


@dataclass(frozen=True)
class Plan:
    """What `lakemail up` starts, and where (ports, the simulator's load)."""

    port: int
    users: int
    rate: float
    simulate: bool
    sandbox_port: int
    demo_delays: bool
    runner: bool
    sandbox: bool  # the local email sandbox is the provider, so it is started too
    collector_port: int = 8000
    webserver: bool = True  # False: headless, no Dagster UI (the daemon still runs)
    metrics_port: int = 9188  # the runner's /metrics (the collector and the sandbox serve theirs)

    @property
    def inbox(self) -> str:
        return f"http://127.0.0.1:{self.sandbox_port}"


def up(
    settings: Settings,
    *,
    port: int,
    users: int,
    rate: float,
    simulate: bool = True,
    sandbox_port: int = 8025,
    demo_delays: bool = True,
    runner: bool = True,
    webserver: bool = True,
    collector_port: int = 8000,
    metrics_port: int = 9188,
) -> int:
    """Run the whole system until Ctrl-C (or until one part keeps dying); returns the exit code."""
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(line_buffering=True)  # what it says shows at once, in a log file too
    try:
        lock = homelock.acquire(settings.home)
    except homelock.HomeInUse as error:
        print(f"lakemail up: {error}", file=sys.stderr)
        return 1
    with lock:
        leftovers = homelock.sweep(settings.home)  # of an earlier `lakemail up` that was killed
        if leftovers:
            print(f"stopped {leftovers} processes left running by an earlier lakemail up of {settings.home}")
        sandbox = settings.esp == "sandbox" and not settings.esp_url
        plan = Plan(
            port, users, rate, simulate, sandbox_port, demo_delays, runner, sandbox, collector_port, webserver
        )
        plan = replace(plan, metrics_port=metrics_port)
        problems = port_problems(
            planned_ports(
                webserver=port if webserver else None,
                collector=collector_port,
                sandbox=sandbox_port if sandbox else None,
                metrics=metrics_port if runner else None,
            )
        )
        if problems:  # before anything starts: a part would crash-loop with the cause only in its log
            for problem in problems:
                print(f"lakemail up: {problem}; choose another", file=sys.stderr)
            return 2
        return _run(settings, plan)


def _run(settings: Settings, plan: Plan) -> int:
    """Start everything (and the reaper), watch until stopped, stop everything."""
    from orchestration.instance import persistent_instance, prepare_dagster_home

    home = prepare_dagster_home(settings)
    # Create the instance's storage once, before three processes open it at the same time.
    persistent_instance(settings).dispose()
    ensure_secret(settings.home)  # exported, so the daemon's runs see LAKEMAIL_SECRET
    log_dir = settings.home / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    env = _environment(settings, home, plan)
    record_decisions(settings, env, demo=plan.demo_delays)  # what every process of this home decides with
    reaper = _start_reaper(settings.home, env, log_dir)
    children = _start_all(plan, env, log_dir)
    _announce(settings, plan, env, log_dir)
    code = _watch(children, log_dir)
    print("stopping ...")
    stop_all(children)
    homelock.sweep(settings.home, os.getpid())  # the groups of children that were restarted
    if reaper.stdin is not None:
        reaper.stdin.close()
    reaper.wait(timeout=30)
    print("stopped.")
    return code


def _start_reaper(home: Path, env: dict[str, str], log_dir: Path) -> subprocess.Popen[bytes]:
    """The process that kills what this supervisor started once its pipe closes (it died)."""
    argv = [sys.executable, "-m", "orchestration.homelock", "reap", str(home), str(os.getpid())]
    unmarked = {k: v for k, v in env.items() if k != homelock.MARK}
    with (log_dir / "reaper.log").open("ab") as log:
        return subprocess.Popen(
            argv,
            cwd=PROJECT_ROOT,
            env=unmarked,
            stdin=subprocess.PIPE,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a Ctrl-C at the terminal is not for it
        )


def _environment(settings: Settings, home: Path, plan: Plan) -> dict[str, str]:
    """The children's environment: ours, the Dagster home, demo delays and the sandbox's URLs."""
    env = {
        **process_environment(),
        "DAGSTER_HOME": str(home),
        "LAKEMAIL_HOME": str(settings.home),
        # absolute, as this process resolved them: the children run in the project's folder, not ours
        "LAKEMAIL_LAKE_URI": settings.lake_uri,
        "LAKEMAIL_LANDING_URI": settings.landing_uri,
        "LAKEMAIL_STATE_URI": settings.state_store_uri,
        homelock.MARK: str(os.getpid()),  # theirs and their children's: what the reaper may stop
    }
    env.setdefault("LAKEMAIL_WRITE_KEY", DEMO_WRITE_KEY)  # the collector's, when none is configured
    if plan.demo_delays:
        env = {**DEMO_DELAYS, **DEMO_POLICY, **env}
    if plan.sandbox:  # the runs send to the sandbox this command starts, and link to its unsubscribe page
        clicks = f"http://127.0.0.1:{plan.collector_port}"  # the click redirect is the collector's
        env = {
            "LAKEMAIL_PUBLIC_URL": plan.inbox,
            "LAKEMAIL_CLICK_URL": clicks,
            **env,
            "LAKEMAIL_ESP_URL": plan.inbox,
        }
    return env


def _start_all(plan: Plan, env: dict[str, str], log_dir: Path) -> list[Child]:
    """The webserver and the daemon, then the runner, the sandbox and the simulator when planned."""
    return [Child(name, argv, env, log_dir, PROJECT_ROOT) for name, argv in part_commands(plan).items()]


def part_commands(plan: Plan) -> dict[str, list[str]]:
    """The command line of each part `plan` starts, by name."""
    workspace = str(PROJECT_ROOT / "workspace.yaml")
    webserver = [_bin("dagster-webserver"), "-w", workspace, "-h", "127.0.0.1", "-p", str(plan.port)]
    commands = {"webserver": webserver} if plan.webserver else {}
    commands["daemon"] = [_bin("dagster-daemon"), "run", "-w", workspace]
    if plan.runner:  # micro-batches from warm processes; the daemon still runs schedules and other sensors
        # One runner per lane (#15), so that an ingest run never waits for a delivery in flight.
        lanes = (("runner", "ingest", plan.metrics_port), ("runner-decide", "decide", plan.metrics_port + 1))
        for name, lane, port in lanes:
            commands[name] = [_bin("lakemail"), "runner", "--lane", lane, "--metrics-port", str(port)]
    if plan.sandbox:
        commands["sandbox"] = [_bin("lakemail"), "serve", "sandbox", "--port", str(plan.sandbox_port)]
    collector = f"http://127.0.0.1:{plan.collector_port}"
    commands["collector"] = [_bin("lakemail"), "serve", "collector", "--port", str(plan.collector_port)]
    commands["collector"].append("--demo-shop")
    if plan.simulate:
        load = ["--users", str(plan.users), "--rate", str(plan.rate), "--duration", "86400"]
        load += ["--via-collector", collector, "--carry-on"]  # a restarted demo sends new events
        load += ["--inbox", plan.inbox] if plan.sandbox else []  # the shoppers read it: clicks, orders
        commands["simulator"] = [_bin("lakemail"), "simulate", *load]
    return commands


def _announce(settings: Settings, plan: Plan, env: dict[str, str], log_dir: Path) -> None:
    """Where to look: the UI, the inbox, the simulator's load, the demo delays and policy."""
    print(f"lakemail is up (data in {settings.home}, logs in {log_dir})")
    taker = "a lakemail runner per lane (the sensors stand by)" if plan.runner else "the lane sensors"
    if plan.webserver:
        ui = f"http://127.0.0.1:{plan.port}"
        print(f"  Dagster UI:  {ui}  (asset graph, runs, checks; micro-batches: {taker})")
    if plan.sandbox:
        print(
            f"  Inbox:       {plan.inbox}  (every email sent, as the shopper sees it; faults via /api/faults,"
            " with the sandbox's key)"
        )
    collector = f"http://127.0.0.1:{plan.collector_port}"
    demo_key = env["LAKEMAIL_WRITE_KEY"] == DEMO_WRITE_KEY  # a configured key is a secret: never printed
    key = f"demo write key {DEMO_WRITE_KEY!r}" if demo_key else "write keys from LAKEMAIL_WRITE_KEY"
    print(f"  Collector:   {collector}/v1/batch  ({key})")
    if env.get(API_KEY_VARIABLE, "").strip():  # the key itself is a secret: never printed
        print(f"  Profile API: {collector}/v1/profiles/<user_id>  (bearer LAKEMAIL_API_KEY)")
    else:  # off rather than open (it serves person data); the collector's log alone said so
        print("  Profile API: off until LAKEMAIL_API_KEY is set (16+ characters) before lakemail up")
    scraped = [f"{collector}/metrics"] + [f"{plan.inbox}/metrics"] * plan.sandbox
    scraped += [f"http://127.0.0.1:{plan.metrics_port}/metrics (runner)"] * plan.runner
    scraped += [f"http://127.0.0.1:{plan.metrics_port + 1}/metrics (decide runner)"] * plan.runner
    print(f"  Metrics:     {', '.join(scraped)}  (Prometheus: ops/prometheus/)")
    print(f"  Demo shop:   {collector}/shop  (sign up there: your welcome and cart emails reach the inbox)")
    if plan.simulate:
        load = f"{plan.rate:g} events/s from {plan.users} shoppers"
        print(f"  Simulator:   {load} through the collector into {settings.landing_uri}/events")
        if plan.sandbox:
            print("               (its shoppers open the inbox's emails, click their links and some buy)")
    if plan.demo_delays:
        shown = ", ".join(
            f"{k.removeprefix('LAKEMAIL_').removesuffix('_DELAY').lower()} {env[k]}" for k in DEMO_DELAYS
        )
        print(f"  Delays:      {shown} (set LAKEMAIL_<KIND>_DELAY to change)")
        print(
            f"  Policy:      quiet hours {env['LAKEMAIL_QUIET_HOURS']}, frequency cap "
            f"{env['LAKEMAIL_FREQUENCY_CAP']} (--production-delays: the product's own)"
        )
    print('  Try:         .venv/bin/lakemail sql "select event_name, count(*) from events group by 1"')
    print("Ctrl-C stops everything.")


def _watch(children: list[Child], log_dir: Path) -> int:
    """Restart a child that fails; return 0 on Ctrl-C or SIGTERM, 1 when one keeps dying (named)."""
    stopping = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    while not stopping:
        for child in list(children):
            returncode = child.process.poll()
            if returncode is None or stopping:
                continue
            if returncode == 0:  # done (a simulator's --duration ran out), not dead
                print(f"{child.name} finished")
                children.remove(child)
                continue
            if not child.restart(time.monotonic()):
                print(f"{child.name} exited with code {returncode} again; see {log_dir}/{child.name}.log")
                return 1
            print(f"{child.name} exited with code {returncode}; started it again (pid {child.process.pid})")
        time.sleep(0.5)
    return 0
