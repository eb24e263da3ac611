"""What every `lakemail` command and every process that loads the definitions pays at start: no
plotting library (matplotlib costs ~1 s of imports; only the experiments picture needs it)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_cli_and_the_definitions_load_without_matplotlib() -> None:
    probe = (
        "import sys; import orchestration.cli, orchestration.definitions; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'matplotlib'))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.strip() == "[]"
