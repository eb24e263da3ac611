"""The sandbox's figures for `GET /metrics`: mail-send answers by status code and scripted fault,
messages stored, faults pending. Counts only: no address, user id, send id or token."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from services.sandbox.faults import FaultQueue
from services.sandbox.store import MessageStore, RequestStats


class SandboxFigures(Collector):
    def __init__(self, store: MessageStore, stats: RequestStats, faults: FaultQueue) -> None:
        self.store, self.stats, self.faults = store, stats, faults

    def collect(self) -> Iterator[Metric]:
        answers = CounterMetricFamily(
            "lakemail_sandbox_mail_send_responses",
            "Answers of POST /v3/mail/send since the sandbox started, by status code and the scripted "
            "fault that shaped it (none: no fault).",
            labels=["code", "fault"],
        )
        for (code, fault), n in sorted(self.stats.totals().items()):
            answers.add_metric([str(code), fault], n)
        yield answers
        yield GaugeMetricFamily(
            "lakemail_sandbox_messages_stored", "Messages in the inbox.", value=self.store.count()
        )
        pending = sum(fault["times"] for fault in self.faults.pending())
        yield GaugeMetricFamily(
            "lakemail_sandbox_faults_pending",
            "Scripted faults still to apply (POST /api/faults).",
            value=pending,
        )


def sandbox_registry(store: MessageStore, stats: RequestStats, faults: FaultQueue) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(SandboxFigures(store, stats, faults))
    return registry
