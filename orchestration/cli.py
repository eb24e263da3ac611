"""The `lakemail` command."""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from collections.abc import Sequence

from orchestration.arguments import instant, non_negative, port, positive, positive_int, serve_port
from orchestration.collector import add_collector_options
from orchestration.metrics.options import DEFAULT_RUNNER_METRICS_PORT, add_metrics_port
from orchestration.report import add_report_parser, report_command
from orchestration.retry import add_retry_command, retry_command
from orchestration.settings import Settings, SettingsError
from orchestration.simulate import add_simulate_parser, simulate_command


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lakemail", description="Triggered email from a Delta lakehouse.")
    commands = parser.add_subparsers(dest="command", required=True)
    _add_up(commands)
    _add_runs(commands)
    add_simulate_parser(commands)
    _add_operations(commands)
    return parser


def _add_up(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    up = commands.add_parser("up", help="run everything: Dagster webserver + daemon, simulator")
    up.add_argument("--port", type=port, default=3000, help="Dagster webserver port (default 3000)")
    up.add_argument("--users", type=positive_int, default=200, help="simulated shoppers (default 200)")
    up.add_argument("--rate", type=positive, default=20.0, help="simulated events per second (default 20)")
    up.add_argument("--no-simulator", action="store_true", help="do not start the shopper simulator")
    up.add_argument("--sandbox-port", type=port, default=8025, help="email sandbox and inbox port (8025)")
    up.add_argument("--collector-port", type=port, default=8000, help="collector and demo shop port (8000)")
    up.add_argument(
        "--no-runner", action="store_true", help="leave micro-batches to the daemon's sensor (5 s loop)"
    )
    up.add_argument("--no-webserver", action="store_true", help="headless: no Dagster UI")
    add_metrics_port(up, DEFAULT_RUNNER_METRICS_PORT)
    up.add_argument(
        "--production-delays", action="store_true", help="the rules' own delays, not the short demo ones"
    )


def _add_runs(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """runner, process, serve, replay: the chain (or one service) without the rest of `up`."""
    runner = commands.add_parser(
        "runner", help="take micro-batches from a warm process every 0.25 s (the sensor stands aside)"
    )
    add_metrics_port(runner, None)
    runner.add_argument(
        "--lane", choices=("ingest", "decide", "both"), default="both", help="one lane per process (#15)"
    )
    process = commands.add_parser("process", help="take everything landed so far through the chain once")
    process.add_argument(
        "--now", type=instant, help="evaluate time-based triggers as of this ISO-8601 instant"
    )
    serve = commands.add_parser("serve", help="run one HTTP service on its own")
    serve.add_argument("service", choices=("collector", "sandbox"))
    serve.add_argument(
        "--port", type=serve_port, help="default: 8000 for the collector, 8025 for the sandbox; 0: any free"
    )
    add_collector_options(serve)
    add_retry_command(commands)
    replay = commands.add_parser("replay", help="re-decide triggers against an old lake version, no sends")
    replay.add_argument("--trigger", required=True, help="trigger kind, e.g. abandoned_cart")
    replay.add_argument("--as-of", required=True, type=int, help="the evaluation (engine run) to replay")


def _add_operations(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """status, erase, bench, sql: looking at and looking after the lake."""
    status = commands.add_parser("status", help="backlog, last run, freshness, latency; exit 1 if unhealthy")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.add_argument(
        "--max-lag", type=non_negative, default=120.0, help="seconds a table may lag the landing"
    )
    erase = commands.add_parser("erase", help="GDPR erasure of one user now; prints its certificate")
    erase.add_argument("--user-id", required=True)
    erase.add_argument("--json", action="store_true", help="the whole certificate, not a summary")
    bench = commands.add_parser("bench", help="measure throughput and latency, write BENCHMARKS.md")
    bench.add_argument(
        "bench_args", nargs=argparse.REMAINDER, help="--only NAME, --quick, --repeat N, --out FILE"
    )
    state = commands.add_parser("state", help="the state store: rebuild it from the lake / compare the two")
    state.add_argument("action", choices=("rebuild", "check"))
    add_report_parser(commands)
    sql = commands.add_parser("sql", help="SQL over every lake table by name")
    sql.add_argument("query")
    sql.add_argument("--as-of", help="table version or ISO-8601 timestamp (time travel)")
    sql.add_argument("--format", choices=("table", "csv", "json"), default="table")


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    if words[:1] == ["bench"]:  # its options are the benchmark runner's own (argparse would eat them)
        # The benchmarks stand beside the product: run them as their own program, never import them.
        os.execv(sys.executable, [sys.executable, "-m", "benchmarks", *words[1:]])
    args = _parser().parse_args(words)
    try:
        settings = Settings.load(recorded=args.command != "up")  # `up` chooses and records them
    except SettingsError as error:
        print(f"lakemail: configuration error: {error}", file=sys.stderr)
        return 2
    if args.command in NEEDS_HOME and not settings.home.is_dir():
        return _no_home(settings, args)
    commands = {
        "up": _up,
        "process": _process,
        "runner": _runner,
        "simulate": simulate_command,
        "sql": _sql,
        "status": _status,
        "erase": _erase,
        "serve": _serve,
        "replay": _replay,
        "state": _state,
        "retry": retry_command,
        "report": report_command,
    }
    return commands[args.command](settings, args)


def _up(settings: Settings, args: argparse.Namespace) -> int:
    from orchestration.supervisor import up

    return up(
        settings,
        port=args.port,
        users=args.users,
        rate=args.rate,
        simulate=not args.no_simulator,
        sandbox_port=args.sandbox_port,
        demo_delays=not args.production_delays,
        runner=not args.no_runner,
        webserver=not args.no_webserver,
        collector_port=args.collector_port,
        metrics_port=args.metrics_port,
    )


def _runner(settings: Settings, args: argparse.Namespace) -> int:
    from orchestration.runner import command

    return command(settings, args.metrics_port, args.lane)


def _process(settings: Settings, args: argparse.Namespace) -> int:
    from orchestration.process import process_once
    from orchestration.settings import ensure_secret

    ensure_secret(settings.home)
    started = time.perf_counter()
    summary = process_once(settings, now=args.now)
    seconds = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    lines = int(summary.get("lines", 0))
    rows = int(summary.get("reference_rows", 0))  # the lines add up with them (found by QA)
    print(
        f"run {summary['run_id']}: {summary['status']} - {summary.get('files', 0)} files, {lines} lines, "
        f"{summary.get('accepted', 0)} accepted, {summary.get('duplicates', 0)} duplicates, "
        f"{summary.get('quarantined', 0)} quarantined, {summary.get('failed_files', 0)} failed files"
        + (f", {rows} customer and catalog rows" if rows else "")
    )
    print(f"{seconds:.2f} s, {lines / seconds:,.0f} lines/s, peak RSS {peak_mb:,.0f} MB")
    if "decisions" in summary:
        print(f"decisions: {summary['decisions']}")
    return 0 if summary["status"] == "SUCCESS" else 1


def _sql(settings: Settings, args: argparse.Namespace) -> int:
    from orchestration.sql import SqlError, one_line, parse_as_of, render, run_query

    try:
        answer = run_query(settings.lake_uri, args.query, parse_as_of(args.as_of), settings.state_store_uri)
        output = render(answer, args.format)
    except SqlError as error:
        print(f"lakemail sql: {error}", file=sys.stderr)
        return 2
    except Exception as error:  # a query is user input: a one-line message, never a traceback
        print(f"lakemail sql: {type(error).__name__}: {one_line(error)}", file=sys.stderr)
        return 2
    sys.stdout.write(output)
    return 0


def _erase(settings: Settings, args: argparse.Namespace) -> int:
    from orchestration.process import erase_once
    from orchestration.settings import ensure_secret
    from transforms.erasure.person import InvalidUserId
    from transforms.erasure.records import ErasureCertificate, certificate_summary

    try:
        ensure_secret(settings.home)
        passed, certificate = erase_once(settings, args.user_id)
    except InvalidUserId as error:
        print(f"lakemail erase: --user-id: {error}; nothing was erased", file=sys.stderr)
        return 2
    if args.json or not certificate.startswith("{"):  # the JSON, or why there is no certificate
        print(certificate)
    else:
        sys.stdout.write(certificate_summary(ErasureCertificate.from_json(certificate)))
    return 0 if passed else 1


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    from services.server import BindError

    try:
        if args.service == "collector":
            from orchestration.collector import serve_collector

            return serve_collector(settings, args)
        return _serve_sandbox(settings, args)
    except BindError as error:  # a port in use is the user's to change: one line, no traceback
        print(f"lakemail serve {args.service}: {error.strerror}", file=sys.stderr)
        return 1


def _serve_sandbox(settings: Settings, args: argparse.Namespace) -> int:
    from orchestration.settings import ensure_secret, esp_api_key
    from resources.providers import SANDBOX_API_KEY
    from services.sandbox.app import create_sandbox_app
    from services.server import serve_forever

    secret = ensure_secret(settings.home)
    api_key = esp_api_key() or SANDBOX_API_KEY
    app = create_sandbox_app(
        settings.home / "sandbox",
        api_key,
        lake_uri=settings.lake_uri,
        landing_uri=settings.landing_uri,
        secret=secret,
    )
    serve_forever(app, "127.0.0.1", 8025 if args.port is None else args.port)
    return 0


# They read a home: a typo in LAKEMAIL_HOME must not pass for an empty one (an erasure certificate that found
# nothing, a report of no shoppers). The others may start a fresh home.
NEEDS_HOME = ("status", "replay", "retry", "erase", "sql", "report", "state")


def _no_home(settings: Settings, args: argparse.Namespace) -> int:
    """A LAKEMAIL_HOME that does not exist (a typo?) is unhealthy to `status` and refused by the others."""
    problem = f"LAKEMAIL_HOME {settings.home} does not exist"
    if args.command != "status":
        print(f"lakemail {args.command}: {problem}; nothing to {args.command} there", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({"healthy": False, "home": str(settings.home), "problems": [problem]}, indent=2))
    else:
        print(f"lakemail status: UNHEALTHY\n  ! {problem}")
    return 1


def _replay(settings: Settings, args: argparse.Namespace) -> int:
    from orchestration.replay import ReplayError, render_replay, replay
    from orchestration.settings import ensure_secret

    try:
        result = replay(settings, args.trigger, args.as_of, secret=ensure_secret(settings.home))
    except ReplayError as error:
        print(f"lakemail replay: {error}", file=sys.stderr)
        return 2
    sys.stdout.write(render_replay(result))
    return 0


def _state(settings: Settings, args: argparse.Namespace) -> int:
    from orchestration.state import check_command, rebuild_command

    return rebuild_command(settings) if args.action == "rebuild" else check_command(settings)


def _status(settings: Settings, args: argparse.Namespace) -> int:
    from orchestration.status import status_command

    return status_command(settings, json_output=args.json, max_lag_s=args.max_lag)


if __name__ == "__main__":
    sys.exit(main())
