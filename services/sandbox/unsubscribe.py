"""The sandbox's landing of an unsubscribe (services.unsubscribe serves the route): a file of its own."""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from resources.landing import LandingResource


def land_event(landing_uri: str, event: dict[str, Any], now: datetime) -> Path:
    """Land one event as a new NDJSON file in `<landing>/events/`."""
    name = f"unsubscribe-{now.astimezone(UTC):%Y%m%dT%H%M%S%fZ}-{secrets.token_hex(4)}.ndjson"
    data = json.dumps(event, separators=(",", ":")).encode() + b"\n"
    return LandingResource(uri=landing_uri).land(f"events/{name}", data)
