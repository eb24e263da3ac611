"""`profiles` as of the last committed batch, from the state store: its `profiles` namespace (one merged
state per resolved principal) and `customers`, derived chunk by chunk (`transforms.profiles.derive`).

Both namespaces are keyed by user id (a user's principal is its id: `transforms.principals`), so one key
range of each makes the profile rows of the users in it: a pass reads the two in key order, CHUNK_KEYS
states at a time, in bounded memory at any size. The few users kept as `user:<id>` (an id that would read as
another principal) are out of that order: their states and CRM rows make the last range, together. So are
the few CRM rows under a user id an `alias` renamed, which are the shopper's (`transforms.profiles.crm`),
with the state and CRM row of the id she goes by now: a first pass over the CRM's ids finds them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime
from itertools import islice

import polars as pl

from resources.state import StateStore
from stores.state.links import store_lookup
from stores.state.namespaces import VALUE_SCHEMAS
from transforms.principals import of_user, user_of
from transforms.profiles.aliases import claim_links
from transforms.profiles.crm import shopper_rows
from transforms.profiles.derive import derive
from transforms.profiles.merge import renamed_to
from transforms.profiles.state import PARTIAL_SCHEMA
from transforms.schema import PROFILES_SCHEMA
from transforms.state import decode
from transforms.state_keys import HASHED_KEY, store_key

CHUNK_KEYS = 50_000
Pairs = Iterator[tuple[str, bytes]]


class StoreMoved(RuntimeError):
    """A batch committed while the pass opened its reads: open them again."""


def _frame(values: list[bytes], schema: dict[str, pl.DataType]) -> pl.DataFrame:
    return decode(values, schema) if values else pl.DataFrame(schema=schema)


def renamed_customers(store: StateStore, size: int = CHUNK_KEYS) -> dict[str, str]:
    """Each user id of the store's CRM rows that an `alias` renamed -> the user id she goes by now (the
    claims of every CRM id, `size` at a time, in one read transaction)."""
    renamed: dict[str, str] = {}
    with store.reader() as reader:
        rows = reader.scan("customers")
        while chunk := list(islice(rows, size)):
            users = [k for k, _ in chunk if not k.startswith(HASHED_KEY)]
            hashed = [v for k, v in chunk if k.startswith(HASHED_KEY)]  # a long id: only its row names it
            if hashed:
                users += decode(hashed, VALUE_SCHEMAS["customers"])["user_id"].to_list()
            ends = renamed_to(claim_links(store_lookup(reader), map(of_user, users)))
            renamed |= {u: ends[u] for u in users if u in ends}
    return renamed


def _key_ranges(
    states: Pairs, customers: Pairs, size: int, renamed: Mapping[str, str]
) -> Iterator[tuple[list[bytes], list[bytes]]]:
    """(states, customers) values of consecutive key ranges: each range ends at its `size`-th state; the
    users kept as `user:<id>` go in the last one (their states and CRM rows, wherever their keys fall), and
    so do the CRM rows of users `renamed` (old id -> the id she goes by now) with those of the ids they go by
    now and their states."""
    ends = set(renamed.values())
    late_keys = {store_key(of_user(end)) for end in ends}
    late_crm = {store_key(user) for user in (*renamed, *ends)}
    pending = next(customers, None)
    chunk: list[bytes] = []
    late_states: list[bytes] = []
    late_customers: list[bytes] = []
    for key, value in states:
        user = user_of(key)
        if user is None:  # an anonymous shopper's
            continue
        if user != key or key in late_keys:  # kept as `user:<id>`, or renamed to: out of key order
            late_states.append(value)
            continue
        chunk.append(value)
        if len(chunk) < size:
            continue
        rows: list[bytes] = []
        while pending is not None and pending[0] <= key:
            in_order = of_user(pending[0]) == pending[0] and pending[0] not in late_crm
            (rows if in_order else late_customers).append(pending[1])
            pending = next(customers, None)
        yield chunk, rows
        chunk = []
    rest = [pending[1]] if pending is not None else []
    rest += [value for _, value in customers]
    yield chunk + late_states, rest + late_customers


def open_profiles(
    store: StateStore, as_of: datetime, size: int = CHUNK_KEYS
) -> tuple[int, Iterator[pl.DataFrame]]:
    """(the batch they reflect, PROFILES_SCHEMA rows of every known shopper a key range at a time).

    Each namespace is read in one transaction; raises StoreMoved when a batch committed while the two
    opened (they would show two batches)."""
    before = store.stamps()
    renamed = renamed_customers(store, size)
    states, customers = store.scan("profiles"), store.scan("customers")
    first_state, first_customer = next(states, None), next(customers, None)
    if store.stamps() != before:
        raise StoreMoved("a batch committed while the profiles were opened")
    ranges = _key_ranges(_chained(first_state, states), _chained(first_customer, customers), size, renamed)
    return before["ingest"], _derived(ranges, as_of, renamed)


def _derived(
    ranges: Iterator[tuple[list[bytes], list[bytes]]], as_of: datetime, renamed: Mapping[str, str]
) -> Iterator[pl.DataFrame]:
    for state_values, customer_values in ranges:
        state = _frame(state_values, PARTIAL_SCHEMA)
        crm = shopper_rows(_frame(customer_values, VALUE_SCHEMAS["customers"]), renamed)
        if state.height or crm.height:
            yield derive(state, crm, as_of).select(list(PROFILES_SCHEMA))


def _chained(first: tuple[str, bytes] | None, rest: Pairs) -> Pairs:
    if first is not None:
        yield first
        yield from rest


def with_retries(
    store: StateStore, as_of: datetime, size: int = CHUNK_KEYS
) -> tuple[int, Iterator[pl.DataFrame]]:
    """`open_profiles`, opened again while batches commit meanwhile (a few tries)."""
    for _ in range(10):
        try:
            return open_profiles(store, as_of, size)
        except StoreMoved:
            continue
    raise StoreMoved("batches kept committing while the profiles were opened")


def current_profiles(store: StateStore, as_of: datetime) -> tuple[pl.DataFrame, int]:
    """(every profile row as of the store's last committed batch, that batch's number)."""
    batch, chunks = with_retries(store, as_of)
    frames = list(chunks)
    rows = pl.concat(frames) if frames else pl.DataFrame(schema=PROFILES_SCHEMA)
    return rows, batch
