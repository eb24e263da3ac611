"""Fixtures of the Dagster tier, beside tests/conftest.py's: a test's own mailbox (the email-provider
sandbox on a loopback port) and the settings that mail through it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from orchestration.settings import Settings
from tests.dagster.sends_harness import Mailbox, open_mailbox


@pytest.fixture
def mailbox(tmp_path: Path, settings: Settings) -> Iterator[Mailbox]:
    with open_mailbox(tmp_path / "sandbox", settings) as box:
        yield box


@pytest.fixture
def mail_settings(settings: Settings, mailbox: Mailbox) -> Settings:
    """`settings` mailing this test's `mailbox` (a module adds its own by overriding this fixture)."""
    return replace(settings, esp_url=mailbox.url)
