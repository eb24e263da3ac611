"""`lakemail process`: both lanes once, in-process, on everything landed: `microbatch_job`, the ingest
lane's steps then the decide lane's in one run (the runner and the sensors run them as `ingest_job` and
`decide_job`, overlapping; `orchestration.lanes`)."""

from __future__ import annotations

import json
from typing import Any

import dagster as dg

from orchestration.definitions import build_defs
from orchestration.instance import persistent_instance
from orchestration.jobs import MICROBATCH_JOB, lane_manifest, microbatch_config, retry_config
from orchestration.leases import execute_leased
from orchestration.settings import Settings
from resources.lake import LakeResource
from stores.ingest_files import failed_files
from transforms.schema import INGEST_LOG_SCHEMA

SUMMARY_KEYS = {
    "events": ("files", "lines", "accepted", "duplicates"),
    "quarantine": ("quarantined",),
    "ingest_log": ("failed_files", "reference_rows"),
    "triggers": ("decisions",),
}


def process_once(
    settings: Settings, instance: dg.DagsterInstance | None = None, *, now: str | None = None
) -> dict[str, Any]:
    """Run `microbatch_job` once over everything landed (ingest, then decide and deliver, each step under
    its lane's lock); its run shows in the UI's history.

    `now` (ISO-8601) evaluates time-based triggers as of that instant instead of the clock.
    """
    job = build_defs(settings).resolve_job_def(MICROBATCH_JOB)
    instance = instance or persistent_instance(settings)
    # Under this process's pid and lease: if it dies mid-run, the runner or sensor takes the batch again.
    result = execute_leased(
        job, instance, microbatch_config(None, settings.max_batch_mb, now), "lakemail process"
    )
    summary: dict[str, Any] = {"run_id": result.run_id, "status": "SUCCESS" if result.success else "FAILURE"}
    for event in result.get_asset_materialization_events():
        metadata = event.materialization.metadata
        asset = event.asset_key.to_user_string() if event.asset_key else ""
        for key in SUMMARY_KEYS.get(asset, ()):
            if key in metadata:
                summary[key] = metadata[key].value
    return summary


def retry_once(
    settings: Settings, paths: list[str] | None, instance: dg.DagsterInstance | None = None
) -> tuple[dict[str, Any], list[tuple[str, str, str]]]:
    """Take failed landing files again now (`paths`, or every failed one for None) through
    `microbatch_job`: (run summary, (path, status, detail) of each file afterwards). Given `paths` are
    named in the run config; every failed one only while `lane_manifest` names them (`retry_config`).

    Raises ValueError naming a path whose last outcome is not a failure.
    """
    lake = LakeResource(uri=settings.lake_uri)
    through = lake.committed_batch()  # the run finds the failing files as of it, when not named
    failing = set(failed_files(lake, through)["source_file"])
    targets = sorted(failing) if paths is None else list(dict.fromkeys(paths))
    unknown = [p for p in targets if p not in failing]
    if unknown:
        raise ValueError(f"not a failed landing file (see ingest_log): {', '.join(unknown)}")
    if not targets:
        return {"run_id": None, "status": "SUCCESS"}, []
    named = targets if paths is not None else lane_manifest(targets)
    job = build_defs(settings).resolve_job_def(MICROBATCH_JOB)
    result = execute_leased(  # in flight means alive: a retry that dies blocks nobody (#13.1)
        job,
        instance or persistent_instance(settings),
        retry_config(named, through, settings.max_batch_mb),
        "lakemail retry",
    )
    summary: dict[str, Any] = {"run_id": result.run_id, "status": "SUCCESS" if result.success else "FAILURE"}
    return summary, last_outcomes(lake, targets)


def last_outcomes(lake: LakeResource, paths: list[str]) -> list[tuple[str, str, str]]:
    """(path, status, detail) of the last ingest_log row of each of `paths`."""
    rows = lake.read("ingest_log", INGEST_LOG_SCHEMA, ["source_file", "batch_id", "status", "detail"])
    last = rows.sort("batch_id").group_by("source_file").last()
    found = {p: (s, d or "") for p, _, s, d in last.iter_rows()}
    return [(p, *found.get(p, ("not taken", "no longer landed"))) for p in paths]


def erase_once(
    settings: Settings, user_id: str, instance: dg.DagsterInstance | None = None
) -> tuple[bool, str]:
    """Erase a user now through `erasure_job` (the same job as requests in `erasure/`): (passed, certificate).

    The user id goes into a request file, never into run config, which Dagster stores and shows. An id
    no erasure can be about (empty, blank, too long) raises InvalidUserId before anything lands.
    """
    from assets.erasure import run_config_for
    from resources.landing import LandingResource
    from stores.erasure.requests import submit_request
    from transforms.erasure.person import check_user_id

    path = submit_request(LandingResource(uri=settings.landing_uri), check_user_id(user_id))
    job = build_defs(settings).resolve_job_def("erasure_job")
    result = job.execute_in_process(
        instance=instance or persistent_instance(settings),
        run_config=run_config_for(path),
        tags={"lakemail/launched_by": "lakemail erase"},
        raise_on_error=False,
    )
    if not result.success:
        return False, "the erasure run failed; see its logs in the Dagster UI (the request stays for a retry)"
    certificates = result.output_for_node("erase_requests")
    if len(certificates) != 1:  # set aside or carried out by another run: its logs say which
        return False, f"the erasure run {result.run_id} certified nothing; see its logs in the Dagster UI"
    return bool(json.loads(certificates[0]).get("passed")), certificates[0]
