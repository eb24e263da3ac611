"""The sandbox's landing of an unsubscribe (services.unsubscribe serves the route): a file of its own."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from resources.landing import LandingResource


def land_event(landing_uri: str, event: dict[str, Any], now: datetime) -> Path:
    """Land one event as a new NDJSON file in `<landing>/events/`."""
    return LandingResource(uri=landing_uri).land_messages("unsubscribe", [event], now)
