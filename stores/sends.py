"""The outbox's I/O: `send` decisions become `pending` rows, due rows are delivered, and every status
change is committed to `sends` (one row per send_id, Delta MERGE on that id).

Exactly once:
1. `enqueue` commits the `pending` rows of new `send` decisions before any HTTP call, with the last
   trigger evaluation it took as a Delta application transaction (a retried run takes none twice).
2. Right before a row's HTTP call, an attempt marker (an empty file named by the send_id, in the
   lake's `_outbox_attempts` folder) is made durable; it is removed once the row's new status is
   committed. A row found `pending` with a marker was interrupted after (perhaps during) its call:
   it is looked up at the provider when the provider can say (the sandbox can), else it becomes
   `unknown` and is never resent blindly. A row without a marker never reached the provider.
3. `unknown` rows (an ambiguous timeout) are only settled by asking a provider that can answer.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import polars as pl

from resources.email import LOOKUP_FAILED, deliver, lookup
from resources.lake import LakeResource
from resources.providers import EmailProvider
from resources.templates import RenderAborted, TemplateRenderer
from stores.profiles import customers_for, scan_table, state_for
from stores.triggers import RUN_APP, suppressed_users
from transforms.profiles.partials import derive, principal
from transforms.schema import CATALOG_SCHEMA, EVENTS_SCHEMA, SENDS_SCHEMA, TRIGGERS_SCHEMA
from transforms.sends.catalog import bestseller_ranking
from transforms.sends.content import Catalog, Content, Shop, build_content
from transforms.sends.message import unsubscribe_token
from transforms.sends.rows import (
    WAITING,
    Attempt,
    Waits,
    aborted,
    after_attempt,
    outbox_rows,
    trigger_facts,
)
from transforms.triggers.decide import exit_reasons_now

SENDS_APP = "lakemail-sends"  # the last trigger evaluation whose `send` decisions are in the outbox
ATTEMPTS_FOLDER = "_outbox_attempts"
UNREACHABLE = ("ConnectError", "ConnectTimeout")  # deliver's last_error: the request never left
BESTSELLER_WINDOW = timedelta(days=7)


def enqueue(lake: LakeResource, *, provider: str, now: datetime) -> int:
    """Commit `pending` rows for the `send` decisions of evaluations not taken yet; returns how many."""
    done = lake.app_version("sends", SENDS_APP)
    latest = lake.app_version("triggers", RUN_APP)
    if latest <= done and lake.table("sends") is not None:
        return 0
    decisions = (
        scan_table(lake, "triggers", TRIGGERS_SCHEMA)
        .filter(
            (pl.col("evaluation") > done) & (pl.col("evaluation") <= latest) & (pl.col("decision") == "send")
        )
        .select(list(TRIGGERS_SCHEMA))
        .collect()
    )
    rows = outbox_rows(decisions, _landed(lake, decisions), provider=provider, now=now)
    lake.upsert("sends", rows, key="send_id", tags={SENDS_APP: latest}, insert_only=True)
    return rows.height


def _landed(lake: LakeResource, decisions: pl.DataFrame) -> pl.DataFrame:
    """principal, event_ts, landed_at of the decisions' first events (partition and stats pruning)."""
    if decisions.height == 0:
        return pl.DataFrame(
            schema={"principal": pl.String, "event_ts": EVENTS_SCHEMA["event_ts"]}
        ).with_columns(pl.lit(None, EVENTS_SCHEMA["landed_at"]).alias("landed_at"))
    times = decisions["first_event_at"].drop_nulls().unique()
    dates = times.dt.date().unique().to_list()
    events = scan_table(lake, "events", EVENTS_SCHEMA).filter(
        pl.col("event_date").is_in(dates) & pl.col("event_ts").is_in(times.implode())
    )
    return events.select(principal().alias("principal"), "event_ts", "landed_at").collect()


def next_attempt(lake: LakeResource, *, lookups: bool = True) -> datetime | None:
    """When the outbox next has work: the earliest waiting (or, with `lookups`, unknown) row."""
    statuses = [*WAITING, "unknown"] if lookups else list(WAITING)
    found = (
        scan_table(lake, "sends", SENDS_SCHEMA)
        .filter(pl.col("status").is_in(statuses) & pl.col("next_attempt_at").is_not_null())
        .select(pl.col("next_attempt_at").min())
        .collect()
        .item()
    )
    return found if isinstance(found, datetime) else None


class AttemptMarkers:
    """Durable "an HTTP call for this send may have started" markers, on the machine that sends."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    @classmethod
    def for_lake(cls, lake: LakeResource) -> AttemptMarkers:
        """Next to a local lake; for an object-store lake, in this machine's temp folder (one sender)."""
        if "://" not in lake.uri or lake.uri.startswith("file://"):
            return cls(Path(lake.uri.removeprefix("file://")) / ATTEMPTS_FOLDER)
        digest = hashlib.sha256(lake.uri.encode()).hexdigest()[:16]
        return cls(Path(tempfile.gettempdir()) / f"lakemail{ATTEMPTS_FOLDER}-{digest}")

    def mark(self, send_id: str) -> None:
        fd = os.open(self.folder / send_id, os.O_CREAT | os.O_WRONLY, 0o600)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def marked(self, send_id: str) -> bool:
        return (self.folder / send_id).exists()

    def clear(self, send_ids: list[str]) -> None:
        for send_id in send_ids:
            (self.folder / send_id).unlink(missing_ok=True)


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
    max_attempts: int = 5
    max_seconds: float = 60.0  # one email's retries within a run
    run_seconds: float = 120.0  # all deliveries of a run; what is left waits for the next run
    concurrency: int = 8  # emails in flight at once (after the run's first, which goes alone)
    waits: Waits = field(default_factory=Waits)
    sleep: Callable[[float], None] = time.sleep

    @property
    def can_lookup(self) -> bool:
        return self.provider.lookup_request("s-probe") is not None


@dataclass
class OutboxReport:
    """What one run did to the outbox: the rows it changed (their new state) and an example email."""

    enqueued: int = 0
    rows: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=SENDS_SCHEMA))
    circuit_open: bool = False
    called: bool = False  # an email reached the provider's send API in this run
    example: str | None = None  # markdown of one sent email, names replaced


def due_rows(lake: LakeResource, now: datetime, *, lookups: bool) -> pl.DataFrame:
    statuses = [*WAITING, "unknown"] if lookups else list(WAITING)
    return (
        scan_table(lake, "sends", SENDS_SCHEMA)
        .filter(pl.col("status").is_in(statuses) & (pl.col("next_attempt_at") <= now))
        .select(list(SENDS_SCHEMA))
        .sort("created_at", "send_id")
        .collect()
    )


@dataclass
class _World:
    """The facts the rows of one run are checked and written against (read once per run)."""

    triggers: dict[str, dict[str, Any]]
    profiles: dict[str, dict[str, Any]]
    exits: dict[str, str]
    catalog: Catalog  # with each category's in-stock products, for recommendations
    bestsellers: Callable[[], list[str]]


def _world(lake: LakeResource, rows: pl.DataFrame, sender: Sender, now: datetime) -> _World:
    ids = rows["trigger_id"].to_list()
    decided = (
        scan_table(lake, "triggers", TRIGGERS_SCHEMA)
        .filter(pl.col("trigger_id").is_in(ids) & (pl.col("decision") == "send"))
        .select(list(TRIGGERS_SCHEMA))
        .unique("trigger_id", keep="first")
        .collect()
    )
    users = sorted(set(rows["user_id"].drop_nulls()))
    state, _ = state_for(lake, users)
    profiles = derive(state, customers_for(lake, users), now)
    catalog = scan_table(lake, "catalog", CATALOG_SCHEMA).select(list(CATALOG_SCHEMA)).collect()
    # Re-checked right before sending: the rule's exit condition, suppressions, consent.
    candidates = decided.with_columns(pl.col("user_id").alias("principal"))
    exits = dict(
        zip(
            candidates["trigger_id"],
            exit_reasons_now(candidates, state=state, catalog=catalog, now=now),
            strict=True,
        )
    )
    reasons = {t: f"exited: {r}" for t, r in exits.items() if r is not None}
    suppressed = suppressed_users(lake, profiles, sender.secret)
    by_user = {p["user_id"]: p for p in profiles.iter_rows(named=True)}
    for trigger in decided.iter_rows(named=True):
        profile = by_user.get(trigger["user_id"])
        if trigger["user_id"] in suppressed:
            reasons[trigger["trigger_id"]] = "suppressed"
        elif profile is not None and profile.get("marketing_consent") is False:
            reasons[trigger["trigger_id"]] = "no_consent"
    ranking: list[list[str]] = []

    def bestsellers() -> list[str]:
        if not ranking:
            ranking.append(_bestsellers(lake, now))
        return ranking[0]

    return _World(
        triggers={t["trigger_id"]: t for t in decided.iter_rows(named=True)},
        profiles=by_user,
        exits=reasons,
        catalog=Catalog.of(catalog),
        bestsellers=bestsellers,
    )


def _bestsellers(lake: LakeResource, now: datetime) -> list[str]:
    since = (now - BESTSELLER_WINDOW).date()
    added = (
        scan_table(lake, "events", EVENTS_SCHEMA)
        .filter((pl.col("event_date") >= since) & (pl.col("event_name") == "Product Added"))
        .select(principal().alias("principal"), "product_id")
        .collect()
    )
    return bestseller_ranking(added)


def _content(world: _World, row: dict[str, Any], sender: Sender, now: datetime) -> Content:
    trigger = world.triggers.get(row["trigger_id"], {})
    profile = world.profiles.get(row["user_id"]) or {}

    def build(bestsellers: list[str]) -> Content:
        return build_content(
            row["kind"],
            profile=profile,
            trigger=trigger_facts(trigger),
            catalog=world.catalog,
            bestsellers=bestsellers,
            now=now,
            shop=sender.shop,
            staleness=sender.staleness,
        )

    content = build([])
    if content.context.get("recommendations_source") == "bestsellers":
        content = build(world.bestsellers())  # only read the events when a fallback needs them
    return content


def deliver_due(
    lake: LakeResource,
    sender: Sender,
    *,
    now: datetime,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> OutboxReport:
    """Deliver every due row (under the writer lock); commit all new statuses as one MERGE."""
    report = OutboxReport()
    rows = due_rows(lake, clock(), lookups=sender.can_lookup)
    if rows.height == 0:
        return report
    markers = AttemptMarkers.for_lake(lake)
    world = _world(lake, rows, sender, now)
    started = time.monotonic()
    changed: list[dict[str, Any]] = []
    errors: list[BaseException] = []

    def work(row: dict[str, Any]) -> dict[str, Any] | None:
        if time.monotonic() - started > sender.run_seconds:
            return None  # the rest stays due: the sensor starts the next run for it
        if report.circuit_open:
            return after_attempt(row, _held_by_circuit(), now=clock(), waits=sender.waits)
        updated = _one(lake, sender, world, markers, row, now, clock, report)
        if updated is not None and updated["status"] == "unknown" and not sender.can_lookup:
            updated["next_attempt_at"] = None  # nobody can settle it: never due again
        return updated

    def collect(done: Iterable[Future[dict[str, Any] | None]]) -> None:
        for future in done:
            try:
                updated = future.result()
            except Exception as error:  # the others' statuses are still committed below
                errors.append(error)
                continue
            if updated is not None:
                changed.append(updated)

    todo = list(rows.iter_rows(named=True))
    try:
        # Rows go one at a time until one email has reached the provider, as a probe: a refused key
        # or a dead provider opens the circuit after one call instead of `concurrency` calls. The
        # rest go `concurrency` at a time (calls start in outbox order; they may end in any order).
        with ThreadPoolExecutor(max_workers=max(1, sender.concurrency)) as pool:
            probed = 0
            while probed < len(todo) and not report.called:
                collect([pool.submit(work, todo[probed])])
                probed += 1
            collect([pool.submit(work, row) for row in todo[probed:]])
    finally:  # whatever happened, what was sent is committed
        if changed:
            frame = pl.DataFrame(changed, schema=SENDS_SCHEMA)
            lake.upsert("sends", frame, key="send_id")
            markers.clear(frame["send_id"].to_list())
            report.rows = frame
    if errors:
        raise errors[0]
    return report


def _held_by_circuit() -> Attempt:
    return Attempt(status="retrying", attempts=0, last_error="circuit_open", circuit_open=True)


def _one(
    lake: LakeResource,
    sender: Sender,
    world: _World,
    markers: AttemptMarkers,
    row: dict[str, Any],
    now: datetime,
    clock: Callable[[], datetime],
    report: OutboxReport,
) -> dict[str, Any] | None:
    """The row's new state after this run's work on it (None: unchanged, try later)."""
    send_id = row["send_id"]
    if row["status"] == "unknown" or markers.marked(send_id):
        settled = _settle(sender, row)
        if settled is not None:
            return after_attempt(row, settled, now=clock(), waits=sender.waits)
        if row["status"] == "unknown" and not sender.can_lookup:
            return None
    reason = world.exits.get(row["trigger_id"])
    if reason is not None:
        return aborted(row, reason)
    if row["trigger_id"] not in world.triggers:
        return aborted(row, "decision_not_found")
    content = _content(world, row, sender, now)
    fallbacks = content.fallbacks
    if content.aborted:
        return aborted(row, content.aborted, fallbacks)
    address = (world.profiles.get(row["user_id"]) or {}).get("email") or ""
    token = unsubscribe_token(send_id, sender.secret)
    try:
        email = sender.renderer.render_email(
            content,
            kind=row["kind"],
            variant=row["variant"] or "a",
            send_id=send_id,
            to=address,
            sender=sender.sender,
            unsubscribe_url=sender.unsubscribe_url(token),
            unsubscribe_mailto=sender.unsubscribe_mailto,
            custom_args={
                "send_id": send_id,
                "trigger_id": row["trigger_id"],
                "kind": row["kind"],
                "variant": row["variant"] or "a",
            },
        )
    except RenderAborted as abort:
        return aborted(row, abort.reason, fallbacks)
    markers.mark(send_id)
    report.called = True
    result = deliver(
        sender.provider,
        email,
        sender.client,
        max_attempts=sender.max_attempts,
        max_seconds=sender.max_seconds,
        sleep=sender.sleep,
    )
    # A provider we cannot even connect to is treated like one that refuses our key: the rest of the
    # run waits for the cool-off instead of spending every email's retry budget on the same refusal.
    unreachable = result.status == "retrying" and result.last_error in UNREACHABLE
    attempt = Attempt(
        status=result.status,
        attempts=result.attempts,
        provider_message_id=result.provider_message_id,
        last_error=result.last_error,
        circuit_open=result.circuit_open or unreachable,
        retry_in=result.retry_in,
    )
    if attempt.circuit_open:  # only ever set, never cleared: safe from any worker thread
        report.circuit_open = True
    updated = {
        **after_attempt(row, attempt, now=clock(), waits=sender.waits),
        "fallbacks": json.dumps(fallbacks),
    }
    if result.status == "sent" and report.example is None:
        report.example = _example(sender, content, row)
    return updated


def _settle(sender: Sender, row: dict[str, Any]) -> Attempt | None:
    """An interrupted or ambiguous send, settled by asking the provider (None: send it now).

    A provider that cannot be asked leaves it `unknown`; one that cannot answer now is asked again.
    """
    if not sender.can_lookup:
        if row["status"] == "unknown":
            return None
        return Attempt(status="unknown", attempts=0, last_error="interrupted_during_send")
    found = lookup(sender.provider, row["send_id"], sender.client)
    if found == LOOKUP_FAILED:
        return Attempt(status="unknown", attempts=0, last_error="lookup_failed")
    if found is not None:
        return Attempt(status="sent", attempts=0, provider_message_id=found, last_error=row["last_error"])
    return None  # the provider never took it: safe to send


def _example(sender: Sender, content: Content, row: dict[str, Any]) -> str | None:
    """One sent email as markdown, with the first name replaced (no person data in metadata)."""
    context = {**content.context, "first_name": "Sam" if content.context.get("first_name") else ""}
    try:
        parts = sender.renderer.render(
            Content(context=context, fallbacks=content.fallbacks),
            kind=row["kind"],
            variant=row["variant"] or "a",
            unsubscribe_url=sender.unsubscribe_url("example-token"),
        )
    except RenderAborted:
        return None
    fallbacks = ", ".join(f"{f['block']}: {f['reason']}" for f in content.fallbacks) or "none"
    return (
        f"**{row['kind']}** (variant {row['variant']}), fallbacks: {fallbacks}\n\n"
        f"Subject: {parts.subject}\n\n```\n{parts.text.strip()}\n```"
    )
