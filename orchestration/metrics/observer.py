"""The runner's metrics endpoint: a registry with the runner's run metrics, the lake's figures, the
provider's answers and the process's own, served on 127.0.0.1 by prometheus-client's HTTP server."""

from __future__ import annotations

import logging

import dagster as dg
from prometheus_client import CollectorRegistry, GCCollector, ProcessCollector, start_http_server

from orchestration.metrics.collector import LakeFigures
from orchestration.metrics.families import RunnerMetrics
from orchestration.metrics.record import record_run
from orchestration.settings import Settings
from resources.lake import LakeResource
from resources.provider_metrics import PROVIDER_COLLECTORS, PROVIDER_RETRIES

log = logging.getLogger("lakemail")


class RunObserver:
    """What the runner tells about its runs; this one keeps nothing (no `--metrics-port`)."""

    def finished(self, result: dg.ExecuteInProcessResult) -> None:
        """A run ended (success or failure)."""

    def released(self) -> None:
        """A run whose executor died was marked failed."""


class MetricsObserver(RunObserver):
    """Counts each run into `metrics`; a failure to count is logged, never the runner's failure."""

    def __init__(self, metrics: RunnerMetrics, instance: dg.DagsterInstance, lake: LakeResource) -> None:
        self.metrics, self.instance, self.lake = metrics, instance, lake

    def finished(self, result: dg.ExecuteInProcessResult) -> None:
        try:
            record_run(self.metrics, result, self.instance, self.lake)
        except Exception as error:
            log.warning(
                "metrics: counting run %s failed (%s: %s)", result.run_id, type(error).__name__, error
            )

    def released(self) -> None:
        self.metrics.released.inc()


def runner_registry(
    settings: Settings, instance: dg.DagsterInstance
) -> tuple[CollectorRegistry, RunnerMetrics]:
    """Every metric the runner serves, in a registry of its own."""
    registry = CollectorRegistry()
    metrics = RunnerMetrics(registry)
    registry.register(LakeFigures(settings, instance))
    for collector in PROVIDER_COLLECTORS:
        registry.register(collector)
    PROVIDER_RETRIES.labels(provider=settings.esp)  # 0 from the start, not absent until the first retry
    metrics.circuit_open.labels(provider=settings.esp).set(0)
    ProcessCollector(registry=registry)
    GCCollector(registry=registry)
    return registry, metrics


def start_metrics(settings: Settings, instance: dg.DagsterInstance, port: int) -> RunObserver:
    """Serve `/metrics` on 127.0.0.1:`port` in a daemon thread; the observer to give the runner."""
    registry, metrics = runner_registry(settings, instance)
    start_http_server(port, addr="127.0.0.1", registry=registry)
    return MetricsObserver(metrics, instance, LakeResource(uri=settings.lake_uri))
