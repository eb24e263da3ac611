"""GDPR erasure requests: from a request file or a user id to a stored certificate.

Everything runs under the lake's writer lock, so an erasure never interleaves with a micro-batch. The
certificate, the logs and the `erasures` table carry only a keyed hash of the person and counts.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import orjson
import polars as pl

from resources.lake import LakeResource
from resources.landing import LandedFile, LandingResource
from resources.landing_read import FileTooLarge
from resources.state import StateResource
from stores.erasure.history import OldVersions
from stores.erasure.lake import (
    append_table,
    check_tables,
    erase_table,
    fold_into_aggregate,
    lake_tables,
    matching_rows,
    scrub_delta_logs,
)
from stores.erasure.landing import (
    count_landing_traces,
    pending_edges,
    pending_links,
    pending_lookup,
    rewrite_landing,
    scan_landing,
)
from stores.erasure.progress import Progress, forget, made_ids, record, record_path, recorded
from stores.erasure.state import erase_from_store
from stores.triggers_pending import checkpoint
from transforms.erasure.claims import merged_users
from transforms.erasure.person import (
    ERASURE_TABLES,
    Person,
    erasure_tables,
    names_person,
    parse_request,
    person_from,
)
from transforms.erasure.records import ErasureCertificate, suppression_rows, user_key
from transforms.schema import ERASURES_SCHEMA, EVENTS_SCHEMA, IDENTITIES_SCHEMA, SUPPRESSIONS_SCHEMA

log = logging.getLogger(__name__)
REQUESTS = "erasure"
REJECTED = "erasure/rejected"
REQUEST_BYTES = 64 * 1024  # a request is one small JSON object: a bigger file is not one


@dataclass(frozen=True)
class RequestOutcome:
    """What became of one request file: erased (with its certificate), rejected or gone."""

    path: str
    status: str
    detail: str = ""
    certificate: ErasureCertificate | None = None


def submit_request(landing: LandingResource, user_id: str) -> str:
    """Land an erasure request for `user_id` as producers do; its landing path."""
    path = f"{REQUESTS}/cli-{uuid.uuid4().hex}.json"
    landing.land(path, orjson.dumps({"user_id": user_id}))
    return path


def pending_requests(landing: LandingResource) -> list[LandedFile]:
    """Request files waiting in `erasure/` (temp names and the `rejected/` folder left out)."""
    return [f for f in landing.list_files(REQUESTS) if f.path.count("/") == 1 and f.path.endswith(".json")]


def process_request(
    lake: LakeResource,
    landing: LandingResource,
    path: str,
    *,
    secret: str,
    state: StateResource | None = None,
) -> RequestOutcome:
    """Carry out one request file, then delete it (it holds the raw id); a malformed one is set aside."""
    name = path.removeprefix(f"{REQUESTS}/")
    if name == path or "/" in name or not name.endswith(".json"):  # run config can say anything
        return RequestOutcome(path, "rejected", f"not a request file: want {REQUESTS}/<name>.json")
    try:  # never through a link (one led out of the zone), nor from a FIFO (it hung the job, locks held)
        data, stat = landing.read_entry(path, REQUEST_BYTES)
        user_id = parse_request(data)
    except FileNotFoundError:
        return RequestOutcome(path, "gone", "no longer there (carried out by another run)")
    except (ValueError, FileTooLarge) as error:  # NotLandingFile is a ValueError
        aside = landing.root / REJECTED / name
        aside.parent.mkdir(parents=True, exist_ok=True)
        os.replace(landing.root / path, aside)  # a link or FIFO is moved, not what it points to
        log.warning("erasure request %s rejected and moved to %s/%s: %s", path, REJECTED, name, error)
        return RequestOutcome(path, "rejected", f"{error}; moved to {REJECTED}/{name}")
    # The same file (path, time, bytes) always gets the same id, so a retry finds its own work.
    digest = hmac.new(secret.encode(), f"{path}\0{stat.st_mtime_ns}\0".encode() + data, hashlib.sha256)
    request_id = f"erasure-{digest.hexdigest()[:16]}"
    certificate = erase_user(
        lake, landing, user_id, secret=secret, request_id=request_id, request_source=path, state=state
    )
    (landing.root / path).unlink(missing_ok=True)
    return RequestOutcome(path, "erased", certificate=certificate)


def erase_user(
    lake: LakeResource,
    landing: LandingResource,
    user_id: str,
    *,
    secret: str,
    request_id: str | None = None,
    request_source: str = "api",
    state: StateResource | None = None,
) -> ErasureCertificate:
    """Remove the person from every table, old version and landed file; suppress and certify it.

    Every key of theirs goes: the user ids of the shopper (`find_person`), each linked anonymous id and
    each trigger and send id made for them (as itself and as the `anon:` key of profile partials and
    trigger candidates, so no pending state can bring them back; a click on their email is keyed by its
    send id), each email. The keys are recorded before anything is deleted (stores.erasure.progress), so
    a rerun still has them. The certificate then checks every table and landed file for any of them
    (`checks`). Last, the state store (`state`) loses every key of theirs at once (stores.erasure.state).
    """
    request_id = request_id or f"erasure-{uuid.uuid4().hex[:16]}"
    key = user_key(user_id, secret)
    with lake.writer_lock():
        stored = read_certificate(lake, request_id)
        if stored is not None:
            forget(landing, [record_path(key, request_id)])  # a retry of a request that completed
            return stored
        progress = person_to_erase(lake, landing, user_id, key)
        person = progress.person
        source = f"{REQUESTS}/<redacted>" if names_person(request_source, person) else request_source
        certificate = ErasureCertificate(
            request_id, source, key, datetime.now(UTC), anonymous_ids=len(person.anonymous_ids),
            emails=len(person.emails), made_ids=len(person.made_ids), shared_ids=len(person.shared_ids),
            kept_ids=len(person.kept_ids), merged_ids=len(person.merged_ids),
        )  # fmt: skip
        specs = erasure_tables(lake_tables(lake, ()))
        rows = {spec.name: matching_rows(lake, spec.name, person) for spec in specs}
        scan = scan_landing(landing, person, rows)
        progress = progress.erasing(rows)
        records = [*progress.paths, record(landing, key, request_id, progress)]  # before anything goes
        certificate.landing_unreadable = scan.unreadable
        certificate.erased_events = fold_into_aggregate(lake, rows["events"], request_id)
        old = OldVersions(person)  # the person's rows in old versions' files, each file read once
        for spec in specs:
            certificate.tables.append(erase_table(lake, spec, rows[spec.name], person, request_id, old))
        rewrite_landing(lake, landing, scan.rewrites, rows, request_id)
        certificate.landing_files = {r.path: len(r.blanked) for r in scan.rewrites}
        certificate.log_files_scrubbed, certificate.log_lines_remaining = scrub_delta_logs(lake, person)
        certificate.suppressions_added = suppress(lake, person, secret, certificate.erased_at, request_id)
        erase_from_store(
            lake, state, person, progress.event_ids, certificate.landing_files, progress.trigger_ids
        )
        landing_check = scan.found | count_landing_traces(landing, scan.rewrites, person)
        names = lake_tables(lake, [s.name for s in specs])
        tables, certificate.kept_rows = check_tables(lake, names, person)
        certificate.kept_lines = sum(scan.kept.values())
        certify(certificate, tables, landing_check, old.check(lake, names))
        store_certificate(lake, certificate)
        forget(landing, records)  # certified: every key they held was checked
    log.info("erasure %s done: passed=%s", request_id, certificate.passed)
    return certificate


def certify(
    certificate: ErasureCertificate, tables: dict[str, int], landing: dict[str, int], history: dict[str, int]
) -> None:
    """Put the final check (rows per table, in its old versions' files, lines per landed file holding a
    key) into the certificate: any one fails it."""
    certificate.checks = {"tables": tables, "history": history, "landing": dict(sorted(landing.items()))}
    for table in certificate.tables:
        table.rows_remaining = tables.get(table.table, 0)
        table.old_rows_remaining = history.get(table.table, 0)
    certificate.landing_lines_remaining = sum(landing.values())


def find_person(lake: LakeResource, landing: LandingResource, user_id: str) -> Person:
    """The user id, the other user ids of the same shopper (an alias renamed one into another, in the lake or
    in landed files not ingested yet: `transforms.erasure.claims.merged_users`), the anonymous ids linked to
    any of them and every email of theirs in the lake, the anonymous ids and emails that landed files not
    ingested yet link to them, and the other users linked to those ids (in the lake or in such files:
    `transforms.erasure.claims`)."""
    merged = merged_users(pending_lookup(lake, landing), user_id)
    users = [user_id, *merged]
    landed_anonymous, landed_emails = pending_links(lake, landing, users)
    edges = lake.scan("identities", IDENTITIES_SCHEMA)
    linked = edges.filter(pl.col("user_id").is_in(users)).select("anonymous_id").collect()["anonymous_id"]
    anonymous = sorted({*linked.drop_nulls().to_list(), *landed_anonymous})
    mine = pl.col("user_id").is_in(users) | pl.col("anonymous_id").is_in(anonymous)
    identities = edges.filter(mine).collect()
    events = (
        lake.scan("events", EVENTS_SCHEMA)
        .filter(mine)
        .select("user_id", "anonymous_id", "event_type", "traits")
    )
    emails: list[str] = []
    for spec in ERASURE_TABLES:
        if spec.email_column:
            columns = {"user_id": pl.String(), spec.email_column: pl.String()}
            own = lake.scan(spec.name, columns).filter(pl.col("user_id").is_in(users)).collect()
            emails += own[spec.email_column].drop_nulls().to_list()
    landed = pending_edges(lake, landing, users, anonymous)
    found = [*emails, *landed_emails]
    return person_from(
        user_id, identities, events.collect(), found, sorted(landed_anonymous), landed, merged=merged
    )


def person_to_erase(lake: LakeResource, landing: LandingResource, user_id: str, key: str) -> Progress:
    """The person as the lake and landing zone know them now, with what unfinished erasures of theirs
    recorded (an earlier run may have deleted where those keys came from) and the trigger and send ids
    made for them. `trigger_state` is made whole first: their rows go from a complete checkpoint of the
    pending set (`stores.triggers_pending.checkpoint`)."""
    checkpoint(lake)
    progress = recorded(landing, key, find_person(lake, landing, user_id))
    made = Person(user_id, made_ids=made_ids(lake, progress.person))
    return replace(progress, person=progress.person.union(made))


def suppress(lake: LakeResource, person: Person, secret: str, since: datetime, request_id: str) -> int:
    """Add `erased` suppressions for the person's id and addresses, so they are never mailed again."""
    existing = lake.read("suppressions", SUPPRESSIONS_SCHEMA, ["user_key"])
    rows = suppression_rows(person, secret, since, existing["user_key"])
    if rows.height:
        append_table(lake, "suppressions", rows, request_id)
    return rows.height


def store_certificate(lake: LakeResource, certificate: ErasureCertificate) -> None:
    """One `erasures` row per request: the certificate as JSON, no raw identifier."""
    c = certificate
    row = pl.DataFrame(
        [(c.request_id, c.user_key, c.erased_at, c.passed, c.to_json())], schema=ERASURES_SCHEMA, orient="row"
    )
    append_table(lake, "erasures", row, certificate.request_id)


def read_certificate(lake: LakeResource, request_id: str) -> ErasureCertificate | None:
    """The stored certificate of `request_id`, if that request completed."""
    stored = lake.read("erasures", ERASURES_SCHEMA).filter(pl.col("request_id") == request_id)
    return ErasureCertificate.from_json(stored["certificate"][0]) if stored.height else None
