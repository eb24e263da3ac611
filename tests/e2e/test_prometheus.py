"""Metrics, alerts and the dashboard against a real Prometheus (#18): one running system (runner, collector,
sandbox and a simulator, as `lakemail up` starts them) scraped every second by Prometheus with the shipped
scrape config and alert rules, shared by the module's tests (the last one stops the runner).

The rules are the shipped ones but for their `for:` durations, cut to 2 s so that an alert fires within
seconds (promtool's tests in ops/prometheus/alerts_test.yml pin the real durations).
"""

from __future__ import annotations

import os
import re
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import httpx
import orjson
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from orchestration.settings import Settings
from tests.conftest import land
from tests.e2e.test_alert_rules import promtool
from tests.processes import PROMETHEUS_LISTENING, SERVING, Child, reserve_port, wait_for
from tests.story import message
from transforms.triggers.policies import unit_hash

pytestmark = pytest.mark.xdist_group("prometheus")  # one system for the module, on one worker
ROOT = Path(__file__).resolve().parents[2]
OPS = ROOT / "ops"
WRITE_KEY = "prometheus-test-key"
USERS = [u for u in (f"prom-{i}" for i in range(8)) if unit_hash(f"holdout:{u}") >= 0.05]  # no holdout
T = TypeVar("T")


@dataclass
class System:
    home: Path
    ports: dict[str, int]  # job -> port
    runner: Child
    prometheus: str  # its URL
    children: list[Child]  # the servers: a wait fails as soon as one of them dies unasked

    def metrics_url(self, job: str) -> str:
        return f"http://127.0.0.1:{self.ports[job]}/metrics"

    def wait_for(self, condition: Callable[[], T | None], timeout: float, what: str) -> T:
        return wait_for(condition, timeout, what, self.children)


def lakemail(*args: str) -> list[str]:
    return [sys.executable, "-m", "orchestration.cli", *args]


def environment(home: Path, sandbox: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LAKEMAIL_", "DAGSTER_"))}
    env |= {
        "PYTHONPATH": str(ROOT),
        "LAKEMAIL_HOME": str(home),
        "LAKEMAIL_QUIET_HOURS": "off",
        "LAKEMAIL_WRITE_KEY": WRITE_KEY,
    }
    return env | ({"LAKEMAIL_ESP_URL": sandbox, "LAKEMAIL_PUBLIC_URL": sandbox} if sandbox else {})


def prometheus_config(folder: Path, ports: dict[str, int]) -> Path:
    """The shipped scrape config with this system's ports and 1 s intervals, and the shipped rules."""
    config = yaml.safe_load((OPS / "prometheus" / "prometheus.yml").read_text())
    assert {job["job_name"] for job in config["scrape_configs"]} == set(ports)
    config["global"] = {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"}
    for job in config["scrape_configs"]:
        job["static_configs"] = [{"targets": [f"127.0.0.1:{ports[job['job_name']]}"]}]
    rules = (OPS / "prometheus" / "alerts.yml").read_text()
    (folder / "alerts.yml").write_text(re.sub(r"(?m)^(\s+for: ).*$", r"\g<1>2s", rules))
    path = folder / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path


def land_load(home: Path, collector: str) -> None:
    """Sign-ups (a welcome email each), a file with a broken line, a batch with a refused message."""
    settings = Settings(home=home, lake_uri=str(home / "lake"), landing_uri=str(home / "landing"))
    now = datetime.now(UTC)
    signups = [
        message("identify", now, user=u, email=f"{u}@example.com", marketing_consent=True, first_name="A")
        for u in USERS
    ]
    land(settings, "signups.ndjson", [orjson.dumps(m) for m in signups])
    land(
        settings, "dirty.ndjson", [orjson.dumps(message("Product Viewed", now, user="prom-x")), b"{not json"]
    )
    batch = {"batch": [message("Product Viewed", now, user="prom-y"), 42]}
    answer = httpx.post(f"{collector}/v1/batch", json=batch, auth=(WRITE_KEY, ""), timeout=10)
    assert answer.status_code == 200 and answer.json()["rejected"], answer.text


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    """The servers bind port 0 and say which port they got (the sandbox first: the others are given its
    URL); the runner's /metrics is on a reserved port, the one it comes back to when the last test
    restarts it (Prometheus scrapes that one)."""
    folder = tmp_path_factory.mktemp("prometheus")
    home, started = folder / "home", list[Child]()

    def start(argv: list[str], env: dict[str, str], log: str) -> Child:
        started.append(Child(argv, env, folder / log).start())
        return started[-1]

    try:
        sandbox = start(lakemail("serve", "sandbox", "--port", "0"), environment(home, None), "sandbox.log")
        sandbox_url = f"http://127.0.0.1:{sandbox.port(SERVING, 180)}"
        env, runner_port = environment(home, sandbox_url), reserve_port()
        runner = start(lakemail("runner", "--metrics-port", str(runner_port)), env, "runner.log")
        collector = start(lakemail("serve", "collector", "--port", "0"), env, "c.log")
        servers = [sandbox, runner, collector]
        ports = {
            "lakemail-runner": runner_port,
            "lakemail-collector": collector.port(SERVING, 180),
            "lakemail-sandbox": int(sandbox_url.rpartition(":")[2]),
        }
        for job, at in ports.items():
            wait_for(partial(answers, f"http://127.0.0.1:{at}/metrics"), 180, f"{job}'s /metrics", servers)
        collector_url = f"http://127.0.0.1:{ports['lakemail-collector']}"
        land_load(home, collector_url)
        load = ["--users", "20", "--rate", "4", "--duration", "3600", "--via-collector", collector_url]
        start(lakemail("simulate", *load), env, "simulator.log")
        server = [
            "prometheus",
            f"--config.file={prometheus_config(folder, ports)}",
            f"--storage.tsdb.path={folder / 'tsdb'}",
            "--web.listen-address=127.0.0.1:0",
        ]
        servers.append(prometheus := start(server, dict(os.environ), "prometheus.log"))
        url = f"http://127.0.0.1:{prometheus.port(PROMETHEUS_LISTENING, 60)}"
        wait_for(partial(answers, f"{url}/-/ready"), 60, "Prometheus", servers)
        yield System(home, ports, runner, url, servers)
    finally:
        for child in reversed(started):
            child.stop()


def answers(url: str) -> bool:
    return httpx.get(url, timeout=5).status_code == 200


def scrape(system: System, job: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """sample name -> [(labels, value)] of one process's /metrics."""
    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(httpx.get(system.metrics_url(job), timeout=10).text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return samples


def value(samples: dict[str, list[tuple[dict[str, str], float]]], name: str, **labels: str) -> float:
    return sum(v for found, v in samples.get(name, []) if labels.items() <= found.items())


def test_every_process_serves_clean_metrics_with_real_values(system: System) -> None:
    def runner_did_the_work() -> dict[str, list[tuple[dict[str, str], float]]] | None:
        runner = scrape(system, "lakemail-runner")
        sent = value(runner, "lakemail_landed_to_sent_seconds_count")
        quarantined = value(runner, "lakemail_quarantined_lines_total")
        measured = value(runner, "lakemail_lake_size_bytes")  # the disk is walked every 30 s
        return runner if sent >= len(USERS) and quarantined >= 1 and measured > 0 else None

    runner = system.wait_for(
        runner_did_the_work, 240, "the runner to ingest, decide and send the sign-ups' welcomes"
    )
    assert value(runner, "lakemail_landed_to_committed_seconds_count") >= 2
    assert value(runner, "lakemail_lines_total", outcome="accepted") >= len(USERS)
    assert value(runner, "lakemail_decisions_total", kind="welcome", decision="send") >= len(USERS)
    assert value(runner, "lakemail_sends_total", status="sent") >= len(USERS)
    assert value(runner, "lakemail_provider_responses_total", provider="sandbox", code="202") >= len(USERS)
    assert value(runner, "lakemail_batch_stage_duration_seconds_count", stage="ingest_stage") >= 1
    assert value(runner, "lakemail_runs_total", status="success") >= 1
    assert (
        value(runner, "lakemail_lake_size_bytes") > 0
        and value(runner, "lakemail_dagster_storage_size_bytes") > 0
    )
    collector, sandbox = scrape(system, "lakemail-collector"), scrape(system, "lakemail-sandbox")
    assert value(collector, "lakemail_collector_rejected_messages_total") >= 1
    assert value(collector, "lakemail_http_requests_total", route="/v1/batch", code="200") >= 1
    assert value(sandbox, "lakemail_sandbox_mail_send_responses_total", code="202") >= len(USERS)
    for job in system.ports:
        exposed = httpx.get(system.metrics_url(job), timeout=10).text
        assert "@example.com" not in exposed and "prom-" not in exposed  # no address, no user id
        checked = promtool("check", "metrics", stdin=exposed)
        assert checked.returncode == 0 and not checked.stdout.strip(), (
            f"{job}: {checked.stdout}{checked.stderr}"
        )


def query(system: System, expr: str) -> list[dict[str, Any]]:
    answer = httpx.get(f"{system.prometheus}/api/v1/query", params={"query": expr}, timeout=10).json()
    assert answer["status"] == "success", f"{expr}: {answer}"
    return list(answer["data"]["result"])


def dashboard_queries() -> list[str]:
    dashboard = orjson.loads((OPS / "grafana" / "lakemail.json").read_bytes())
    return [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]


def test_every_dashboard_query_returns_series(system: System) -> None:
    exprs = dashboard_queries()
    assert len(exprs) >= 30
    system.wait_for(lambda: len(query(system, "up == 1")) == len(system.ports), 60, "every target scraped")
    missing = exprs
    deadline = time.monotonic() + 240  # the welcomes are sent and scraped (the first test waits for that)
    while missing and time.monotonic() < deadline:
        missing = [expr for expr in missing if not query(system, expr)]
        time.sleep(1 if missing else 0)
    assert missing == [], "dashboard queries without series"


def alert_state(system: System, name: str) -> str:
    answer = httpx.get(f"{system.prometheus}/api/v1/rules", params={"type": "alert"}, timeout=10).json()
    states = [r["state"] for g in answer["data"]["groups"] for r in g["rules"] if r["name"] == name]
    assert len(states) == 1, f"{name}: {states}"
    return str(states[0])


def test_the_runner_down_alert_fires_when_the_runner_stops_and_resolves_when_it_is_back(
    system: System,
) -> None:
    system.wait_for(
        lambda: alert_state(system, "LakemailRunnerDown") == "inactive", 30, "LakemailRunnerDown inactive"
    )
    system.wait_for(lambda: query(system, 'up{job="lakemail-runner"} == 1'), 60, "the runner scraped")
    system.runner.stop()
    port = reserve_port(system.ports["lakemail-runner"])  # nobody else's while the runner is down
    system.wait_for(
        lambda: alert_state(system, "LakemailRunnerDown") == "firing", 60, "LakemailRunnerDown firing"
    )
    firing = httpx.get(f"{system.prometheus}/api/v1/alerts", timeout=10).json()["data"]["alerts"]
    down = [a for a in firing if a["labels"]["alertname"] == "LakemailRunnerDown" and a["state"] == "firing"]
    assert down and down[0]["labels"]["job"] == "lakemail-runner" and down[0]["annotations"]["runbook"]
    reserve_port(port)  # and while it starts again
    system.runner.start()
    system.wait_for(
        lambda: alert_state(system, "LakemailRunnerDown") == "inactive", 180, "LakemailRunnerDown resolved"
    )
