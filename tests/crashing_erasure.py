"""An erasure run whose process is SIGKILLed right after the erasure's first Delta write.

Run as `python -m tests.crashing_erasure LAKE LANDING STATE REQUEST TAGS_JSON` with DAGSTER_HOME set: it
executes the real `erasure_job` on REQUEST against the persistent instance with TAGS (those the erasure
sensor's request carries, and the daemon's), as the run worker the daemon launches for the sensor.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

import dagster as dg
import orjson

from assets.erasure import run_config_for
from orchestration.jobs import ERASURE_JOB, erasure_job
from resources.lake import LakeResource
from resources.landing import LandingResource
from resources.secrets import SecretsResource
from resources.state import StateResource


class KilledAfterWriteLake(LakeResource):
    """The real lake resource, plus a SIGKILL of the whole process after its first `write`."""

    def write(self, *args: Any, **kwargs: Any) -> None:
        super().write(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGKILL)


def main(lake: str, landing: str, state: str, request: str, tags: str) -> None:
    defs = dg.Definitions(
        jobs=[erasure_job],
        resources={
            "lake": KilledAfterWriteLake(uri=lake),
            "landing": LandingResource(uri=landing),
            "secrets": SecretsResource(hmac_key=os.environ["LAKEMAIL_SECRET"]),
            "state": StateResource(uri=state),
        },
    )
    job = defs.resolve_job_def(ERASURE_JOB)
    job.execute_in_process(
        instance=dg.DagsterInstance.get(), run_config=run_config_for(request), tags=orjson.loads(tags)
    )


if __name__ == "__main__":
    main(*sys.argv[1:6])
