"""`lakemail retry FILE|--failed`: take a failed landing file again now (#13)."""

from __future__ import annotations

import argparse
import sys

from orchestration.settings import Settings, ensure_secret


def add_retry_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    retry = commands.add_parser("retry", help="take a failed landing file again now")
    which = retry.add_mutually_exclusive_group(required=True)
    which.add_argument("file", nargs="?", help="its path in the landing zone, as ingest_log names it")
    which.add_argument("--failed", action="store_true", help="every landing file whose last read failed")


def retry_command(settings: Settings, args: argparse.Namespace) -> int:
    from orchestration.process import retry_once

    ensure_secret(settings.home)
    try:
        summary, outcomes = retry_once(settings, None if args.failed else [args.file])
    except ValueError as error:
        print(f"lakemail retry: {error}", file=sys.stderr)
        return 2
    if not outcomes:
        print("no failed landing files")
        return 0
    print(f"run {summary['run_id']}: {summary['status']}")
    for path, status, detail in outcomes:
        print(f"{path}: {status}" + (f" ({detail})" if detail else ""))
    still = sum(status in ("failed", "retrying") for _, status, _ in outcomes)
    return 0 if summary["status"] == "SUCCESS" and not still else 1
