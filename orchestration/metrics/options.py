"""`--metrics-port` on `lakemail runner` and `lakemail up`."""

from __future__ import annotations

import argparse

from orchestration.arguments import port

DEFAULT_RUNNER_METRICS_PORT = 9188  # ops/prometheus/prometheus.yml scrapes it


def add_metrics_port(parser: argparse.ArgumentParser, default: int | None) -> None:
    shown = f" (default {default})" if default is not None else " (default: no metrics)"
    parser.add_argument(
        "--metrics-port", type=port, default=default, help=f"the runner's Prometheus metrics port{shown}"
    )
