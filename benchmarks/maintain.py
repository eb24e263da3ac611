"""`python -m benchmarks.maintain [JOB]`: one run of a scheduled job, as its schedule runs it, timed.

`maintenance_job` (the default: the hourly lake maintenance) or `profiles_job` (the `profiles` refresh,
LAKEMAIL_PROFILES_REFRESH), on the persistent instance of `LAKEMAIL_HOME`, in-process, in a child of
the benchmark (so its memory and imports are its own, as a run worker's would be).
"""

from __future__ import annotations

import sys
import time

from orchestration.definitions import build_defs
from orchestration.instance import persistent_instance
from orchestration.settings import Settings, ensure_secret

JOBS = ("maintenance_job", "profiles_job")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    name = args[0] if args else JOBS[0]
    if name not in JOBS:
        print(f"benchmarks.maintain: one of {', '.join(JOBS)}, not {name!r}", file=sys.stderr)
        return 2
    settings = Settings.load()
    ensure_secret(settings.home)
    job = build_defs(settings).resolve_job_def(name)
    instance = persistent_instance(settings)
    started = time.perf_counter()
    result = job.execute_in_process(instance=instance, raise_on_error=False)
    seconds = time.perf_counter() - started
    print(f"{name}: {'SUCCESS' if result.success else 'FAILURE'} in {seconds:.2f} s")
    return 0 if result.success else 1


if __name__ == "__main__":
    sys.exit(main())
