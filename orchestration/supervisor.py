"""`lakemail up`: start the webserver, the daemon and the simulator; Ctrl-C stops all of them."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from orchestration.instance import persistent_instance, prepare_dagster_home
from orchestration.settings import (
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


@dataclass
class Child:
    """A started process, in its own process group so that its own children stop with it."""

    name: str
    process: subprocess.Popen[bytes]

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, sig)


def _bin(name: str) -> str:
    """A console script from this environment (the venv's bin folder), not whatever is on PATH."""
    return str(Path(sys.executable).parent / name)


def _start(name: str, argv: list[str], env: dict[str, str], log_dir: Path) -> Child:
    log = open(log_dir / f"{name}.log", "ab")  # noqa: SIM115 - the child keeps it open for its life
    process = subprocess.Popen(
        argv, cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    return Child(name, process)


def stop_all(children: list[Child], grace_seconds: float = 15.0) -> None:
    """SIGTERM every child group, then SIGKILL what is still running after the grace period."""
    for child in children:
        child.stop(signal.SIGTERM)
    deadline = time.monotonic() + grace_seconds
    for child in children:
        try:
            child.process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.stop(signal.SIGKILL)
            child.process.wait()


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
) -> int:
    """Run the whole system until Ctrl-C (or until one part dies); returns the exit code."""
    sandbox = settings.esp == "sandbox" and not settings.esp_url
    plan = Plan(port, users, rate, simulate, sandbox_port, demo_delays, runner, sandbox)
    home = prepare_dagster_home(settings.dagster_home)
    # Create the instance's storage once, before three processes open it at the same time.
    persistent_instance(home).dispose()
    ensure_secret(settings.home)  # exported, so the daemon's runs see LAKEMAIL_SECRET
    log_dir = settings.home / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    env = _environment(settings, home, plan)
    record_decisions(settings, env, demo=plan.demo_delays)  # what every process of this home decides with
    children = _start_all(plan, env, log_dir)
    _announce(settings, plan, env, log_dir)
    code = _watch(children, log_dir)
    print("stopping ...")
    stop_all(children)
    print("stopped.")
    return code


def _environment(settings: Settings, home: Path, plan: Plan) -> dict[str, str]:
    """The children's environment: ours, the Dagster home, demo delays and the sandbox's URLs."""
    env = {**process_environment(), "DAGSTER_HOME": str(home), "LAKEMAIL_HOME": str(settings.home)}
    env.setdefault("LAKEMAIL_WRITE_KEY", DEMO_WRITE_KEY)  # the collector's, when none is configured
    if plan.demo_delays:
        env = {**DEMO_DELAYS, **DEMO_POLICY, **env}
    if plan.sandbox:  # the runs send to the sandbox this command starts, and link to its unsubscribe page
        env = {"LAKEMAIL_PUBLIC_URL": plan.inbox, **env, "LAKEMAIL_ESP_URL": plan.inbox}
    return env


def _start_all(plan: Plan, env: dict[str, str], log_dir: Path) -> list[Child]:
    """The webserver and the daemon, then the runner, the sandbox and the simulator when planned."""
    workspace = str(PROJECT_ROOT / "workspace.yaml")
    webserver = [_bin("dagster-webserver"), "-w", workspace, "-h", "127.0.0.1", "-p", str(plan.port)]
    commands = {"webserver": webserver, "daemon": [_bin("dagster-daemon"), "run", "-w", workspace]}
    if plan.runner:  # micro-batches from a warm process; the daemon still runs schedules and other sensors
        commands["runner"] = [_bin("lakemail"), "runner"]
    if plan.sandbox:
        commands["sandbox"] = [_bin("lakemail"), "serve", "sandbox", "--port", str(plan.sandbox_port)]
    collector = f"http://127.0.0.1:{plan.collector_port}"
    commands["collector"] = [_bin("lakemail"), "serve", "collector", "--port", str(plan.collector_port)]
    commands["collector"].append("--demo-shop")
    if plan.simulate:
        load = ["--users", str(plan.users), "--rate", str(plan.rate), "--duration", "86400"]
        load += ["--via-collector", collector]
        commands["simulator"] = [_bin("lakemail"), "simulate", *load]
    return [_start(name, argv, env, log_dir) for name, argv in commands.items()]


def _announce(settings: Settings, plan: Plan, env: dict[str, str], log_dir: Path) -> None:
    """Where to look: the UI, the inbox, the simulator's load, the demo delays and policy."""
    print(f"lakemail is up (data in {settings.home}, logs in {log_dir})")
    taker = "lakemail runner (landing_sensor stands by)" if plan.runner else "landing_sensor"
    print(f"  Dagster UI:  http://127.0.0.1:{plan.port}  (asset graph, runs, checks; micro-batches: {taker})")
    if plan.sandbox:
        print(
            f"  Inbox:       {plan.inbox}  (every email sent, as the shopper sees it; faults via /api/faults,"
            " with the sandbox's key)"
        )
    collector = f"http://127.0.0.1:{plan.collector_port}"
    demo_key = env["LAKEMAIL_WRITE_KEY"] == DEMO_WRITE_KEY  # a configured key is a secret: never printed
    key = f"demo write key {DEMO_WRITE_KEY!r}" if demo_key else "write keys from LAKEMAIL_WRITE_KEY"
    print(f"  Collector:   {collector}/v1/batch  ({key})")
    print(f"  Demo shop:   {collector}/shop  (sign up there: your welcome and cart emails reach the inbox)")
    if plan.simulate:
        load = f"{plan.rate:g} events/s from {plan.users} shoppers"
        print(f"  Simulator:   {load} through the collector into {settings.landing_uri}/events")
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
    """Wait for Ctrl-C or SIGTERM (0), or for a child to exit (1, after naming it)."""
    stopping = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    while not stopping:
        dead = [c for c in children if c.process.poll() is not None]
        if dead:
            name, returncode = dead[0].name, dead[0].process.returncode
            print(f"{name} exited with code {returncode}; see {log_dir}/{name}.log")
            return 1
        time.sleep(0.5)
    return 0
