"""Runs in a process of its own, for tests/e2e/test_lanes.py: `python -m tests.lanes_decide HOME ESP_URL
JOBS` runs each of the comma-separated JOBS (`ingest_job,decide_job`; before #15 `microbatch_job`) once,
in order, on HOME's lake, delivering through ESP_URL (no quiet hours), on a throwaway Dagster instance;
exit 0 when every run succeeded."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import dagster as dg

from orchestration.definitions import build_defs
from orchestration.settings import Settings
from transforms.triggers.policies import Policy


def main(home: str, esp_url: str, jobs: str) -> int:
    root = Path(home)
    settings = Settings(
        home=root,
        lake_uri=str(root / "lake"),
        landing_uri=str(root / "landing"),
        esp_url=esp_url,
        public_url=esp_url,
        policy=Policy(quiet_hours=False),
    )
    defs = build_defs(settings)
    with tempfile.TemporaryDirectory() as temp, dg.instance_for_test(temp_dir=temp) as instance:
        for name in jobs.split(","):
            job = defs.resolve_job_def(name)
            if not job.execute_in_process(instance=instance, raise_on_error=False).success:
                return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
