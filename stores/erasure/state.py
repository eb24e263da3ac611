"""GDPR erasure in the state store: the person's keys go from every namespace in one store commit.

Runs after the erasure's Delta commits (under the lake's writer lock), so the store then holds what a
rebuild from the erased lake would: no key that names the person (their user id, anonymous ids, `anon:`
and `user:` keys, `<product>|<principal>` viewers), no value that holds them (pending and decided
candidates, recent sends; found as the lake's erasure finds rows, `transforms.erasure.person`), none of
their events' ids; it gains the `erased` suppressions the erasure added and the new records of the
landed files it rewrote. The store's stamp does not move: the
commit carries the lane's current number (a commit may not go back, and this one is no new batch).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

import polars as pl

from resources.lake import LakeResource
from resources.state import StateResource, StateStore
from stores.state.namespaces import READERS, landed_files, suppressions
from transforms.erasure.person import Person, text_pattern
from transforms.state import HASHED_KEY, NAMESPACES, SEPARATOR, StateChanges, store_key

log = logging.getLogger(__name__)
# Namespaces whose keys or values may name a person (the others: files, the catalog).
PERSON_NAMESPACES = tuple(n for n in NAMESPACES if n not in {"landed_files", "catalog", "event_ids"})
LANE = "ingest"
# Namespaces whose keys join two ids (`<product_id>|<principal>`, `<principal>|<trigger_id>`): one longer
# than a store key is kept whole as its hash (`store_key`), which names no part of it.
JOINED = ("product_viewers", "pending_principals")


def _names(key: str, keys: frozenset[str]) -> bool:
    """Whether a store key is one of the person's (`user:` / `anon:` sides, `|`-joined parts)."""
    if key in keys:
        return True
    side, colon, rest = key.partition(":")
    if colon and side in {"user", "anon"} and rest in keys:
        return True
    return SEPARATOR in key and any(part in keys for part in key.split(SEPARATOR))


def person_changes(store: StateStore, person: Person, event_ids: Iterable[str]) -> StateChanges:
    """Deletes of every key of the person in `store` (one scan per namespace, keys and values)."""
    keys = frozenset({*person.keys, *(store_key(k) for k in person.keys)})
    pattern = re.compile(text_pattern(person).encode())
    changes = StateChanges()
    gone_triggers: set[str] = set()
    for namespace in PERSON_NAMESPACES:
        for key, value in store.scan(namespace):
            if _names(key, keys) or pattern.search(value):
                changes.delete(namespace, key)
                if namespace == "pending_triggers":
                    gone_triggers.add(key)
    for key, _ in store.scan("pending_due"):  # the due index of the candidates that went
        if key.rsplit(SEPARATOR, 1)[-1] in gone_triggers:
            changes.delete("pending_due", key)
    held = store.get_many("event_ids", event_ids)
    for event_id in held:
        changes.delete("event_ids", event_id)
    return changes


def _hashed_leftovers(lake: LakeResource, store: StateStore, changes: StateChanges) -> None:
    """Deletes of the hashed joined keys that the erased lake no longer implies (a rebuild would not make
    them). Such a key may hash the person's id with a product's or a trigger's (a 250-character user id
    is 500 bytes in UTF-8): `person_changes` cannot tell, so the erasure left it, certified the person
    gone, and `state check` differed from then on (found by review). Read only when the store holds one."""
    end = HASHED_KEY[:-1] + chr(ord(HASHED_KEY[-1]) + 1)
    for namespace in JOINED:
        hashed = [key for key, _ in store.scan(namespace, HASHED_KEY, end)]
        if not hashed:
            continue
        implied = {store_key(key) for chunk in READERS[namespace](lake) for key in chunk["key"]}
        for key in hashed:
            if key not in implied:
                changes.delete(namespace, key)


def erase_from_store(
    lake: LakeResource,
    state: StateResource | None,
    person: Person,
    event_ids: Iterable[str],
    rewritten: Iterable[str] = (),
) -> int:
    """Remove the person from the state store (none: nothing to do); returns the keys deleted. The
    `rewritten` landed files get their new ingest_log records (sizes and digests without the person)."""
    store = state.existing() if state is not None else None
    if store is None:
        return 0
    changes = person_changes(store, person, event_ids)
    _hashed_leftovers(lake, store, changes)
    deleted = len(changes)
    for chunk in suppressions(lake):  # the `erased` entries just added (a small table), as a rebuild has them
        changes.put_many("suppressions", chunk)
    files = list(rewritten)
    for chunk in landed_files(lake) if files else ():
        changes.put_many("landed_files", chunk.filter(pl.col("key").is_in(files)))
    store.commit(store.stamps()[LANE], changes, lane=LANE)
    log.info("erasure removed %s keys from the state store", deleted)
    return deleted
