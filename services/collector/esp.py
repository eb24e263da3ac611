"""`POST /v1/esp/sendgrid` and `POST /v1/esp/postmark`: the email providers' event webhooks, so the
bounces and spam complaints a real provider reports suppress (PRODUCT.md section 6: "bounces and
unsubscribes -> suppressions"; the providers report them only through these webhooks).

What lands is services.collector.esp_events' `Email Bounced` / `Email Marked as Spam` track messages,
through the same group committer as tracked messages: 200 only once they are durable, so a provider
that hears anything else posts again (its retries land duplicates the ingest drops). The app refuses
early as for tracking (429, 503); who may post is services.collector.esp_auth's: the webhooks' own
secret or SendGrid's signature (401), never the public write key (503 while neither is configured).
A send named by this home's mark is looked up in the lake's `sends` for its user; a lake that cannot
be read then costs the user id, not the event (the address suppresses).
Nothing here logs an address, a send or a user: counts by provider and kind only.
A big body is read and stamped in a worker thread (wire.OffLoop), and its answer lists the first refused
events only.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from fastapi import Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry, Counter
from starlette.concurrency import run_in_threadpool

from services.collector.commit import GroupCommitter
from services.collector.esp_auth import EspAuth
from services.collector.esp_events import Refused, Report, postmark_report, sendgrid_report, trusted_send
from services.collector.esp_events import track_message as message_of
from services.collector.wire import (
    LISTED_REFUSALS,
    OffLoop,
    Stamped,
    WireError,
    decode,
    listing,
    read_body,
    stamp,
)

log = logging.getLogger(__name__)
# SendGrid's batches may pass a Segment batch's 500 KB: refused, such a batch would be posted again and
# again and never land. Past this bound a body is refused as /v1/batch's are.
ESP_MAX_BODY_BYTES = 1024 * 1024
PROVIDERS = ("sendgrid", "postmark")
UserLookup = Callable[[Sequence[str]], Mapping[str, str]]  # send ids -> their users (the lake's `sends`)


def esp_events_counter(registry: CollectorRegistry) -> Counter:
    return Counter(
        "lakemail_collector_esp_events_total",
        "Events of the providers' webhooks, by provider and kind: hard_bounce, transient_bounce and "
        "complaint landed; ignored (deliveries, opens, ...); refused (malformed).",
        ["provider", "kind"],
        registry=registry,
    )


def read_events(provider: str, body: bytes) -> list[Any]:
    """The provider events of a webhook body: SendGrid's JSON array, Postmark's one object (400 else)."""
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise WireError(400, "invalid_json", f"the body is not JSON: {str(error)[:200]}") from None
    if provider == "sendgrid" and not isinstance(value, list):
        raise WireError(400, "invalid_batch", "SendGrid's Event Webhook posts a JSON array of events")
    if provider == "postmark" and not isinstance(value, dict):
        raise WireError(400, "invalid_json", f"a JSON {type(value).__name__}, not a Postmark record")
    return value if isinstance(value, list) else [value]


@dataclass
class Reading:
    """A webhook body read: the reports that land (with their index in the body), what was refused (the
    first LISTED_REFUSALS by index, and how many in all), and how many events report nothing lakemail
    lands."""

    reports: list[tuple[int, Report]]
    rejected: list[dict[str, Any]]
    ignored: int
    refused: int = 0


def read_reports(provider: str, events: list[Any]) -> Reading:
    """Each of `events` read as `provider` reports it: landed, refused (by index) or ignored."""
    report_of = sendgrid_report if provider == "sendgrid" else postmark_report
    reading = Reading([], [], 0)
    for index, event in enumerate(events):
        try:
            report = report_of(event)
        except Refused as refused:
            reading.refused += 1
            if len(reading.rejected) < LISTED_REFUSALS:
                reading.rejected.append(
                    {"index": index, "reason": str(refused.reason), "detail": refused.detail}
                )
            continue
        if report is None:
            reading.ignored += 1
        else:
            reading.reports.append((index, report))
    return reading


@dataclass
class EspWebhooks:
    """Lands the providers' webhooks through `committer` (see the module)."""

    committer: GroupCommitter
    clock: Callable[[], datetime]
    secret: str | None  # LAKEMAIL_SECRET: which sends carry this home's mark (None: no send is trusted)
    find_users: UserLookup | None
    counted: Counter
    auth: EspAuth  # who may post (services.collector.esp_auth)
    off_loop: OffLoop = field(default_factory=OffLoop)

    async def land(self, provider: str, request: Request) -> Response:
        """One webhook request: check its credentials, land its reports, then answer."""
        headers = request.headers
        self.auth.admit(provider, headers)
        raw = await read_body(request.stream(), headers.get("content-length"), ESP_MAX_BODY_BYTES)
        self.auth.verify(provider, headers, raw, self.clock())  # SendGrid signs the body as sent
        encoding = headers.get("content-encoding")
        reading, sends = await self.off_loop.run(lambda: self._read(provider, raw, encoding), raw, encoding)
        users = await self._users(sorted({s for s in sends if s is not None}))
        received = self.clock().astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        kept = await self.off_loop.run(lambda: _stamp(reading, sends, users, received), raw, None)
        # a message over the line limit (an absurd address) is refused under its event's index
        too_long = [{**r, "index": reading.reports[r["index"]][0]} for r in kept.rejected]
        rejected = sorted(reading.rejected + too_long, key=lambda r: int(r["index"]))
        refused = reading.refused + len(too_long)
        if rejected and not kept.lines and not reading.ignored:
            self._count(provider, {"refused": refused})
            first = rejected[0]
            refusal = {"success": False, "code": first["reason"], "message": first["detail"]}
            return JSONResponse(refusal | listing(rejected, refused), status_code=400)
        if kept.lines:
            await self.committer.commit(b"".join(kept.lines), len(kept.lines))
        counts = {"ignored": reading.ignored, "refused": refused}
        unfit = {r["index"] for r in too_long}
        for index, report in reading.reports:
            counts[report.kind] = counts.get(report.kind, 0) + (index not in unfit)
        self._count(provider, counts)
        landed = len(kept.lines)
        log.info("%s webhook: %s landed, %s ignored, %s refused", provider, landed, reading.ignored, refused)
        answer: dict[str, Any] = {"success": True, "landed": landed, "ignored": reading.ignored}
        return JSONResponse(answer | (listing(rejected, refused) if rejected else {}))

    def _read(self, provider: str, body: bytes, encoding: str | None) -> tuple[Reading, list[str | None]]:
        """A webhook body read, and the send its mark trusts of each report (blocking: a 1 MB body may
        hold 500,000 events)."""
        reading = read_reports(provider, read_events(provider, decode(body, encoding, ESP_MAX_BODY_BYTES)))
        return reading, [trusted_send(report.args, self.secret) for _, report in reading.reports]

    async def _users(self, send_ids: list[str]) -> Mapping[str, str]:
        if not send_ids or self.find_users is None:
            return {}
        try:
            return await run_in_threadpool(self.find_users, send_ids)
        except Exception as error:  # the address still suppresses: land the events without their user
            log.warning("the sends of a webhook could not be looked up (%s)", type(error).__name__)
            return {}

    def _count(self, provider: str, counts: Mapping[str, int]) -> None:
        for kind, count in counts.items():
            if count:
                self.counted.labels(provider=provider, kind=kind).inc(count)


def _stamp(reading: Reading, sends: list[str | None], users: Mapping[str, str], received: str) -> Stamped:
    """The reports as landing lines (wire.stamp), each under its send's user when one is known."""
    messages = [
        message_of(report, send_id=send, user_id=users.get(send) if send else None)
        for (_, report), send in zip(reading.reports, sends, strict=True)
    ]
    return stamp(messages, sent_at=None, received_at=received)
