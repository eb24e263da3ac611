"""GDPR erasure records, pure part: suppression keys, trend aggregate, ingest_log fix-up, certificate."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Collection, Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import unquote

import orjson
import polars as pl

from transforms.erasure.person import Person
from transforms.principals import of_anonymous, of_user
from transforms.schema import ERASED_DAILY_SCHEMA, SUPPRESSIONS_SCHEMA

ERASED = "erased"
COMMIT_TAG = "lakemail.erasure"  # commitInfo key on every erasure commit: its value is the request id
KEPT_REASON = (
    "they hold an anonymous id the person shares with another user and no other key of the person: "
    "another user's rows, or anonymous rows of an id another user claimed first (transforms.erasure.claims)"
)


def _keyed(text: str, secret: str) -> str:
    return hmac.new(secret.encode(), text.encode(), hashlib.sha256).hexdigest()


def user_key(user_id: str, secret: str) -> str:
    """HMAC-SHA256 under `secret` of the user's principal (`transforms.principals`: its id, but for an id
    that would read as another principal), hex: names a person without their id, never an anonymous id."""
    return _keyed(of_user(user_id), secret)


def address_key(email: str, secret: str) -> str:
    """The suppression key of an email address (case and surrounding blanks ignored)."""
    return _keyed(email.strip().lower(), secret)


def anonymous_key(anonymous_id: str, secret: str) -> str:
    """The suppression key of an anonymous id (its principal's, `anon:<id>`): never a user's."""
    return _keyed(of_anonymous(anonymous_id), secret)


def suppressed(profiles: pl.DataFrame, keys: Collection[str], secret: str) -> frozenset[str]:
    """The user ids of `profiles` (user_id, email) whose user key or address key is among `keys`."""
    if not keys:
        return frozenset()
    return frozenset(
        user
        for user, email in profiles.select("user_id", "email").iter_rows()
        if user_key(user, secret) in keys or (email and address_key(email, secret) in keys)
    )


def suppression_rows(person: Person, secret: str, since: datetime, existing: pl.Series) -> pl.DataFrame:
    """`erased` suppressions for the person's ids (merged ones too) and addresses that `existing` keys do not
    hold yet."""
    keys = [user_key(u, secret) for u in person.user_ids] + [address_key(e, secret) for e in person.emails]
    fresh = [k for k in dict.fromkeys(keys) if k not in set(existing.to_list())]
    return pl.DataFrame(
        {"user_key": fresh, "reason": [ERASED] * len(fresh), "since": [since] * len(fresh)},
        schema=SUPPRESSIONS_SCHEMA,
    )


def daily_counts(events: pl.DataFrame) -> pl.DataFrame:
    """Erased events counted by day, type and name (ERASED_DAILY_SCHEMA): what trend queries keep."""
    return (
        events.group_by("event_date", "event_type", "event_name")
        .agg(pl.len().cast(pl.Int64).alias("events"))
        .select(list(ERASED_DAILY_SCHEMA))
        .sort("event_date", "event_type", "event_name", nulls_last=True)
    )


def adjust_ingest_log(log: pl.DataFrame, removed: pl.DataFrame, rewritten: pl.DataFrame) -> pl.DataFrame:
    """New bytes, sha256 and counts of the ingest_log rows of files that lost rows or lines.

    `removed`: source_file, events, quarantine (rows deleted); `rewritten`: source_file, old_sha256,
    new_bytes, new_sha256, blanked, rows_blanked (accepted rows of a file whose rows the lake keeps
    by key, not by line: a CRM row) and old_bytes. Keeps `lines = accepted + quarantined + duplicates`,
    and the landing sensor (path, size and mtime) from taking a rewritten file for a new one: a row of the
    bytes rewritten (by sha256; a file never read, `failed` with no sha256, by its old size) gets the new.
    """
    defaults = {"rows_blanked": 0, "old_bytes": None}
    rewritten = rewritten.with_columns(
        pl.lit(value, pl.Int64).alias(name)
        for name, value in defaults.items()
        if name not in rewritten.columns
    )
    unread = pl.col("sha256").is_null() & (pl.col("bytes") == pl.col("old_bytes"))
    rows = (
        log.join(removed, on="source_file", how="left")
        .join(rewritten, on="source_file", how="left")
        .filter(pl.col("events").is_not_null() | pl.col("blanked").is_not_null())
        .with_columns(
            pl.col("events", "quarantine", "rows_blanked").fill_null(0),
            same=((pl.col("sha256") == pl.col("old_sha256")) | unread).fill_null(False),
            counted=pl.col("status") == "committed",
        )
    )
    deleted = pl.col("events") + pl.col("rows_blanked")
    lost = pl.when(pl.col("same")).then(pl.col("blanked")).otherwise(deleted + pl.col("quarantine"))
    adjusted = rows.with_columns(
        pl.when("same").then("new_bytes").otherwise("bytes").alias("bytes"),
        pl.when(pl.col("same") & pl.col("sha256").is_not_null())  # an unread row stays without one
        .then("new_sha256")
        .otherwise("sha256")
        .alias("sha256"),
        pl.when("counted").then(pl.col("lines") - lost).otherwise("lines").alias("lines"),
        pl.when("counted").then(pl.col("accepted") - deleted).otherwise("accepted"),
        pl.when("counted").then(pl.col("quarantined") - pl.col("quarantine")).otherwise("quarantined"),
    )
    rest = pl.col("lines") - pl.col("accepted") - pl.col("quarantined")
    return adjusted.with_columns(
        pl.when("counted").then(rest.clip(lower_bound=0)).otherwise("duplicates").alias("duplicates")
    ).select(list(log.columns))


def unreadable_versions(actions: pl.DataFrame, removed: Iterable[str], last_version: int) -> list[list[int]]:
    """Inclusive version ranges that referenced a removed file (actions: version, add, remove paths)."""
    added: dict[str, int] = {}
    dropped: dict[str, int] = {}
    for version, add, remove in actions.select("version", "add", "remove").sort("version").iter_rows():
        if add is not None:
            added.setdefault(unquote(add), version)
        if remove is not None:
            dropped.setdefault(unquote(remove), version)
    first = min(actions["version"].to_list(), default=0)  # for a file added before the oldest commit kept
    spans = sorted(
        (added.get(path, first), dropped.get(path, last_version + 1) - 1)
        for path in {unquote(p) for p in removed}
        if path in added or path in dropped  # else an orphan no version referenced
    )
    merged: list[list[int]] = []
    for start, end in spans:
        if merged and start <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], end)
        elif start <= end:
            merged.append([start, end])
    return merged


def needs_vacuum(history: list[dict[str, Any]]) -> bool:
    """Whether an erasure commit (newest first in `history`) has not been followed by a vacuum yet."""
    for commit in history:
        if commit.get("operation") == "VACUUM END":
            return False
        if COMMIT_TAG in commit:
            return True
    return False


@dataclass
class TableErasure:
    """What an erasure did to one table."""

    table: str
    outcome: str  # "erased", "no rows", "missing table"
    method: str | None = None  # "delete" (by surrogate key), "rewrite", or "vacuum" (old versions only)
    rows_deleted: int = 0
    version_before: int | None = None
    version_after: int | None = None
    files_removed: list[str] = field(default_factory=list)
    versions_unreadable: list[list[int]] = field(default_factory=list)
    rows_remaining: int = 0  # the zero-row check, re-queried after the erasure (as in `checks`)
    old_rows: int = 0  # rows in files only old versions read, the current holding none (then vacuumed)
    old_rows_remaining: int = 0  # the same, looked for again after the erasure (`checks["history"]`)


@dataclass
class ErasureCertificate:
    """Proof of one erasure: no raw identifier, only the person's keyed hash and counts."""

    request_id: str
    request_source: str
    user_key: str
    erased_at: datetime
    anonymous_ids: int
    emails: int
    made_ids: int = 0  # their trigger and send ids (a click on their email is keyed by its send id)
    # Anonymous ids of theirs that other users are linked to as well (transforms.erasure.claims): claimed
    # first by them (`shared_ids`: among `anonymous_ids`, their anonymous rows erased, the others' rows
    # kept) or by another user (`kept_ids`: nothing erased through them). What still holds one of those
    # ids after the erasure was left on purpose, as no key of theirs is in it: rows per table
    # (`kept_rows`) and landed lines (`kept_lines`), and why (KEPT_REASON: `kept_reason` in the JSON).
    shared_ids: int = 0
    kept_ids: int = 0
    # Other user ids of the same shopper (an `alias` renamed one into another: transforms.erasure.claims),
    # erased as the user id is.
    merged_ids: int = 0
    tables: list[TableErasure] = field(default_factory=list)
    landing_files: dict[str, int] = field(default_factory=dict)  # path -> lines blanked
    landing_unreadable: list[str] = field(default_factory=list)
    landing_lines_remaining: int = 0
    log_files_scrubbed: list[str] = field(default_factory=list)  # commitInfo provenance redacted
    log_lines_remaining: int = 0
    erased_events: int = 0  # folded into erased_events_daily first
    suppressions_added: int = 0
    # The final scan, after every step: each of the person's keys (user id, anonymous, trigger and send
    # ids as themselves and as `anon:` keys, emails) looked for in every string and nested column of
    # every table of the lake ("tables": rows holding one), in the data files of each table that old
    # versions still read and the current does not ("history": rows; `stores.erasure.history`) and in
    # every line of every landed file ("landing": lines).
    checks: dict[str, dict[str, int]] = field(default_factory=dict)
    kept_rows: dict[str, int] = field(default_factory=dict)
    kept_lines: int = 0

    @property
    def passed(self) -> bool:
        clean = all(t.rows_remaining == 0 for t in self.tables)
        checked = all(found == 0 for group in self.checks.values() for found in group.values())
        landing = self.landing_lines_remaining == 0 and not self.landing_unreadable
        return clean and checked and landing and self.log_lines_remaining == 0

    def to_dict(self) -> dict[str, Any]:
        kept = {"kept_reason": KEPT_REASON} if self.shared_ids or self.kept_ids else {}
        return {**asdict(self), "erased_at": self.erased_at.isoformat(), "passed": self.passed, **kept}

    def to_json(self) -> str:
        return orjson.dumps(self.to_dict(), option=orjson.OPT_INDENT_2).decode()

    @classmethod
    def from_json(cls, text: str) -> ErasureCertificate:
        data = orjson.loads(text)
        data.pop("passed", None)
        data.pop("kept_reason", None)
        data["erased_at"] = datetime.fromisoformat(data["erased_at"])
        data["tables"] = [TableErasure(**t) for t in data["tables"]]
        return cls(**data)


def certificate_summary(certificate: ErasureCertificate) -> str:
    """A few lines for a person at a terminal: what was checked and removed, what is left, the verdict."""
    c, tables = certificate, certificate.tables
    removed, left = sum(t.rows_deleted for t in tables), sum(t.rows_remaining for t in tables)
    old_found, old_left = sum(t.old_rows for t in tables), sum(c.checks.get("history", {}).values())
    verdict = "PASSED: no trace left" if c.passed else "FAILED: traces left (see below)"
    lines = [
        f"erasure {c.request_id}: {verdict}",
        f"  tables:   {len(tables)} checked, {removed} rows removed from "
        f"{sum(1 for t in tables if t.rows_deleted)}, {left} rows remaining",
        f"  linked:   {_merged(c)}{c.anonymous_ids} anonymous ids, {c.emails} emails, "
        f"{c.made_ids} trigger and send ids",
        f"  landing:  {sum(c.landing_files.values())} lines blanked in {len(c.landing_files)} files, "
        f"{c.landing_lines_remaining} lines remaining, {len(c.landing_unreadable)} unreadable",
        f"  history:  {sum(len(t.files_removed) for t in tables)} old Delta files removed"
        f"{f' (with {old_found} rows only old versions held)' if old_found else ''}, "
        f"{old_left} rows remaining in old versions",
        f"  logs:     {len(c.log_files_scrubbed)} log files scrubbed, "
        f"{c.log_lines_remaining} log lines remaining",
        f"  kept:     {c.erased_events} erased events as daily counts, "
        f"{c.suppressions_added} suppressions added",
    ]
    if left:
        shown = ", ".join(f"{t.table} ({t.rows_remaining})" for t in tables if t.rows_remaining)
        lines.append(f"  remaining in: {shown}")
    if old_left:
        shown = ", ".join(f"{name} ({n})" for name, n in c.checks["history"].items() if n)
        lines.append(f"  remaining in old versions: {shown}")
    if c.landing_unreadable:
        lines.append(f"  unreadable landing files: {', '.join(c.landing_unreadable)}")
    if c.shared_ids or c.kept_ids:
        rows, ids = sum(c.kept_rows.values()), c.shared_ids + c.kept_ids
        lines.append(
            f"  shared:   {ids} anonymous ids other users use too ({c.kept_ids} claimed first by another): "
            f"{rows} rows and {c.kept_lines} landed lines kept"
        )
        lines.append(f"  kept because: {KEPT_REASON}")
    lines.append(f"  certificate: the `erasures` table, request_id {c.request_id} (--json prints it)")
    return "\n".join(lines) + "\n"


def _merged(certificate: ErasureCertificate) -> str:
    n = certificate.merged_ids
    return f"{n} other user id{'s' if n > 1 else ''} of the same shopper (renamed by an alias), " if n else ""
