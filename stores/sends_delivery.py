"""The send stage's side effect: planned rows are rendered and delivered over HTTP, once each.

Right before a row's HTTP call an attempt marker (an empty file named by the send_id) is made
durable (`stores.sends_markers`); `stores.sends` removes it once the row's new status is committed.
The run's first call goes alone, as a probe: a refused key or a dead provider opens the circuit after one
call, and the rest of the run waits for the cool-off instead of repeating the refusal. The rest go
`concurrency` at a time. A 429 pauses every call until the window it named has passed: the rows not yet
called wait for its end, uncalled (`rate_limited`), and so do the next runs' while it is open.

Real time is only spent here, and only where it is the network's: HTTP timeouts, the backoff between
tries inside one `deliver` call, the run's own time budget. Every status a row gets waits from the
run's `now`; the wall clock of the provider's answer is only measured (for `sent_at` and latency).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from resources.email import LOOKUP_FAILED, DeliveryResult, deliver, lookup
from resources.provider_pause import ProviderPause
from resources.providers import EmailProvider
from resources.templates import RenderAborted, TemplateRenderer
from stores.sends_markers import AttemptMarkers
from stores.sends_report import SendsReport, example
from transforms.sends.clicks import ClickLink, click_token, tracked_context
from transforms.sends.content import Content, Shop
from transforms.sends.message import ORIGIN_ARG, Email, origin_mark, unsubscribe_token
from transforms.sends.plan import HELD_BY_CIRCUIT, Abort, Ask, Defer, Planned, Render, deferred
from transforms.sends.refusals import refusal_event
from transforms.sends.rows import RATE_LIMITED, Attempt, Waits, aborted, after_attempt
from transforms.triggers.policies import Policy

UNREACHABLE = ("ConnectError", "ConnectTimeout")  # deliver's last_error: the request never left


def _wall_clock() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Sender:
    """Everything a run needs to turn an outbox row into an email and send it."""

    provider: EmailProvider
    client: httpx.Client
    renderer: TemplateRenderer
    shop: Shop
    sender: str
    unsubscribe_url: Callable[[str], str]  # token -> URL
    unsubscribe_mailto: str
    secret: str
    staleness: timedelta
    click_link: Callable[[str], str] | None = None  # click token -> redirect URL (None: links untracked)
    max_attempts: int = 5
    max_seconds: float = 60.0  # one email's retries within a run (real time: the network's)
    run_seconds: float = 120.0  # all deliveries of a run; what is left waits for the next run
    concurrency: int = 8  # emails in flight at once (after the run's first, which goes alone)
    waits: Waits = field(default_factory=Waits)
    sleep: Callable[[float], None] = time.sleep
    wall_clock: Callable[[], datetime] = _wall_clock  # when an answer came (measured, never decided on)
    monotonic: Callable[[], float] = time.monotonic  # the network's: each provider call's deadline
    policy: Policy = field(default_factory=Policy)  # the engine's quiet hours, checked again when sending

    @property
    def can_lookup(self) -> bool:
        return self.provider.lookup_request("s-probe") is not None

    @property
    def resends(self) -> bool:
        """Whether an `unknown` send is sent again (the same key), the provider deduping, not asked."""
        return not self.can_lookup and self.provider.idempotent

    @property
    def row_waits(self) -> Waits:
        """`waits`, with no lookup of an `unknown` send when the provider cannot be asked (sent again
        instead, at the retry backoff, when it dedupes on the send's key)."""
        if self.can_lookup:
            return self.waits
        return replace(self.waits, lookup_after=None, resend_unknown=self.provider.idempotent)


@dataclass
class Delivery:
    """One run's calls: each planned row's new state, appended to `changed` as its answer comes."""

    sender: Sender
    markers: AttemptMarkers
    now: datetime
    offset: timedelta  # the run's clock minus the wall clock (zero unless the run config set `now`)
    report: SendsReport
    changed: list[dict[str, Any]] = field(default_factory=list)
    refusals: list[dict[str, Any]] = field(default_factory=list)  # `Email Bounced` events, to land first
    started: float = field(default_factory=time.monotonic)
    window: datetime | None = None  # the end of a rate-limit window an earlier run heard (the outbox's)
    pause: ProviderPause = field(default_factory=ProviderPause)  # this run's calls' rate-limit window

    def run(self, planned: list[Planned]) -> None:
        """Probe with one call at a time until one email has reached the provider, then the rest
        `concurrency` at a time (calls start in outbox order; they may end in any order)."""
        errors: list[BaseException] = []
        with ThreadPoolExecutor(max_workers=max(1, self.sender.concurrency)) as pool:
            probed = 0
            while probed < len(planned) and not self.report.called:
                errors += self._collect([pool.submit(self.one, planned[probed])])
                probed += 1
            errors += self._collect([pool.submit(self.one, p) for p in planned[probed:]])
        if errors:
            raise errors[0]  # the others' new states are in `changed`, committed all the same

    def _collect(self, futures: Iterable[Future[dict[str, Any] | None]]) -> list[BaseException]:
        errors: list[BaseException] = []
        for future in futures:
            try:
                updated = future.result()
            except Exception as error:
                errors.append(error)
                continue
            if updated is not None:
                self.changed.append(updated)
        return errors

    def one(self, planned: Planned) -> dict[str, Any] | None:
        """The row's new state after its call (None: unchanged, due again as it was)."""
        if time.monotonic() - self.started > self.sender.run_seconds:
            return None  # the rest stays due: the sensor starts the next run for it
        row, step = planned.row, planned.step
        if self.report.circuit_open:
            # A row that may already be at the provider keeps its status and its marker (a changed
            # row's marker goes): held as `retrying`, it would later be sent without being asked about.
            maybe_sent = isinstance(step, Ask) or row["status"] == "unknown"
            return None if maybe_sent else self._after(row, HELD_BY_CIRCUIT)
        asked = isinstance(step, Ask)
        if isinstance(step, Ask):
            settled = self._ask(row)
            if settled is not None:
                return self._after(row, settled)
            step = step.then
        if isinstance(step, Abort):
            return aborted(row, step.reason, step.fallbacks)
        if isinstance(step, Defer):  # never taken, and not to go now (quiet hours)
            return deferred(row, step, asked=True)
        if isinstance(step, Render) and (until := self.paused_until()) is not None:
            return deferred(row, Defer(until, RATE_LIMITED), asked=asked)  # status kept, no attempt
        if isinstance(step, Render):
            return self._send(row, step, asked=asked)
        raise ValueError(f"{type(step).__name__} needs no call")

    def _ask(self, row: dict[str, Any]) -> Attempt | None:
        """An interrupted or ambiguous send, settled by asking the provider (None: it never took it)."""
        sender = self.sender
        found = lookup(
            sender.provider, row["send_id"], sender.client, secret=sender.secret, monotonic=sender.monotonic
        )
        if found == LOOKUP_FAILED:
            return Attempt(status="unknown", attempts=0, last_error="lookup_failed")
        if found is not None:
            return Attempt(status="sent", attempts=0, provider_message_id=found, last_error=row["last_error"])
        return None

    def _send(self, row: dict[str, Any], step: Render, *, asked: bool = False) -> dict[str, Any]:
        """Render and deliver the row's email. An `unknown` row sent again blind (a provider deduping on
        its key) stays `unknown` unless taken; one the provider was `asked` about and never took is a
        send like any other: its answer is its status (a 400 `failed_permanent`, a 503 `retrying`)."""
        try:
            email = self._email(row["send_id"], step)
        except RenderAborted as abort:
            return aborted(row, abort.reason, step.content.fallbacks)
        self.markers.mark(row["send_id"])
        self.report.called = True
        result = deliver(
            self.sender.provider,
            email,
            self.sender.client,
            max_attempts=self.sender.max_attempts,
            max_seconds=self.sender.max_seconds,
            sleep=self.sender.sleep,
            monotonic=self.sender.monotonic,
            pause=self.pause,
        )
        answered = self.sender.wall_clock()
        attempt = _attempt(result, answered)
        if attempt.rate_limited and (until := self.paused_until()) is not None:
            # due at the window's end, as every row it holds, and marked: the next runs read the window
            waited = (until - self.now).total_seconds()
            attempt = replace(attempt, retry_in=waited, last_error=f"{RATE_LIMITED}: {attempt.last_error}")
        if result.inactive_recipient:  # the provider refuses the address: land it as a hard bounce
            provider = self.sender.provider.name
            who = {"send_id": row["send_id"], "user_id": row["user_id"], "email": step.to}
            self.refusals.append(refusal_event(**who, provider=provider, at=answered))
        if attempt.circuit_open:  # only ever set, never cleared: safe from any worker thread
            self.report.circuit_open = True
            # a refused key or a wrong setting is the news, whatever else
            if self.report.circuit_cause in (None, "unreachable"):
                self.report.circuit_cause = result.circuit_cause or "unreachable"
        if result.status == "sent" and self.report.example is None:
            self.report.example = example(
                self.sender.renderer, self.sender.unsubscribe_url, step.content, row
            )
        resent = row["status"] == "unknown" and not asked
        updated = self._again(row, attempt) if resent else self._after(row, attempt)
        return {**updated, "fallbacks": json.dumps(step.content.fallbacks)}

    def paused_until(self) -> datetime | None:
        """The end of the provider's rate-limit window when one is open (None: calls may go): an earlier
        run's, or the one this run's calls heard, counted from the run's `now` as every wait is."""
        ends = [self.window] if self.window is not None and self.window > self.now else []
        if self.pause.longest is not None and self.pause.left() > 0:
            ends.append(self.now + timedelta(seconds=self.pause.longest))
        return max(ends, default=None)

    def _again(self, row: dict[str, Any], attempt: Attempt) -> dict[str, Any]:
        """An `unknown` send sent again (its key, the provider deduping): unless `sent`, still `unknown`,
        the first may have gone; a refusal (e.g. a receiver's 422 for the key reused with a body
        rendered anew) ends its resends, anything else waits for the next one."""
        if attempt.status == "sent":
            return self._after(row, attempt)
        waits = self.sender.row_waits
        if attempt.status == "failed_permanent":
            waits = replace(waits, resend_unknown=False)
        again = replace(attempt, status="unknown")
        return after_attempt(row, again, now=self.now, waits=waits, offset=self.offset)

    def _tracked(self, send_id: str, step: Render) -> Content:
        """The step's content with every marketing link through the signed click redirect."""
        sender, issued = self.sender, self.sender.wall_clock().timestamp()  # about when it is delivered
        if sender.click_link is None:
            return step.content
        to_redirect = sender.click_link
        trigger_id = step.custom_args.get("trigger_id", "")

        def link(url: str, role: str) -> str:
            click = ClickLink(send_id, trigger_id, step.kind, step.variant, role, url, issued)
            return to_redirect(click_token(click, sender.secret))

        context = tracked_context(step.content.context, step.kind, link)
        return Content(context=context, fallbacks=step.content.fallbacks)

    def _email(self, send_id: str, step: Render) -> Email:
        sender = self.sender
        return sender.renderer.render_email(
            self._tracked(send_id, step),
            kind=step.kind,
            variant=step.variant,
            send_id=send_id,
            to=step.to,
            sender=sender.sender,
            unsubscribe_url=sender.unsubscribe_url(unsubscribe_token(send_id, sender.secret)),
            unsubscribe_mailto=sender.unsubscribe_mailto,
            # this home's mark: a look-up later trusts only a message that carries it
            custom_args={**step.custom_args, ORIGIN_ARG: origin_mark(send_id, sender.secret)},
        )

    def _after(self, row: dict[str, Any], attempt: Attempt) -> dict[str, Any]:
        return after_attempt(row, attempt, now=self.now, waits=self.sender.row_waits, offset=self.offset)


def _attempt(result: DeliveryResult, answered_at: datetime) -> Attempt:
    # A provider we cannot even connect to is treated like one that refuses our key: the rest of the
    # run waits for the cool-off instead of spending every email's retry budget on the same refusal.
    unreachable = result.status == "retrying" and result.last_error in UNREACHABLE
    return Attempt(
        status=result.status,
        attempts=result.attempts,
        provider_message_id=result.provider_message_id,
        last_error=result.last_error,
        circuit_open=result.circuit_open or unreachable,
        retry_in=result.retry_in,
        answered_at=answered_at if result.status == "sent" else None,
        rate_limited=result.rate_limited and result.status != "sent",
    )
