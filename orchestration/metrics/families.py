"""The runner's own metrics: what its micro-batch runs did. Names `lakemail_*`, units in the names,
labels bounded (a stage, a status, a reason code, a trigger kind and decision; never a person)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from orchestration.jobs import LANE_JOBS

# Landed -> committed targets p95 10 s and landed -> sent p95 30 s (the audits' SLOs): buckets at both.
LATENCY_BUCKETS = (0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)
DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
STAGES = (
    "ingest_stage",
    "triggers",
    "sends",
)  # the micro-batch's steps (Dagster step keys; profiles left it, #15)
LINE_OUTCOMES = ("accepted", "duplicate", "quarantined")
RUN_LANES = ("ingest", "decide", "both")  # a run's lane: its job's (`lane_of`)
SEND_STATUSES = ("sent", "retrying", "failed_permanent", "unknown", "aborted")


def lane_of(job_name: str) -> str:
    """The lane label of a run of `job_name`: `ingest`, `decide`, else `both` (microbatch_job, which
    `lakemail process` runs, takes both lanes)."""
    lanes = [lane for lane, jobs in LANE_JOBS.items() if job_name in jobs]
    return lanes[0] if len(lanes) == 1 else RUN_LANES[2]


class RunnerMetrics:
    """The counters and histograms one runner process updates after each of its runs."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.landed_to_committed = Histogram(
            "lakemail_landed_to_committed_seconds",
            "Per landed file committed by a run: from landing to its commit in ingest_log.",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.landed_to_sent = Histogram(
            "lakemail_landed_to_sent_seconds",
            "Per email the provider accepted: from the moment it could go (its event landed and its "
            "trigger's delay passed) to the provider's yes (the sends table's latency_ms).",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.stage_duration = Histogram(
            "lakemail_batch_stage_duration_seconds",
            "Duration of each stage (Dagster step) of a micro-batch run.",
            ["stage"],
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.run_duration = Histogram(
            "lakemail_batch_duration_seconds",
            "Duration of a whole micro-batch run.",
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.runs = Counter(
            "lakemail_runs_total",
            "Micro-batch runs this runner executed, by lane (ingest, decide; both: microbatch_job) and "
            "outcome: one lane failing every run shows while the other succeeds.",
            ["lane", "status"],
            registry=registry,
        )
        self.released = Counter(
            "lakemail_runs_released_total",
            "Micro-batch runs that stopped without finishing (their executor died: SIGKILL, OOM, a lost "
            "machine) that this runner found and marked failed, so their batch was taken again.",
            registry=registry,
        )
        self._counts(registry)

    def _counts(self, registry: CollectorRegistry) -> None:
        self.lines = Counter(
            "lakemail_lines_total",
            "Landed lines a run read, by outcome (blank lines are not counted).",
            ["outcome"],
            registry=registry,
        )
        self.quarantined = Counter(
            "lakemail_quarantined_lines_total",
            "Quarantined lines by reason code.",
            ["reason"],
            registry=registry,
        )
        self.failed_files = Counter(
            "lakemail_failed_files_total",
            "Landed files a run could not read (ingest_log).",
            registry=registry,
        )
        self.decisions = Counter(
            "lakemail_decisions_total",
            "Trigger decisions (the triggers table) by trigger kind and decision.",
            ["kind", "decision"],
            registry=registry,
        )
        self.sends = Counter(
            "lakemail_sends_total",
            "Outbox rows a run delivered or settled, by their new status (retrying: waits for a later run).",
            ["status"],
            registry=registry,
        )
        self.enqueued = Counter(
            "lakemail_sends_enqueued_total", "Outbox rows created from `send` decisions.", registry=registry
        )
        self.circuit_open = Gauge(
            "lakemail_provider_circuit_open",
            "1 while the provider's circuit is open (the last run that called it was refused our "
            "credentials, or could not reach it): sends wait for the cool-off; 0 otherwise.",
            ["provider"],
            registry=registry,
        )
        for lane in RUN_LANES[:2]:
            for status in ("success", "failure"):
                self.runs.labels(lane=lane, status=status)
        for stage in STAGES:
            self.stage_duration.labels(stage=stage)
        for outcome in LINE_OUTCOMES:
            self.lines.labels(outcome=outcome)
        for status in SEND_STATUSES:
            self.sends.labels(status=status)
