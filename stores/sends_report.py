"""What one run of the send stage did to the outbox (`stores.sends_delivery` fills it in), and the example
email its metadata shows."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import polars as pl

from resources.templates import RenderAborted, TemplateRenderer
from transforms.schema import SENDS_SCHEMA
from transforms.sends.content import Content


@dataclass
class SendsReport:
    """What one run did to the outbox: the rows it changed (their new state) and an example email."""

    enqueued: int = 0
    rows: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=SENDS_SCHEMA))
    circuit_open: bool = False
    # "credentials" (401/403), "configuration" (the provider URL redirects) or "unreachable" (no connection)
    circuit_cause: str | None = None
    called: bool = False  # an email reached the provider's send API in this run
    rate_limited_until: datetime | None = None  # the provider's rate-limit window held calls until then
    example: str | None = None  # markdown of one sent email, names replaced

    @property
    def circuit_note(self) -> str:
        """What the run's log says of the circuit: why it opened, or nothing when it did not."""
        if not self.circuit_open:
            return ""
        if self.circuit_cause == "unreachable":
            return " (circuit open: the provider was unreachable)"
        if self.circuit_cause == "configuration":
            return " (circuit open: the provider settings are wrong, see the sends' last_error)"
        return " (circuit open: the provider refused our credentials)"

    @property
    def pause_note(self) -> str:
        """What the run's log says of a rate-limit window that held its calls, or nothing."""
        if self.rate_limited_until is None:
            return ""
        return f" (rate limited: no call to the provider until {self.rate_limited_until.isoformat()})"


def example(
    renderer: TemplateRenderer, unsubscribe_url: Callable[[str], str], content: Content, row: dict[str, Any]
) -> str | None:
    """One sent email as markdown, with the first name replaced (no person data in metadata)."""
    context = {**content.context, "first_name": "Sam" if content.context.get("first_name") else ""}
    try:
        parts = renderer.render(
            Content(context=context, fallbacks=content.fallbacks),
            kind=row["kind"],
            variant=row["variant"] or "a",
            unsubscribe_url=unsubscribe_url("example-token"),
        )
    except RenderAborted:
        return None
    fallbacks = ", ".join(f"{f['block']}: {f['reason']}" for f in content.fallbacks) or "none"
    return (
        f"**{row['kind']}** (variant {row['variant']}), fallbacks: {fallbacks}\n\n"
        f"Subject: {parts.subject}\n\n```\n{parts.text.strip()}\n```"
    )
