"""Dagster wiring of the ingest stage: one multi-asset over events, quarantine, ingest_log, identities."""

from collections.abc import Iterator
from typing import Any

import dagster as dg

from assets.clock import EngineConfig, engine_now
from assets.metadata import RUN_BATCHES, markdown_table
from resources.lake import LakeResource
from resources.landing import LandingResource
from resources.secrets import SecretsResource
from resources.state import StateResource
from stores.ingest import ingest
from stores.ingest_files import failed_files
from stores.ingest_report import IngestReport
from transforms.ingest.batch import DEFAULT_MAX_BATCH_MB

INGEST_GROUP = "ingest"


class BatchConfig(EngineConfig):
    """Which landed files a micro-batch takes (the sensor's manifest); none means everything landed.

    `retry`: failed files to take again now (`lakemail retry`); `retry_failed_through`: every file failing
    as of that batch too (`lakemail retry --failed` when naming them would swell the config:
    `orchestration.jobs.retry_config`); `now` is when backoffs are over.
    """

    files: list[str] | None = None
    max_batch_mb: int = DEFAULT_MAX_BATCH_MB
    retry: list[str] | None = None
    retry_failed_through: int | None = None


def _metadata(report: IngestReport) -> dict[str, dict[str, Any]]:
    lag = report.lag_seconds
    preview = report.preview
    return {
        "events": {
            "files": report.files,
            "lines": report.lines,
            "accepted": report.accepted,
            "duplicates": report.duplicates,
            "batches": ", ".join(map(str, report.batches)) or "none",
            "batch_lag_seconds": dg.FloatMetadataValue(lag) if lag is not None else dg.NullMetadataValue(),
            "preview": dg.MetadataValue.md(
                markdown_table(preview) if preview is not None else "no new events"
            ),
        },
        "quarantine": {
            "quarantined": sum(report.quarantined.values()),
            "by_reason": dg.MetadataValue.json(dict(sorted(report.quarantined.items()))),
        },
        "ingest_log": {
            RUN_BATCHES: dg.MetadataValue.json(report.batches),  # what the run's in-run checks judge
            "files": report.files,
            "failed_files": len(report.failed_files),
            "changed_files": len(report.changed_files),
            "retrying_files": len(report.retrying_files),
            "reference_rows": report.reference_rows,
        },
        "identities": {"batches": ", ".join(map(str, report.batches)) or "none"},
        "customers": {"files": report.reference_files.get("customers", 0)},
        "catalog": {"files": report.reference_files.get("catalog", 0)},
        "catalog_changes": {"changes": report.catalog_changes},
    }


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            "events", group_name=INGEST_GROUP, description="Validated, deduplicated shopper events."
        ),
        dg.AssetSpec(
            "quarantine", group_name=INGEST_GROUP, description="Rejected landed lines, with reasons."
        ),
        dg.AssetSpec(
            "ingest_log", group_name=INGEST_GROUP, description="One row per landed file and outcome."
        ),
        dg.AssetSpec("identities", group_name=INGEST_GROUP, description="anonymous_id -> user_id edges."),
        dg.AssetSpec(
            "customers", group_name=INGEST_GROUP, description="Latest CRM row per user (customers/)."
        ),
        dg.AssetSpec("catalog", group_name=INGEST_GROUP, description="Latest row per product (catalog/)."),
        dg.AssetSpec(
            "catalog_changes",
            group_name=INGEST_GROUP,
            description="Back-in-stock and price-drop changes, as the catalog moved.",
        ),
    ],
    check_specs=[
        dg.AssetCheckSpec(
            "no_failed_files", asset="ingest_log", description="No landed file of this batch failed to read."
        )
    ],
)
def ingest_stage(
    context: dg.AssetExecutionContext,
    config: BatchConfig,
    lake: LakeResource,
    landing: LandingResource,
    state: StateResource,
    secrets: SecretsResource,
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    """Take the batch's landed files into the lake, exactly once, and each batch into the state store."""
    retry = list(config.retry or ())
    if config.retry_failed_through is not None:
        retry += failed_files(lake, config.retry_failed_through)["source_file"].to_list()
    report = ingest(
        lake,
        landing,
        config.files,
        max_batch_bytes=config.max_batch_mb * 1024 * 1024,
        now=engine_now(config),
        retry=retry,
        state=state,
        secret=secrets.hmac_key,
    )
    context.log.info(
        "batch %s: %s files, %s accepted, %s duplicates, %s quarantined, %s failed",
        report.batches,
        report.files,
        report.accepted,
        report.duplicates,
        sum(report.quarantined.values()),
        len(report.failed_files),
    )
    for key, metadata in _metadata(report).items():
        yield dg.MaterializeResult(asset_key=key, metadata=metadata)
    yield dg.AssetCheckResult(
        asset_key="ingest_log",
        check_name="no_failed_files",
        passed=not report.failed_files,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"failed": dg.MetadataValue.json(report.failed_files)},
    )
