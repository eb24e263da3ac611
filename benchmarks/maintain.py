"""`python -m benchmarks.maintain`: one lake maintenance pass, as the hourly schedule runs it, timed.

The same `maintenance_job` on the persistent instance of `LAKEMAIL_HOME`, in-process, in a child of the
benchmark (so its memory and imports are its own, as a run worker's would be).
"""

from __future__ import annotations

import sys
import time

from orchestration.definitions import build_defs
from orchestration.instance import persistent_instance
from orchestration.settings import Settings, ensure_secret


def main() -> int:
    settings = Settings.load()
    ensure_secret(settings.home)
    job = build_defs(settings).resolve_job_def("maintenance_job")
    instance = persistent_instance(settings)
    started = time.perf_counter()
    result = job.execute_in_process(instance=instance, raise_on_error=False)
    seconds = time.perf_counter() - started
    print(f"maintenance: {'SUCCESS' if result.success else 'FAILURE'} in {seconds:.2f} s")
    return 0 if result.success else 1


if __name__ == "__main__":
    sys.exit(main())
