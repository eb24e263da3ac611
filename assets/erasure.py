"""Dagster wiring of GDPR erasure: the `erase_requests` op (its job and sensor live in orchestration).

Run config and metadata carry request file names and certificates only, never a user id or email:
`lakemail erase` lands a request file (`submit_request`) and runs the job on it. A request file is first
renamed to `erasure/req-<random>.json` (stores.erasure.names), so its own name, which may be the
person's, reaches no log, metadata or error; the sensor launches runs on renamed files only.
"""

from typing import Any

import dagster as dg

from resources.lake import LakeResource
from resources.landing import LandingResource
from resources.secrets import SecretsResource
from resources.state import StateResource
from stores.erasure.names import opaque_path, take_request
from stores.erasure.requests import RequestOutcome, pending_requests, process_request

ERASE_OP = "erase_requests"


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
    state: StateResource,
) -> list[str]:
    """Carry out erasure requests landed in `erasure/`; returns their certificates as JSON."""
    paths = config.requests if config.requests is not None else [f.path for f in pending_requests(landing)]
    outcomes: list[RequestOutcome] = []
    errors: list[Exception] = []
    for requested in paths:
        path = opaque_path(requested)  # what logs, metadata and errors say from here on
        try:
            take_request(landing, requested, path)
        except OSError as error:  # it names neither the file nor its new name
            outcomes.append(
                RequestOutcome(path, "failed", f"{error}; it waits under the name it landed with")
            )
            errors.append(error)
            continue
        try:
            outcomes.append(process_request(lake, landing, path, secret=secrets.hmac_key, state=state))
        except Exception as error:  # one request's failure must not hold back the others
            detail = f"{type(error).__name__}; it stays as {path} for a retry"
            outcomes.append(RequestOutcome(path, "failed", detail))
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
