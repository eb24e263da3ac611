"""The decision settings `lakemail up` chose for its home, recorded in `$LAKEMAIL_HOME/settings.json`.

`up` writes the record (atomically) before it starts anything; every other process of the home
(`process`, `replay`, `erase`, the runner, the daemon's code location) reads it through
`Settings.load`, so they all decide with the same trigger delays and policy. The record holds
variable names and their text values only (no secret is a decision setting).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

RECORD_NAME = "settings.json"


class RecordError(ValueError):
    """The record is there but unreadable or malformed (the message names the file)."""


@dataclass(frozen=True)
class HomeRecord:
    """What `up` recorded: the decision variables it set (others at their defaults), and whether demo."""

    path: Path
    variables: dict[str, str]
    demo: bool
    recorded_at: str


def record_path(home: Path) -> Path:
    return home / RECORD_NAME


def write_record(home: Path, variables: Mapping[str, str], *, demo: bool) -> Path:
    """Record `variables` for `home`: a temporary file, fsynced, renamed over the old record."""
    home.mkdir(parents=True, exist_ok=True)
    body = {
        "recorded_by": "lakemail up",
        "recorded_at": datetime.now(UTC).isoformat(),
        "demo": demo,
        "variables": dict(sorted(variables.items())),
    }
    path = record_path(home)
    fd, temp = tempfile.mkstemp(prefix=f".{RECORD_NAME}.", suffix=".tmp", dir=home)
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(body, handle, indent=2)
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return path


def read_record(home: Path) -> HomeRecord | None:
    """The home's record, None when `up` never ran there; RecordError when it cannot be read."""
    path = record_path(home)
    try:
        body = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        raise RecordError(f"{path}: cannot read the recorded settings ({error})") from None
    variables = body.get("variables") if isinstance(body, dict) else None
    if not isinstance(variables, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in variables.items()
    ):
        raise RecordError(f'{path}: want {{"variables": {{"LAKEMAIL_...": "value"}}, ...}}')
    return HomeRecord(path, variables, bool(body.get("demo")), str(body.get("recorded_at", "")))
