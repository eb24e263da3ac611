"""What the email provider answered, counted where the HTTP calls are made (`resources.email`).

The counters are not registered anywhere: the process that serves metrics (`lakemail runner`, which runs
the micro-batches, and so the sends, in-process) registers `PROVIDER_COLLECTORS` in its own registry.
Labels are bounded: the provider's name and an HTTP status code or an error class, never an address.
"""

from __future__ import annotations

from prometheus_client import Counter

PROVIDER_RESPONSES = Counter(
    "lakemail_provider_responses_total",
    "Answers of the email provider's send and look-up API, by HTTP status code; a request without an "
    "answer counts under its error class (ConnectError, ReadTimeout, ...).",
    ["provider", "code"],
    registry=None,
)
PROVIDER_RETRIES = Counter(
    "lakemail_provider_retries_total",
    "Send attempts repeated within a run after a connect error, 408, 429 or 5xx (backoff, Retry-After).",
    ["provider"],
    registry=None,
)
PROVIDER_COLLECTORS = (PROVIDER_RESPONSES, PROVIDER_RETRIES)


def count_answer(provider: str, code: int | str) -> None:
    """One answer (a status code) or one request that got none (its error class)."""
    PROVIDER_RESPONSES.labels(provider=provider, code=str(code)).inc()


def count_retry(provider: str) -> None:
    PROVIDER_RETRIES.labels(provider=provider).inc()
