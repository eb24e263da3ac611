"""ops/prometheus (#18): the scrape config and the alert rules load, and `promtool test rules` passes
(each alert fires on the series that should raise it and stays quiet on the ones that should not)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

OPS = Path(__file__).resolve().parents[2] / "ops" / "prometheus"


def promtool(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """promtool, which `make test` installs (`make prometheus`): missing, the test fails, never skips."""
    tool = shutil.which("promtool")
    assert tool is not None, "promtool is missing: `make prometheus` installs Debian's prometheus package"
    return subprocess.run(
        [tool, *args], cwd=OPS, input=stdin, capture_output=True, text=True, timeout=120, check=False
    )


def test_the_scrape_config_and_the_rules_load() -> None:
    checked = promtool("check", "config", "prometheus.yml")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS" in checked.stdout + checked.stderr


def test_promtool_rule_tests_pass_and_cover_every_alert() -> None:
    tested = promtool("test", "rules", "alerts_test.yml")
    assert tested.returncode == 0, tested.stdout + tested.stderr
    alerts = {
        rule["alert"]
        for group in yaml.safe_load((OPS / "alerts.yml").read_text())["groups"]
        for rule in group["rules"]
    }
    cases = yaml.safe_load((OPS / "alerts_test.yml").read_text())["tests"]
    fired = {
        case["alertname"] for test in cases for case in test["alert_rule_test"] if case.get("exp_alerts")
    }
    assert fired == alerts  # every alert has a case where it fires
    assert all(
        rule_has_runbook(rule)
        for g in yaml.safe_load((OPS / "alerts.yml").read_text())["groups"]
        for rule in g["rules"]
    )


def rule_has_runbook(rule: dict[str, object]) -> bool:
    annotations = rule.get("annotations")
    return isinstance(annotations, dict) and len(str(annotations.get("runbook", ""))) > 80
