"""The collector's figures for `GET /metrics`: what it landed, what it refused, and the backlog it
last measured (the same `lakemail_backlog_*` figures the runner serves, so the backlog alerts still
fire when the runner is down)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from services.collector.backlog import BacklogGate
from services.collector.commit import GroupCommitter


class CollectorFigures(Collector):
    """Read at each scrape from the group committer's stats and the backlog gate (no I/O)."""

    def __init__(self, committer: GroupCommitter, gate: BacklogGate, in_flight: Callable[[], int]) -> None:
        self.committer, self.gate, self.in_flight = committer, gate, in_flight

    def collect(self) -> Iterator[Metric]:
        stats = self.committer.stats
        for name, doc, value in (
            ("lakemail_collector_landed_files", "Landing files the collector wrote (durable).", stats.files),
            ("lakemail_collector_landed_messages", "Messages in those files.", stats.messages),
            ("lakemail_collector_landed_bytes", "Bytes of those files.", stats.bytes),
            (
                "lakemail_collector_write_failures",
                "Landing writes that failed (answered 503).",
                stats.failures,
            ),
        ):
            yield CounterMetricFamily(name, doc, value=value)
        yield _gauge(
            "lakemail_collector_accepting",
            "1 while messages are taken, 0 while refused (503).",
            self.gate.refusal() is None,
        )
        yield _gauge(
            "lakemail_collector_queued_bytes",
            "Bytes held in memory waiting to land.",
            self.committer.queued_bytes,
        )
        yield _gauge(
            "lakemail_collector_requests_in_flight",
            "Tracking requests being read or landed.",
            self.in_flight(),
        )
        last = self.gate.last
        if last is None:
            return
        yield _gauge("lakemail_backlog_files", "Landed files not ingested yet (last probe).", last.files)
        yield _gauge(
            "lakemail_backlog_bytes", "Bytes of the landed files not ingested yet (last probe).", last.bytes
        )
        age = max(0.0, time.time() - last.oldest_landed_at) if last.oldest_landed_at is not None else 0.0
        yield _gauge(
            "lakemail_backlog_oldest_age_seconds",
            "Age of the oldest landed file not ingested yet (0: none).",
            age,
        )
        yield _gauge(
            "lakemail_landing_avail_bytes",
            "Free bytes of the landing zone's disk (last probe).",
            last.free_bytes,
        )


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=float(value))


def rejected_counter(registry: CollectorRegistry) -> Counter:
    return Counter(
        "lakemail_collector_rejected_messages_total",
        "Messages of a request the collector did not keep, by reason code (the rest of the batch lands).",
        ["reason"],
        registry=registry,
    )


def ignored_sent_at_counter(registry: CollectorRegistry) -> Counter:
    return Counter(
        "lakemail_collector_ignored_sent_at_messages_total",
        "Messages landed without a `sentAt` they came with (the request's or their own): no timestamp.",
        registry=registry,
    )


def unlanded_clicks_counter(registry: CollectorRegistry) -> Counter:
    return Counter(
        "lakemail_collector_unlanded_clicks_total",
        "Clicks redirected whose event did not land, by reason: backlog_full (the landing zone over its "
        "bound) or landing_failed (the queue full, or the write failed).",
        ["reason"],
        registry=registry,
    )
