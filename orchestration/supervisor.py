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
from orchestration.settings import Settings, ensure_secret, process_environment

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
    home = prepare_dagster_home(settings.dagster_home)
    # Create the instance's storage once, before three processes open it at the same time.
    persistent_instance(home).dispose()
    ensure_secret(settings.home)  # exported, so the daemon's runs see LAKEMAIL_SECRET
    log_dir = settings.home / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    env = {**process_environment(), "DAGSTER_HOME": str(home), "LAKEMAIL_HOME": str(settings.home)}
    if demo_delays:
        env = {**DEMO_DELAYS, **DEMO_POLICY, **env}
    sandbox = settings.esp == "sandbox" and not settings.esp_url
    inbox = f"http://127.0.0.1:{sandbox_port}"
    if sandbox:  # the runs send to the sandbox this command starts, and link to its unsubscribe page
        env = {"LAKEMAIL_PUBLIC_URL": inbox, **env, "LAKEMAIL_ESP_URL": inbox}
    workspace = str(PROJECT_ROOT / "workspace.yaml")
    children = [
        _start(
            "webserver",
            [_bin("dagster-webserver"), "-w", workspace, "-h", "127.0.0.1", "-p", str(port)],
            env,
            log_dir,
        ),
        _start("daemon", [_bin("dagster-daemon"), "run", "-w", workspace], env, log_dir),
    ]
    if runner:  # micro-batches from a warm process; the daemon still runs schedules and other sensors
        children.append(_start("runner", [_bin("lakemail"), "runner"], env, log_dir))
    if sandbox:
        serve = [_bin("lakemail"), "serve", "sandbox", "--port", str(sandbox_port)]
        children.append(_start("sandbox", serve, env, log_dir))
    if simulate:
        sim = [
            _bin("lakemail"),
            "simulate",
            "--users",
            str(users),
            "--rate",
            str(rate),
            "--duration",
            "86400",
        ]
        children.append(_start("simulator", sim, env, log_dir))
    print(f"lakemail is up (data in {settings.home}, logs in {log_dir})")
    taker = "lakemail runner (landing_sensor stands by)" if runner else "landing_sensor"
    print(f"  Dagster UI:  http://127.0.0.1:{port}  (asset graph, runs, checks; micro-batches: {taker})")
    if sandbox:
        print(f"  Inbox:       {inbox}  (every email sent, as the shopper sees it; faults via /api/faults)")
    if simulate:
        print(f"  Simulator:   {rate:g} events/s from {users} shoppers into {settings.landing_uri}/events")
    if demo_delays:
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
    stopping = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    code = 0
    while not stopping:
        dead = [c for c in children if c.process.poll() is not None]
        if dead:
            name, returncode = dead[0].name, dead[0].process.returncode
            print(f"{name} exited with code {returncode}; see {log_dir}/{name}.log")
            code = 1
            break
        time.sleep(0.5)
    print("stopping ...")
    stop_all(children)
    print("stopped.")
    return code
