"""Dagster wiring of GDPR erasure: `erasure_job`, `erasure_sensor` and the HMAC secret as a resource.

Run config and metadata carry request file names and certificates only, never a user id or email:
`lakemail erase` lands a request file (`submit_request`) and runs the job on it.
"""

from typing import Any

import dagster as dg

from assets.erasure_io import RequestOutcome, pending_requests, process_request
from orchestration.resources import LakeResource, LandingResource

ERASURE_JOB = "erasure_job"
ERASE_OP = "erase_requests"
ERASURE_POLL_SECONDS = 5


class SecretsResource(dg.ConfigurableResource):
    """lakemail's secrets; bind `hmac_key` with `dg.EnvVar("LAKEMAIL_SECRET")`."""

    hmac_key: str


class ErasureConfig(dg.Config):
    """Which request files (landing-relative, e.g. `erasure/x.json`) to carry out; none: all pending."""

    requests: list[str] | None = None


def run_config_for(request_path: str) -> dict[str, Any]:
    """Run config of `erasure_job` for one request file (what the sensor and `lakemail erase` launch)."""
    return {"ops": {ERASE_OP: {"config": {"requests": [request_path]}}}}


def outcome_metadata(outcomes: list[RequestOutcome]) -> dict[str, Any]:
    """Run metadata: certificates and set-aside requests, without a raw identifier."""
    certificates = [o.certificate.to_dict() for o in outcomes if o.certificate is not None]
    return {
        "erased": len(certificates),
        "all_passed": all(c["passed"] for c in certificates),
        "certificates": dg.MetadataValue.json(certificates),
        "rejected": dg.MetadataValue.json({o.path: o.detail for o in outcomes if o.status == "rejected"}),
        "gone": dg.MetadataValue.json([o.path for o in outcomes if o.status == "gone"]),
        "failed": dg.MetadataValue.json({o.path: o.detail for o in outcomes if o.status == "failed"}),
    }


@dg.op(name=ERASE_OP)
def erase_requests(
    context: dg.OpExecutionContext,
    config: ErasureConfig,
    lake: LakeResource,
    landing: LandingResource,
    secrets: SecretsResource,
) -> list[str]:
    """Carry out erasure requests landed in `erasure/`; returns their certificates as JSON."""
    paths = config.requests if config.requests is not None else [f.path for f in pending_requests(landing)]
    outcomes: list[RequestOutcome] = []
    errors: list[Exception] = []
    for path in paths:
        try:
            outcomes.append(process_request(lake, landing, path, secret=secrets.hmac_key))
        except Exception as error:  # one request's failure must not hold back the others
            outcomes.append(RequestOutcome(path, "failed", type(error).__name__))
            errors.append(error)
    for outcome in outcomes:
        certificate = outcome.certificate
        if certificate is None:
            context.log.warning("erasure request %s %s: %s", outcome.path, outcome.status, outcome.detail)
        elif certificate.passed:
            context.log.info("erasure %s certified", certificate.request_id)
        else:
            context.log.error("erasure %s left traces: see its certificate", certificate.request_id)
    context.add_output_metadata(outcome_metadata(outcomes))
    if errors:
        raise errors[0]  # the run fails, the request file stays for a retry
    return [o.certificate.to_json() for o in outcomes if o.certificate is not None]


@dg.job(
    name=ERASURE_JOB,
    description="GDPR erasure: remove a person from every table, old version and landed file; certify it.",
    executor_def=dg.in_process_executor,
)
def erasure_job() -> None:
    erase_requests()


def erasure_run_requests(landing: LandingResource) -> list[dg.RunRequest]:
    """One run per pending request file, keyed by its path, size and landing time."""
    return [
        dg.RunRequest(
            run_key=f"{f.path}:{f.size}:{f.landed_at.isoformat()}",
            run_config=run_config_for(f.path),
        )
        for f in pending_requests(landing)
    ]


@dg.sensor(
    name="erasure_sensor",
    job_name=ERASURE_JOB,  # by name: `job=` trips a Dagster beta warning when resources are attached
    minimum_interval_seconds=ERASURE_POLL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Launches `erasure_job` for every request file landed in `erasure/`.",
)
def erasure_sensor(
    context: dg.SensorEvaluationContext, landing: LandingResource
) -> list[dg.RunRequest] | dg.SkipReason:
    requests = erasure_run_requests(landing)
    return requests or dg.SkipReason("no erasure requests")


def build_erasure_definitions(secret_env_var: str = "LAKEMAIL_SECRET") -> dg.Definitions:
    """The erasure job and sensor, with the secret read from `secret_env_var` at run time.

    Merge into the main Definitions, which provide the `lake` and `landing` resources.
    """
    return dg.Definitions(
        jobs=[erasure_job],
        sensors=[erasure_sensor],
        resources={"secrets": SecretsResource(hmac_key=dg.EnvVar(secret_env_var))},
    )
