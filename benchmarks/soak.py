"""Kill soak: `lakemail up` (as `make run` starts it) under simulated shoppers, scripted provider
faults and SIGKILLs spread over the runner, the daemon, the webserver, the sandbox, the Dagster code
servers and the supervisor itself (which the soak then starts again: its only restart). Then the
reconciliation: every landed line once in the lake (events, quarantine or a counted duplicate), every
`send` decision with exactly one terminal outbox row, no email twice in the sandbox.

    python -m benchmarks.soak --minutes 15              # 18 kills, one every 50 s
    python -m benchmarks.soak --minutes 3 --kills 9     # a smoke run

After each kill it measures how long the landed backlog takes to drain (target: 60 s). It never
fixes anything by hand: `manual_interventions` counts the times `lakemail up` exited by itself and
had to be started again. Everything listens on 127.0.0.1; it prints its figures as JSON and as a
markdown section, and exits 1 unless every figure that must be 0 is.
"""

from __future__ import annotations

import argparse
import json
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from benchmarks import soak_kills
from benchmarks.common import env_for, lakemail, remove_tree
from benchmarks.soak_checks import ZERO, reconcile_lines, reconcile_outbox, sandbox_json, settled
from benchmarks.steady import free_port, wait_until, webserver_up
from orchestration.homelock import marked

# One cycle of faults, one every FAULT_EVERY seconds: overload, rate limit, slowness, an ambiguous
# timeout (the sandbox holds the answer past the client's 10 s read timeout), refused credentials
# (the circuit opens), and a permanent rejection.
FAULTS: list[dict[str, Any]] = [
    {"kind": "status", "status": 503, "times": 3},
    {"kind": "rate_limit", "reset_seconds": 3},
    {"kind": "slow", "seconds": 2},
    {"kind": "accept_then_hang", "seconds": 15},
    {"kind": "status", "status": 401, "times": 1},
    {"kind": "status", "status": 500, "times": 2},
    {"kind": "status", "status": 400, "times": 1},
]
FAULT_EVERY = 20.0
DRAIN_TARGET_S = 60.0


@dataclass
class System:
    """`lakemail up --no-simulator` on free loopback ports, started (again) by the soak."""

    home: Path
    env: dict[str, str]
    port: int = field(default_factory=free_port)
    sandbox_port: int = field(default_factory=free_port)
    collector_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def inbox(self) -> str:
        return f"http://127.0.0.1:{self.sandbox_port}"

    def start(self) -> None:
        argv = [lakemail(), "up", "--no-simulator", "--port", str(self.port)]
        argv += ["--sandbox-port", str(self.sandbox_port), "--collector-port", str(self.collector_port)]
        with (self.home / "up.log").open("ab") as log:
            self.process = subprocess.Popen(
                argv, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.starts += 1
        wait_until(lambda: webserver_up(self.port), 300, "Dagster webserver")

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def stop(self) -> tuple[float, int]:
        """Ctrl-C; (seconds until it exited, processes of it still running then)."""
        assert self.process is not None
        started = time.monotonic()
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        return round(time.monotonic() - started, 1), len(marked(self.home))


@dataclass
class Soak:
    system: System
    api_key: str
    started: float = field(default_factory=time.monotonic)
    kills: list[soak_kills.Kill] = field(default_factory=list)
    faults_scripted: int = 0
    faults_missed: int = 0  # the sandbox was down when a fault was due
    manual_interventions: int = 0

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def say(self, text: str) -> None:
        print(f"[{self.elapsed():5.0f} s] {text}", flush=True)

    def fault(self) -> None:
        """The next scripted fault, when it is due (every FAULT_EVERY s, also while a drain is timed)."""
        if self.elapsed() < (self.faults_scripted + self.faults_missed + 1) * FAULT_EVERY:
            return
        payload = json.dumps(FAULTS[(self.faults_scripted + self.faults_missed) % len(FAULTS)]).encode()
        try:
            sandbox_json(f"{self.system.inbox}/api/faults", self.api_key, payload)
            self.faults_scripted += 1
        except OSError:
            self.faults_missed += 1

    def kill(self, kind: str) -> None:
        """SIGKILL the process playing `kind`; restart `lakemail up` after the supervisor; time the drain."""
        pid = soak_kills.find_target(kind, self.system.home, self.system.pid)
        record = soak_kills.Kill(kind, round(self.elapsed(), 1), pid)
        self.kills.append(record)
        if pid is None:
            return
        killed_at = time.time()
        soak_kills.sigkill(pid)
        if kind == "supervisor":
            assert self.system.process is not None
            self.system.process.wait()
            self.system.start()
        record.drain_s = soak_kills.wait_drained(self.system.home, killed_at, self.fault)
        self.say(f"killed {kind} (pid {pid}): backlog drained {record.drain_s} s after the kill")

    def keep_up(self) -> None:
        """`lakemail up` exited by itself (a part kept dying): what a person would have to restart."""
        assert self.system.process is not None
        if self.system.process.poll() is not None:
            self.manual_interventions += 1
            self.say(f"lakemail up exited {self.system.process.returncode}; starting it again")
            self.system.start()


def _run(soak: Soak, minutes: float, users: int, rate: float, kills: int, kinds: tuple[str, ...]) -> None:
    """The simulator for `minutes`, a fault every FAULT_EVERY s, `kills` kills evenly spread."""
    seconds = minutes * 60
    load = ["--users", str(users), "--rate", str(rate), "--duration", f"{seconds:g}"]
    with (soak.system.home / "simulate.log").open("wb") as log:
        simulator = subprocess.Popen(
            [lakemail(), "simulate", *load], env=soak.system.env, stdout=log, stderr=subprocess.STDOUT
        )
    every = seconds / (kills + 1)
    next_kill = every
    while simulator.poll() is None:
        soak.keep_up()
        soak.fault()
        if soak.elapsed() >= next_kill and len(soak.kills) < kills:
            soak.kill(kinds[len(soak.kills) % len(kinds)])
            next_kill = max(next_kill + every, soak.elapsed())
        time.sleep(1)


def soak(
    minutes: float,
    users: int,
    rate: float,
    kills: int,
    settle_minutes: float,
    kinds: tuple[str, ...] = soak_kills.KINDS,
    keep: bool = False,
) -> dict[str, Any]:
    home = Path(tempfile.mkdtemp(prefix="lakemail-soak-"))
    try:
        api_key = secrets.token_hex(16)
        system = System(home, env_for(home, LAKEMAIL_POLL_SECONDS="1", LAKEMAIL_ESP_API_KEY=api_key))
        system.start()
        run = Soak(system, api_key)
        try:
            _run(run, minutes, users, rate, kills, kinds)
            deadline = time.monotonic() + settle_minutes * 60
            while time.monotonic() < deadline and not _quiet(home):
                run.keep_up()
                time.sleep(5)
            figures = _figures(run, minutes, _quiet(home))
        finally:
            stop_s, leftovers = system.stop()
        return figures | {"stop_seconds": stop_s, "leftovers_after_stop": leftovers}
    finally:
        if keep:
            print(f"kept {home} (logs in {home}/logs, {home}/up.log)", flush=True)
        else:
            remove_tree(home)


def _quiet(home: Path) -> bool:
    """Every decision sent or settled, and nothing landed waiting."""
    try:
        # Every file: the load has stopped (files younger than the drain slack counted as ingested
        # before, so the soak could end with the simulator's last files not yet taken).
        return settled(home) and soak_kills.drained(home, time.time(), slack=0)
    except Exception:  # a table mid-commit: look again
        return False


def _figures(run: Soak, minutes: float, is_settled: bool) -> dict[str, Any]:
    home, drains = run.system.home, [k.drain_s for k in run.kills if k.pid is not None]
    measured = [d for d in drains if d is not None]
    return {
        "minutes": minutes,
        "kills": len([k for k in run.kills if k.pid is not None]),
        "kills_by_kind": {
            kind: sum(1 for k in run.kills if k.kind == kind and k.pid) for kind in soak_kills.KINDS
        },
        "kills_without_target": sum(1 for k in run.kills if k.pid is None),
        "supervisor_starts": run.system.starts,
        "drain_s_max": max(measured, default=None),
        "drain_s_median": sorted(measured)[len(measured) // 2] if measured else None,
        "drains_over_60_s": sum(1 for d in drains if d is None or d > DRAIN_TARGET_S),
        "faults_scripted": run.faults_scripted,
        "faults_missed": run.faults_missed,
        "manual_interventions": run.manual_interventions,
        "settled": is_settled,
        **reconcile_lines(home),
        **reconcile_outbox(home, run.system.inbox, run.api_key),
        "kill_log": [asdict(k) for k in run.kills],
    }


def markdown(figures: dict[str, Any]) -> str:
    """The section BENCHMARKS.md (or an issue) takes as it is."""
    rows = "\n".join(
        f"| {k['at_s']:.0f} | {k['kind']} | {k['pid'] or 'not found'} | "
        f"{'stalled' if k['drain_s'] is None else k['drain_s']} |"
        for k in figures["kill_log"]
    )
    zero = "\n".join(f"| {name} | {figures[name]} |" for name in ZERO)
    return f"""## Kill soak: `python -m benchmarks.soak --minutes {figures["minutes"]:g}`

{figures["kills"]} SIGKILLs ({", ".join(f"{n} {k}" for k, n in figures["kills_by_kind"].items())}),
{figures["faults_scripted"]} provider faults ({figures["faults_missed"]} missed while the sandbox was down),
`lakemail up` started {figures["supervisor_starts"]} times (the first, and after each supervisor kill).
Backlog drain after a kill: median {figures["drain_s_median"]} s, max {figures["drain_s_max"]} s
(target 60 s). Lines: {figures["landed_lines"]} landed in {figures["landed_files"]} files =
{figures["as_events"]} events + {figures["as_quarantine"]} quarantined + {figures["as_duplicates"]}
duplicates. Outbox: {figures["send_decisions"]} send decisions, {figures["outbox_by_status"]};
{figures["sandbox_messages"]} emails in the sandbox;
settled: {figures["settled"]}; Ctrl-C at the end stopped everything in {figures["stop_seconds"]} s.

| must be 0 | value |
|---|---|
{zero}

| at (s) | killed | pid | backlog drained (s) |
|---|---|---|---|
{rows}
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__)
    parser.add_argument("--minutes", type=float, default=15.0)
    parser.add_argument("--kills", type=int, help="SIGKILLs, spread evenly (default: one per 50 s, >= 6)")
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--settle-minutes", type=float, default=5.0)
    parser.add_argument("--markdown", type=Path, help="also write the markdown section to this file")
    parser.add_argument(
        "--kinds", default=",".join(soak_kills.KINDS), help="what to kill, in turn (default: all six)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the soak's LAKEMAIL_HOME (logs, lake)")
    args = parser.parse_args(argv)
    kills = args.kills if args.kills is not None else max(6, int(args.minutes * 60 // 50))
    kinds = tuple(args.kinds.split(","))
    if not set(kinds) <= set(soak_kills.KINDS):
        parser.error(f"--kinds takes {','.join(soak_kills.KINDS)}")
    figures = soak(args.minutes, args.users, args.rate, kills, args.settle_minutes, kinds, args.keep)
    print(json.dumps(figures, indent=2, default=str))
    section = markdown(figures)
    print(section)
    if args.markdown:
        args.markdown.write_text(section)
    return 0 if figures["settled"] and all(figures[name] == 0 for name in ZERO) else 1


if __name__ == "__main__":
    sys.exit(main())
