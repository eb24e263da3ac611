"""Dagster wiring of `sends`: the outbox of every `send` decision, delivered through the email provider."""

from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg
import httpx

from assets.clock import EngineConfig, engine_clock
from assets.triggers import DECISIONS_GROUP
from resources.email import EmailProviderResource
from resources.lake import LakeResource
from resources.landing import LandingResource
from resources.secrets import SecretsResource
from resources.shop import ShopResource
from resources.state import StateResource
from resources.templates import default_renderer
from stores.sends import run_sends
from stores.sends_delivery import Sender, SendsReport
from transforms.sends.rows import Waits, run_summary
from transforms.triggers.policies import Policy


def build_sends_asset(policy: Policy | None = None) -> dg.AssetsDefinition:
    """The `sends` asset, holding emails to the quiet hours of `policy` (the engine's) when they go."""

    @dg.asset(
        name="sends",
        group_name=DECISIONS_GROUP,
        deps=["triggers"],
        description="The outbox: one row per `send` decision, committed before its HTTP call, sent once.",
    )
    def sends(
        context: dg.AssetExecutionContext,
        config: EngineConfig,
        lake: LakeResource,
        state: StateResource,
        landing: LandingResource,
        secrets: SecretsResource,
        email: EmailProviderResource,
        shop: ShopResource,
    ) -> dg.MaterializeResult:
        """Enqueue new `send` decisions, then render and deliver every due outbox row."""
        now, offset = engine_clock(config)
        with lake.decide_lock(), email.client() as client:  # the decide lane (#15): ingest never waits
            sender = _sender(email, shop, secrets, client, policy or Policy())
            report = run_sends(lake, state, landing, sender, now=now, offset=offset)
        until = datetime.now(UTC) + offset  # the step's end on the run's clock, as `sent_at` is written
        summary = run_summary(report.rows)
        context.log.info(
            "sends: %s enqueued; %s sent, %s aborted, %s failed, %s unknown, %s waiting%s%s",
            report.enqueued,
            summary["sent"],
            summary["aborted"],
            summary["failed"],
            summary["unknown"],
            summary["waiting"],
            report.circuit_note,
            report.pause_note,
        )
        metadata = _metadata(report, summary, email.provider().name)
        # The window the run's `sent_at`s fall in (the runner's metrics read its sends by it, #18).
        metadata.update(sent_from=now.isoformat(), sent_until=until.isoformat())
        return dg.MaterializeResult(metadata=metadata)

    return sends


def _sender(
    email: EmailProviderResource,
    shop: ShopResource,
    secrets: SecretsResource,
    client: httpx.Client,
    policy: Policy,
) -> Sender:
    return Sender(
        provider=email.provider(),
        client=client,
        renderer=default_renderer(),
        shop=shop.shop(),
        sender=email.sender,
        unsubscribe_url=shop.unsubscribe_url,
        click_link=shop.click_link,
        unsubscribe_mailto=shop.unsubscribe_mailto,
        secret=secrets.hmac_key,
        staleness=timedelta(hours=shop.staleness_hours),
        max_attempts=email.max_attempts,
        max_seconds=email.max_seconds,
        run_seconds=email.run_seconds,
        concurrency=email.concurrency,
        waits=Waits(
            cool_off=timedelta(seconds=email.circuit_cool_off_s),
            lookup_after=timedelta(seconds=email.lookup_after_s),
        ),
        policy=policy,
    )


def _metadata(report: SendsReport, summary: dict[str, Any], provider: str) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "enqueued": report.enqueued,
        **{k: summary[k] for k in ("sent", "retried", "failed", "aborted", "unknown", "waiting")},
        "fallbacks_used": dg.MetadataValue.json(summary["fallbacks"]),
        "latency_p50_ms": _or_null(summary["latency_p50_ms"]),
        "latency_p95_ms": _or_null(summary["latency_p95_ms"]),
        "circuit_open": report.circuit_open,
        "provider": provider,
    }
    if report.circuit_cause is not None:
        metadata["circuit_cause"] = report.circuit_cause
    if report.rate_limited_until is not None:
        metadata["rate_limited_until"] = report.rate_limited_until.isoformat()
    if report.example is not None:
        metadata["example"] = dg.MetadataValue.md(report.example)
    return metadata


def _or_null(value: int | None) -> Any:
    return value if value is not None else dg.NullMetadataValue()
