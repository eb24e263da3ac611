"""The local secret: made once, private, stable, and the environment wins."""

from __future__ import annotations

import stat
from pathlib import Path

from orchestration.settings import SECRET_VARIABLE, ensure_secret


def test_made_once_private_and_stable(tmp_path: Path) -> None:
    env: dict[str, str] = {}
    first = ensure_secret(tmp_path, env)
    assert len(first) == 64 and env[SECRET_VARIABLE] == first
    assert stat.S_IMODE((tmp_path / ".secret").stat().st_mode) == 0o600
    assert ensure_secret(tmp_path, {}) == first


def test_the_environment_wins(tmp_path: Path) -> None:
    assert ensure_secret(tmp_path, {SECRET_VARIABLE: "from-env"}) == "from-env"
    assert not (tmp_path / ".secret").exists()
