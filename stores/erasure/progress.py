"""GDPR erasure: the ids the engine made for a person, and the record that keeps every key of theirs
until the erasure is certified.

Trigger and send ids are hashes of a kind and a user id or anchor: nothing in them names the person, so
only `sends`, `triggers` and `trigger_state` tie them to their user, and the erasure deletes those rows.
A click on an email lands under `anonymousId` = its send id, so an erasure that died after deleting them
would not find the click again (nor, once `identities` and `events` went, the anonymous ids, nor the
event ids the state store must drop). Every key and erased event id is therefore recorded in
`erasure/progress/` (a folder the ingest never reads, next to the request that holds the raw id) before
anything is deleted, read back by a rerun of that erasure or any later one of the person, and removed
once a certificate is stored.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

import orjson
import polars as pl

from resources.lake import LakeResource
from resources.landing import LandingResource
from transforms.erasure.person import Person
from transforms.principals import of_anonymous, of_user
from transforms.schema import SENDS_SCHEMA, TRIGGERS_SCHEMA
from transforms.sends.message import send_id_for

log = logging.getLogger(__name__)
PROGRESS = "erasure/progress"
RECORD_BYTES = 256 * 1024 * 1024  # far above any one person's keys
# The Person fields a record keeps, in their order: with who shares which anonymous id and the other user
# ids of the same shopper, as the edges that said so may be gone when the erasure runs again.
RECORDED = ("anonymous_ids", "emails", "made_ids", "shared_ids", "kept_ids", "others", "merged_ids")


def made_ids(lake: LakeResource, person: Person) -> tuple[str, ...]:
    """The send ids of the person's emails, and their trigger ids: what a click on one is keyed by.

    From the outbox and from the `send` decisions (an outbox row may not be there yet, or any more).
    A candidate never sent is left out: each lake row holding its trigger id names its principal too (the
    state store's entries of it go by the erased rows' trigger ids: `Progress.erasing`). One under
    an anonymous id of theirs is another user's when it says so (a shared id: transforms.erasure.claims).
    """
    users = list(person.user_ids)
    principals = [*map(of_user, users), *map(of_anonymous, person.anonymous_ids)]
    user = pl.col("user_id")
    theirs = user.is_in(users) | (pl.col("principal").is_in(principals) & user.is_null())
    found: set[str] = set()
    for name in ("triggers", "trigger_state"):
        sent = lake.scan(name, TRIGGERS_SCHEMA).filter(theirs & (pl.col("decision") == "send"))
        triggers = sent.select("trigger_id").collect()["trigger_id"].drop_nulls()
        found |= {*triggers, *(send_id_for(t) for t in triggers)}
    sends = lake.scan("sends", SENDS_SCHEMA).filter(pl.col("user_id").is_in(users))
    found |= {i for row in sends.select("send_id", "trigger_id").collect().iter_rows() for i in row if i}
    return tuple(sorted(found))


@dataclass(frozen=True)
class Progress:
    """What unfinished erasures of a person recorded: their keys, the ids of the events and triggers whose
    rows they erased, the records."""

    person: Person
    event_ids: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()
    trigger_ids: tuple[str, ...] = ()

    def erasing(self, rows: Mapping[str, pl.DataFrame | None]) -> Progress:
        """With the ids of the events and triggers whose `rows` (per table) this run erases too: the state
        store drops the events' ids and what the triggers' rows made (`stores.erasure.state`), which a
        rerun, their rows gone, could not find again."""

        def ids(tables: Iterable[str], column: str) -> set[str]:
            frames = (rows.get(t) for t in tables)
            return {i for frame in frames if frame is not None for i in frame[column].drop_nulls()}

        events = tuple(sorted({*self.event_ids, *ids(["events"], "event_id")}))
        triggers = {*self.trigger_ids, *ids(["triggers", "trigger_state"], "trigger_id")}
        return replace(self, event_ids=events, trigger_ids=tuple(sorted(triggers)))


def record_path(user_key: str, request_id: str) -> str:
    return f"{PROGRESS}/{user_key}.{request_id}.json"


def recorded(landing: LandingResource, user_key: str, person: Person) -> Progress:
    """`person` with the keys every unfinished erasure of theirs recorded, and the event ids they erased."""
    paths = [f.path for f in landing.list_files(PROGRESS) if f.path.startswith(f"{PROGRESS}/{user_key}.")]
    event_ids: set[str] = set()
    trigger_ids: set[str] = set()
    for path in paths:
        try:
            data = orjson.loads(landing.read_entry(path, RECORD_BYTES)[0])
        except (OSError, ValueError) as error:  # not one of ours (a link, a FIFO): never followed
            log.warning("erasure progress record %s skipped: %s", path, type(error).__name__)
            continue
        keys = (tuple(data.get(k, ())) for k in RECORDED)
        person = person.union(Person(person.user_id, *keys))
        event_ids.update(data.get("event_ids", ()))
        trigger_ids.update(data.get("trigger_ids", ()))  # none in a record of an earlier release
    return Progress(person, tuple(sorted(event_ids)), tuple(paths), tuple(sorted(trigger_ids)))


def record(landing: LandingResource, user_key: str, request_id: str, progress: Progress) -> str:
    """Keep every key of the person (not the user id: the name holds its keyed hash) and the event and
    trigger ids about to be erased, for a rerun; the record's path."""
    keys = {name: getattr(progress.person, name) for name in RECORDED}
    path = record_path(user_key, request_id)
    erased = {"event_ids": progress.event_ids, "trigger_ids": progress.trigger_ids}
    landing.land(path, orjson.dumps({**keys, **erased}), replace=True)
    return path


def forget(landing: LandingResource, paths: Iterable[str]) -> None:
    """Remove the records of a certified erasure (its own and those it read)."""
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            (landing.root / path).unlink()
    with contextlib.suppress(OSError):  # the folder goes with its last record
        (landing.root / PROGRESS).rmdir()
