"""`lakemail retry FILE|--failed`: take a failed landing file again now (#13)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

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
        summary, outcomes = retry_once(settings, None if args.failed else [landing_path(settings, args.file)])
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


def landing_path(settings: Settings, given: str) -> str:
    """`given` as `ingest_log` names a landed file: a path to it in the landing zone (absolute, or from
    the current folder: `data/landing/events/x.ndjson`, as a shell completes it) is made relative to the
    zone; anything else is taken as such a name already (found by QA: only that form was understood)."""
    root = Path(os.path.abspath(settings.landing_uri.removeprefix("file://")))
    path = Path(os.path.abspath(given))
    return path.relative_to(root).as_posix() if path.is_relative_to(root) and path != root else given
