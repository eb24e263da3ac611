"""Argument types for `lakemail`: a value no command could use is refused while the arguments are parsed
(exit 2, the option named), before settings load or a run is launched, so it never becomes a traceback
or a failed run that `lakemail status` then reports."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from datetime import datetime

MAX_PORT = 65535


def instant(text: str) -> str:
    """`--now`: an ISO-8601 instant, read as the run's clock reads it (assets.clock), kept as written."""
    try:
        datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO-8601 instant like 2026-03-01T12:00:00Z"
        ) from None
    return text


def _integer(low: int, high: int | None, what: str) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        if value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"{text} is not {what}")
        return value

    parse.__name__ = what  # argparse names the type in some of its own messages
    return parse


def _number(positive: bool, what: str) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        # nan and inf pass the simulator's own checks and would then never end or never pace
        if not math.isfinite(value) or value < 0 or (positive and value == 0):
            raise argparse.ArgumentTypeError(f"{text} is not {what}")
        return value

    parse.__name__ = what
    return parse


port = _integer(1, MAX_PORT, f"a port (1-{MAX_PORT})")
# `serve` binds its socket itself and logs the URL it got, so 0 (any free port) is usable there
serve_port = _integer(0, MAX_PORT, f"a port (1-{MAX_PORT}, or 0 for any free one)")
positive_int = _integer(1, None, "a whole number of at least 1")
non_negative_int = _integer(0, None, "a whole number of at least 0")
positive = _number(True, "a number above 0")
non_negative = _number(False, "a number of at least 0")
