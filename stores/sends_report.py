"""What one run of the send stage did to the outbox (`stores.sends_delivery` fills it in)."""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

from transforms.schema import SENDS_SCHEMA


@dataclass
class SendsReport:
    """What one run did to the outbox: the rows it changed (their new state) and an example email."""

    enqueued: int = 0
    rows: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=SENDS_SCHEMA))
    circuit_open: bool = False
    # "credentials" (401/403), "configuration" (the provider URL redirects) or "unreachable" (no connection)
    circuit_cause: str | None = None
    called: bool = False  # an email reached the provider's send API in this run
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
