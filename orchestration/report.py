"""`lakemail report`: what the emails earned, per trigger kind and arm, against the holdout, as the lake
stands now (the hourly `experiments` asset keeps the same figures per exposure day)."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, date, datetime
from pathlib import Path

from orchestration.settings import Settings
from resources.lake import LakeResource
from stores.measure import measure_now
from transforms.measure.plot import experiments_png
from transforms.measure.report import duration_text, experiments_json, experiments_text


def add_report_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    report = commands.add_parser(
        "report",
        help="what the emails earned: per trigger kind and variant, sends, clicks, conversions and revenue "
        "with 95 %% intervals, and the uplift against the holdout",
    )
    report.add_argument("--since", help="only shoppers who became candidates from this date (YYYY-MM-DD) on")
    report.add_argument("--format", choices=("table", "json", "png"), default="table")
    report.add_argument("--output", help="png: where to write it (default $LAKEMAIL_HOME/reports/earned.png)")


def _since(text: str | None) -> datetime | None:
    if text is None:
        return None
    day = date.fromisoformat(text)  # ValueError names the text
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def report_command(settings: Settings, args: argparse.Namespace) -> int:
    """Print the figures (table or JSON); `png` also writes the picture and says where."""
    try:
        since = _since(args.since)
    except ValueError:
        print(f"lakemail report: --since {args.since!r} is not a date like 2026-03-01", file=sys.stderr)
        return 2
    if args.output and args.format != "png":  # it was ignored: the figures went to stdout, no file written
        print("lakemail report: --output is for --format png (table and json print)", file=sys.stderr)
        return 2
    path = Path(args.output) if args.output else settings.home / "reports" / "earned.png"
    if args.format == "png" and path.is_dir():  # refused before the figures are computed and printed
        print(f"lakemail report: {path} is a directory; give --output a file name", file=sys.stderr)
        return 2
    now = datetime.now(UTC)
    pooled = measure_now(LakeResource(uri=settings.lake_uri), settings.attribution_window, now, since)
    window = duration_text(settings.attribution_window)
    if args.format == "json":
        body = {"computed_at": now.isoformat(), "since": args.since, "window": window}
        print(json.dumps({**body, "arms": experiments_json(pooled)}, indent=2))
        return 0
    print(
        f"What the emails earned (attribution window {window}; shoppers from {args.since or 'the start'}):\n"
    )
    print(experiments_text(pooled, args.since))
    if args.format == "png":
        picture = experiments_png(pooled)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(picture)
        except OSError as error:  # e.g. a parent that is a file, or no permission: one line, not a traceback
            print(f"lakemail report: cannot write {path}: {error.strerror}", file=sys.stderr)
            return 2
        print(f"\nwrote {path}")
    return 0
