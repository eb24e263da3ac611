"""GDPR erasure in the state store: the person's keys go from every namespace in one store commit.

Runs after the erasure's Delta commits (under the lake's writer lock), so the store then holds what a
rebuild from the erased lake would: no key that names the person (their user ids, anonymous ids, `anon:`
and `user:` keys, joined keys with one of them as a part: viewers of products, pending candidates), no
value that holds them (pending and decided candidates, recent sends, viewers; found as the lake's erasure
finds rows, `transforms.erasure.match`, keys longer than a store key by their hash too), none of their
events' ids, and none of what their erased `triggers` and `trigger_state` rows made (`ErasedTriggers`: a
decided candidate's value holds no principal, so an anonymous one of theirs named nobody); it gains the
`erased` suppressions the erasure added and the new records of the landed files it rewrote. The
`identity_links` of an anonymous id they share with another user (`transforms.erasure.claims`), and those of
another user linked to an id of theirs (a renamed user's later alias to someone else), are put back as
the erased lake has them: the other user's links stay. The store's stamp does not move: the commit
carries the lane's current number (a commit may not go back, and this one is no new batch).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

import polars as pl

from resources.lake import LakeResource
from resources.state import StateResource, StateStore
from stores.state.namespaces import TRIGGER_READERS, identity_links, landed_files, suppressions
from stores.state.rebuild import rebuild
from transforms.erasure.match import Lines
from transforms.erasure.person import Person
from transforms.principals import of_anonymous, of_user
from transforms.state import LINK_ANON, LINK_USER, NAMESPACES, StateChanges
from transforms.state_keys import KEY_FORMAT, SEPARATOR, key_part, split_key, store_key

log = logging.getLogger(__name__)
# Namespaces whose keys or values may name a person (the others: files, the catalog).
PERSON_NAMESPACES = tuple(n for n in NAMESPACES if n not in {"landed_files", "catalog", "event_ids"})
LANE = "ingest"
# Namespaces keyed by two ids (`transforms.state_keys.joined_key`): a key names an id when either part is it;
# the part that is a principal (`transforms.principals`) names one only as a principal.
JOINED = {"product_viewers": 1, "pending_principals": 0}
PRINCIPAL_KEYED = ("profiles",)  # keyed by a principal; `identity_links` by a side and an id; others by an id


def _hashed(keys: set[str]) -> frozenset[str]:
    """`keys`, and those longer than a store key as their hash (a long id's link names none of it else)."""
    return frozenset({*keys, *map(store_key, keys)})


@dataclass(frozen=True)
class StoreKeys:
    """Ids and principals as the store's keys name them: whole keys (an id, a principal, an `identity_links`
    side of an id), and parts of joined keys (as `key_part` writes them)."""

    ids: frozenset[str]
    principals: frozenset[str]
    links: frozenset[str]
    parts: tuple[frozenset[str], frozenset[str]]  # (ids, principals) as parts of joined keys

    @classmethod
    def of(cls, ids: Iterable[str], principals: Iterable[str] = ()) -> StoreKeys:
        named, whose = set(ids), set(principals)
        links = {side + i for i in named for side in (LINK_ANON, LINK_USER)}
        parts = (frozenset(map(key_part, named)), frozenset(map(key_part, whose)))
        return cls(_hashed(named), _hashed(whose), _hashed(links), parts)

    def name(self, namespace: str, key: str) -> bool:
        """Whether a store key names one of the ids or principals, each where it stands. Found by review:
        any `|`-separated piece of any key counted, so erasing `abc` deleted `auth0|abc`'s keys; and an id
        counted as a principal, so erasing the user `anon:abc` deleted anonymous `abc`'s profile."""
        if namespace == "identity_links":
            return key in self.links
        if namespace in PRINCIPAL_KEYED:
            return key in self.principals
        if namespace not in JOINED:
            return key in self.ids
        try:
            parts = split_key(key)
        except ValueError:  # no joined key (none is written otherwise): names none
            return False
        return any(part in self.parts[n == JOINED[namespace]] for n, part in enumerate(parts))


@dataclass(frozen=True)
class ErasedTriggers:
    """The trigger ids of the person's erased `triggers` and `trigger_state` rows, and the store keys the
    erased lake still makes of them (rows of another user under the same id, left by the erasure). Found by
    review: a candidate decided under an anonymous id of theirs (`no_address`, `exited`: no send, so no
    made id) kept its `decided_triggers` entry, whose value holds no principal and a null user id, so
    nothing named the person; `lakemail state check` then found the store unequal to a rebuild."""

    ids: frozenset[str] = frozenset()
    parts: frozenset[str] = frozenset()  # as `pending_principals`' second key part (`key_part`)
    implied: dict[str, frozenset[str]] = field(default_factory=dict)  # namespace -> keys the lake makes

    @classmethod
    def of(cls, lake: LakeResource, trigger_ids: Iterable[str]) -> ErasedTriggers:
        ids = frozenset(trigger_ids)
        if not ids:
            return cls()
        implied = {
            namespace: frozenset(store_key(k) for chunk in read(lake, ids) for k in chunk["key"])
            for namespace, read in TRIGGER_READERS.items()
        }
        return cls(ids, frozenset(map(key_part, ids)), implied)

    def made(self, namespace: str, key: str) -> bool:
        """Whether a store key is one an erased trigger id made and the erased lake no longer makes."""
        if not self.ids or namespace not in TRIGGER_READERS or key in self.implied[namespace]:
            return False
        if namespace == "pending_due":
            return key.rsplit(SEPARATOR, 1)[-1] in self.ids
        if namespace != "pending_principals":
            return key in self.ids
        try:
            return split_key(key)[1] in self.parts
        except ValueError:  # no joined key (none is written otherwise)
            return False


def person_changes(
    store: StateStore, person: Person, event_ids: Iterable[str], erased: ErasedTriggers | None = None
) -> StateChanges:
    """Deletes of every key of the person in `store` (one scan per namespace, keys and values), and of
    what their `erased` trigger rows made."""
    erased = erased or ErasedTriggers()
    own = StoreKeys.of(person.own.values, person.own.principals)
    shared = StoreKeys.of(person.shared_ids, map(of_anonymous, person.shared_ids))
    others = StoreKeys.of(person.others, map(of_user, person.others))
    lines = Lines.of(person)
    changes = StateChanges()
    gone_triggers: set[str] = set()
    for namespace in PERSON_NAMESPACES:
        for key, value in store.scan(namespace):
            mine, ours, other = (k.name(namespace, key) for k in (own, shared, others))
            if lines.theirs(value, own=mine, shared=ours, other=other) or erased.made(namespace, key):
                changes.delete_stored(namespace, key)
                if namespace == "pending_triggers":
                    gone_triggers.add(key)
    for key, _ in store.scan("pending_due"):  # the due index of the candidates that went
        if key.rsplit(SEPARATOR, 1)[-1] in gone_triggers:
            changes.delete_stored("pending_due", key)
    held = store.get_many("event_ids", event_ids)
    for event_id in held:
        changes.delete("event_ids", event_id)
    return changes


def _others_links(lake: LakeResource, person: Person, changes: StateChanges) -> None:
    """Put back the `identity_links` of anonymous ids the person shares and of the other users linked to
    their ids (an alias of a user renamed into theirs that named another user too) that the erased lake
    still has: the deletes took the whole value, which named the person too."""
    others = {
        *(LINK_ANON + a for a in (*person.shared_ids, *person.kept_ids)),
        *(LINK_USER + u for u in person.others),
    }
    deleted = changes.deletes.get("identity_links", set())
    if not {store_key(k) for k in others} & deleted:
        return
    for chunk in identity_links(lake):
        kept = chunk.filter(pl.col("key").is_in(list(others)))
        deleted -= {store_key(k) for k in kept["key"]}  # a delete would win over the put
        changes.put_many("identity_links", kept)


def erase_from_store(
    lake: LakeResource,
    state: StateResource | None,
    person: Person,
    event_ids: Iterable[str],
    rewritten: Iterable[str] = (),
    trigger_ids: Iterable[str] = (),
) -> int:
    """Remove the person from the state store (none: nothing to do); returns the keys deleted. The
    `rewritten` landed files get their new ingest_log records (sizes and digests without the person);
    `trigger_ids`: of the person's erased trigger rows (their store entries go as the erased lake says)."""
    store = state.existing() if state is not None else None
    if state is None or store is None:
        return 0
    if store.key_format() != KEY_FORMAT:  # an earlier release's keys: rebuilt from the erased lake instead
        log.warning("rebuilding the state store from the erased lake: its key format is not this release's")
        rebuild(lake, state)
        return 0
    changes = person_changes(store, person, event_ids, ErasedTriggers.of(lake, trigger_ids))
    _others_links(lake, person, changes)
    deleted = sum(map(len, changes.deletes.values()))
    for chunk in suppressions(lake):  # the `erased` entries just added (a small table), as a rebuild has them
        changes.put_many("suppressions", chunk)
    files = list(rewritten)
    for chunk in landed_files(lake) if files else ():
        changes.put_many("landed_files", chunk.filter(pl.col("key").is_in(files)))
    store.commit(store.stamps()[LANE], changes, lane=LANE)
    log.info("erasure removed %s keys from the state store", deleted)
    return deleted
