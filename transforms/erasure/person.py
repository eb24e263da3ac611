"""GDPR erasure, pure part: who the person is, and which rows, landed lines and log entries are theirs.

A person is a user_id, every user id an `alias` made the same shopper (`merged_ids`: renamed into it or it
into them, `transforms.erasure.claims.merged_users`), every anonymous_id linked to any of those and every
email of their identify traits or CRM rows; and the ids the engine made for them, their trigger and send
ids (a click on their email lands under `anonymousId` = its send id, with no user id), and their
principals (`transforms.principals`) as profile partials and trigger candidates key them. A value is
theirs when it equals an id, or holds one inside text as a JSON string (`"u-1"`, so `u-10` is not `u-1`),
as a whole CSV cell or, for a long id, as a word; or an email as a whole address in any case; where a
principal stands (a `principal` column or field, a store key), only a principal of theirs: the user
`anon:abc`'s id is anonymous `abc`'s principal (found by review). An anonymous id another user uses too is
taken as `transforms.erasure.claims` says (`transforms.erasure.match` applies it).
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import orjson
import polars as pl

from transforms.erasure.claims import claims, edges
from transforms.erasure.made import WORD_AFTER, WORD_BEFORE, made_patterns
from transforms.principals import of_anonymous, of_user
from transforms.spec import MAX_LINE_BYTES

MAX_USER_ID_BYTES = MAX_LINE_BYTES  # any id the ingest takes (a landed line holds it), not a byte more
MIN_WORD_ID = 6


@dataclass(frozen=True)
class ErasureTable:
    """A table an erasure visits: `key` names non-personal columns for a Delta delete; () = rewrite."""

    name: str
    key: tuple[str, ...] = ()
    email_column: str | None = None  # a column with the person's email on their own rows (user_id)


# The person's rows are found by content (any column), so a new table is one entry here.
ERASURE_TABLES: tuple[ErasureTable, ...] = (
    ErasureTable("events", ("event_id",)),  # messageIds are random ids
    ErasureTable("quarantine", ("source_file", "source_line")),
    ErasureTable("identities"),
    ErasureTable("profiles", email_column="email"),
    ErasureTable("customers", email_column="email"),
    ErasureTable("profile_updates"),  # partials keyed by principal (the user or an anonymous id)
    ErasureTable("profile_state"),
    ErasureTable("triggers", ("trigger_id",)),
    ErasureTable("trigger_state", ("trigger_id",)),
    ErasureTable("sends", ("send_id",)),
    ErasureTable("attributions", ("order_event_id",)),  # an order's credit: its event id is random
)
# Checked by every certificate, never erased: the ingest's file log (its rows name files, and a lost row
# would ingest the file again) and the erasure's own records (keyed hashes and counts only).
KEPT_TABLES = ("ingest_log", "suppressions", "erasures", "erased_events_daily")
# Landing folders an erasure neither rewrites nor checks: requests (each one deleted once carried out).
KEPT_FOLDERS = ("erasure",)


def erasure_tables(existing: Iterable[str]) -> tuple[ErasureTable, ...]:
    """The registry, then every other `existing` table but the kept ones (rewritten when it holds them)."""
    known = {spec.name for spec in ERASURE_TABLES} | set(KEPT_TABLES)
    return ERASURE_TABLES + tuple(ErasureTable(name) for name in sorted(set(existing) - known))


class InvalidUserId(ValueError):
    """A user id no erasure can be about: empty, blank or too long (the message says which)."""


def check_user_id(user_id: object) -> str:
    """`user_id` when an erasure can be about it; InvalidUserId otherwise (checked before anything lands)."""
    if not isinstance(user_id, str) or not user_id.strip():
        raise InvalidUserId("the user id is empty or blank")
    if len(user_id.encode()) > MAX_USER_ID_BYTES:  # its UTF-8 is never longer than its JSON in a line
        raise InvalidUserId(f"the user id is longer than {MAX_USER_ID_BYTES} bytes (no landed line holds it)")
    return user_id


def parse_request(data: bytes) -> str:
    """The user_id of an erasure request file (`{"user_id": "..."}`, a leading UTF-8 BOM dropped: an editor
    on Windows writes one, and a request must not be lost to it); ValueError says what is wrong."""
    try:
        request = orjson.loads(data.removeprefix(codecs.BOM_UTF8))
    except orjson.JSONDecodeError:
        raise ValueError("not a JSON document") from None
    user_id = request.get("user_id") if isinstance(request, dict) else None
    if not isinstance(user_id, str) or not user_id.strip():
        raise ValueError('want {"user_id": "<non-empty string>"}')
    return check_user_id(user_id)


@dataclass(frozen=True)
class Person:
    """Everything that identifies the person to erase."""

    user_id: str
    anonymous_ids: tuple[str, ...] = ()
    emails: tuple[str, ...] = ()
    # Their trigger and send ids: surrogate keys (rows of sends and triggers are deleted by them,
    # and file statistics hold them), so never part of `ids`, which Delta logs are checked for.
    made_ids: tuple[str, ...] = ()
    # Anonymous ids other users are linked to as well (`transforms.erasure.claims`): `shared_ids` (of
    # `anonymous_ids`) they claimed first, `kept_ids` (not keys) another did; `others`: those users.
    shared_ids: tuple[str, ...] = ()
    kept_ids: tuple[str, ...] = ()
    others: tuple[str, ...] = ()
    # The other user ids of the same shopper (aliases' claims): keys of theirs alone, as the user id is.
    merged_ids: tuple[str, ...] = ()

    @property
    def user_ids(self) -> tuple[str, ...]:
        return (self.user_id, *self.merged_ids)

    @property
    def ids(self) -> tuple[str, ...]:
        return (*self.user_ids, *self.anonymous_ids)

    @property
    def own(self) -> Person:
        """The person with only the keys no other user has (the shared ids left out)."""
        alone = tuple(a for a in self.anonymous_ids if a not in self.shared_ids)
        return Person(self.user_id, alone, self.emails, self.made_ids, merged_ids=self.merged_ids)

    @property
    def values(self) -> tuple[str, ...]:
        """The ids and the made ids, as themselves."""
        return (*self.ids, *self.made_ids)

    @property
    def principals(self) -> tuple[str, ...]:
        """The users' principals, and the anonymous and made ids' (a click's anonymousId is its send id), as
        `profile_*` partials and `trigger*` candidates key them."""
        anonymous = map(of_anonymous, (*self.anonymous_ids, *self.made_ids))
        return (*map(of_user, self.user_ids), *anonymous)

    def union(self, other: Person) -> Person:
        """The person with `other`'s keys too (the same user id). An id either takes as another user's
        first claim stays one (kept): the other run may have seen an edge this one no longer can."""
        kept = _clean([*self.kept_ids, *other.kept_ids])
        theirs = tuple(a for a in _clean([*self.anonymous_ids, *other.anonymous_ids]) if a not in kept)
        shared = tuple(a for a in _clean([*self.shared_ids, *other.shared_ids]) if a in theirs)
        emails, made = _addresses([*self.emails, *other.emails]), _clean([*self.made_ids, *other.made_ids])
        merged = tuple(sorted({*self.merged_ids, *other.merged_ids} - {self.user_id}))
        others = tuple(u for u in _clean([*self.others, *other.others]) if u not in merged)
        return Person(self.user_id, theirs, emails, made, shared, kept, others, merged)


def _clean(values: Iterable[str | None]) -> tuple[str, ...]:
    return tuple(sorted({v.strip() for v in values if v and v.strip()}))


def _addresses(values: Iterable[str | None]) -> tuple[str, ...]:
    """The values that are an address (`name@domain`, as the CRM's are checked): only such a value is
    looked for as the person's email. A shopper's `email` trait is whatever they sent (`5`, `example.com`,
    a group's), and the erasure looked for it as a whole word in every table and landed file, so it
    deleted other shoppers' events and blanked their lines and the catalog's (found by review)."""
    return tuple(v for v in _clean(values) if _is_address(v))


def _is_address(text: str) -> bool:
    name, at, domain = text.rpartition("@")
    return bool(name and at and domain)


def person_from(
    user_id: str,
    identities: pl.DataFrame,
    events: pl.DataFrame,
    emails: Sequence[str] = (),
    anonymous: Sequence[str] = (),
    landed: pl.DataFrame | None = None,
    merged: Sequence[str] = (),
) -> Person:
    """The person behind `user_id` and the `merged` user ids of the same shopper: identity edges and events
    (user_id, anonymous_id, event_type, traits) of theirs and of their anonymous ids, emails and anonymous
    ids found elsewhere and `landed` edges of other users to those (landed lines not ingested yet)."""
    users = sorted({user_id, *merged})
    linked = pl.concat(
        [
            identities.filter(pl.col("user_id").is_in(users))["anonymous_id"],
            events.filter(pl.col("user_id").is_in(users))["anonymous_id"],
        ]
    )
    anonymous_ids = _clean([*linked.to_list(), *anonymous])
    found = [edges(identities), edges(events), *([] if landed is None else [edges(landed)])]
    claim = claims(user_id, anonymous_ids, pl.concat(found), merged)
    user = pl.col("user_id")
    mine = events.filter(user.is_in(users) | (pl.col("anonymous_id").is_in(claim.theirs) & user.is_null()))
    # A `group` call's traits are its group's (the company's billing address), not the person's.
    own = mine.filter(pl.col("event_type") != "group") if "event_type" in mine.columns else mine
    traits = own["traits"].str.json_path_match("$.email").to_list()
    addresses = _addresses([*traits, *emails])
    others = (claim.shared, claim.kept, claim.others)
    return Person(user_id, claim.theirs, addresses, (), *others, tuple(u for u in users if u != user_id))


def email_part(email: str) -> str:
    # A whole address in any case: not inside a longer one, a sentence's full stop allowed after it.
    return rf"(?i:(?:^|[^A-Za-z0-9._%+\-]){re.escape(email)}(?:$|[^A-Za-z0-9_\-.]|\.(?:$|[^A-Za-z0-9])))"


def text_pattern(person: Person, *, made: bool = True) -> str:
    """A regex (Python and Polars) finding the person's keys inside JSON, CSV or free text (their made
    ids as words, `transforms.erasure.made`; not with `made=False`)."""
    emails = [email_part(e) for e in person.emails]
    made_ids = made_patterns(person.made_ids) if made else []
    principals = (*map(of_user, person.user_ids), *map(of_anonymous, person.anonymous_ids))
    return "|".join(id_parts(person.ids, principals) + emails + made_ids)


def _json_strings(value: str) -> set[str]:  # `value` as a JSON string, in both escaping styles
    texts = (orjson.dumps(value).decode(), json.dumps(value))
    return {*texts, *(t.replace("/", "\\/") for t in texts)}


def id_parts(ids: Iterable[str], principals: Iterable[str] = ()) -> list[str]:
    """Regexes finding `ids` inside JSON, CSV or free text, and `principals` as a JSON `principal` field."""
    keys = tuple(ids)
    tokens = {text for value in keys for text in _json_strings(value)}
    tokens |= {f'"principal":{text}' for value in principals for text in _json_strings(value)}
    # As a whole CSV cell (a CRM export): a line of its own, or a file's content (no multi-line mode).
    cells = [rf"(?:^|[,\n]){re.escape(v)}(?:[,\r\n]|$)" for v in sorted(set(keys))]
    # A long id as a word in free text ("referred by anon-7f3e..."); a short or all-digit one would be
    # found inside other values (`u-1` in `u-1x`, `123456` in a price), so those count only as above.
    words = [
        rf"{WORD_BEFORE}{re.escape(v)}{WORD_AFTER}"
        for v in sorted(set(keys))
        if len(v) >= MIN_WORD_ID and not v.isdigit()
    ]
    return [re.escape(t) for t in sorted(tokens)] + cells + words


def sql_literal(value: object) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


def key_predicate(rows: pl.DataFrame, key: tuple[str, ...]) -> str:
    """A Delta predicate naming `rows` by their `key` columns only (never a personal column)."""
    *groups, last = key
    keyed = rows.select(key).unique().sort(key)

    def among(frame: pl.DataFrame) -> str:
        return f"{last} IN ({', '.join(sql_literal(v) for v in frame[last].to_list())})"

    if not groups:
        return among(keyed)
    parts = [
        "("
        + " AND ".join(f"{c} = {sql_literal(v)}" for c, v in zip(groups, values, strict=True))
        + f" AND {among(frame)})"
        for values, frame in keyed.group_by(groups, maintain_order=True)
    ]
    return " OR ".join(parts)


def names_person(text: str, person: Person) -> bool:
    """Whether `text` (say, a predicate) contains any identifier of the person, even as a fragment."""
    lowered = text.lower()
    return any(value.lower() in lowered for value in (*person.ids, *person.emails))
