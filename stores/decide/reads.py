"""What the decision lane reads from the state store: keyed lookups and prefix/range scans, all through
one `StateReader` (one read transaction: one consistent snapshot while the ingest lane commits).

Each reader returns the frame the old Delta reader returned for the same keys, decoded with the
namespace's value schema (`stores.state.namespaces.VALUE_SCHEMAS`).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

import polars as pl

from resources.state import StateReader
from stores.state.links import store_lookup
from stores.state.namespaces import VALUE_SCHEMAS
from transforms.erasure.records import address_key, suppressed, user_key
from transforms.profiles.crm import crm_ids, shopper_rows
from transforms.profiles.merge import principal_links, renamed_to
from transforms.profiles.state import PARTIAL_SCHEMA
from transforms.schema import CATALOG_SCHEMA, CUSTOMERS_SCHEMA, TRIGGERS_SCHEMA, UTC_TS
from transforms.state import decode
from transforms.state_keys import AFTER_SEPARATOR, SEPARATOR, key_range
from transforms.triggers.exits import RENEWABLE_SCHEMA
from transforms.triggers.store_changes import SENT_ROWS

VIEWER_ROWS = {"principal": pl.String(), "product_id": pl.String(), "last_ts": UTC_TS}
ENTRY = {"key": pl.String(), "value": pl.Binary()}


def decoded(found: dict[str, bytes], schema: dict[str, pl.DataType]) -> tuple[list[str], pl.DataFrame]:
    """(keys, rows) of `found`, in key order."""
    keys = sorted(found)
    if not keys:
        return [], pl.DataFrame(schema=schema)
    return keys, decode([found[k] for k in keys], schema)


def rows_of(
    reader: StateReader, namespace: str, keys: Iterable[str], schema: dict[str, pl.DataType]
) -> pl.DataFrame:
    """The values of `keys` that the namespace holds (values that are whole rows: catalog, customers...)."""
    return decoded(reader.get_many(namespace, keys), schema)[1]


def joined_values(reader: StateReader, namespace: str, first: str) -> list[bytes]:
    """The values of every joined key whose first id is `first` (one range scan: `key_range`)."""
    return [value for _, value in reader.scan(namespace, *key_range(first))]


def pending_rows(reader: StateReader, trigger_ids: Iterable[str]) -> pl.DataFrame:
    return rows_of(reader, "pending_triggers", trigger_ids, TRIGGERS_SCHEMA).sort("trigger_id")


def due_ids(reader: StateReader, now: datetime) -> list[str]:
    """Trigger ids of the pending candidates due at or before `now` (the due index, in due order)."""
    bound = now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ") + AFTER_SEPARATOR
    return [key.split(SEPARATOR, 1)[1] for key, _ in reader.scan("pending_due", "", bound)]


def pending_of(reader: StateReader, principals: Iterable[str]) -> list[str]:
    """Trigger ids of the pending candidates of `principals` (the principal index)."""
    values = [v for p in sorted(set(principals)) for v in joined_values(reader, "pending_principals", p)]
    if not values:
        return []
    return decode(values, VALUE_SCHEMAS["pending_principals"])["trigger_id"].to_list()


def decided_ids(reader: StateReader, trigger_ids: Iterable[str]) -> pl.Series:
    return pl.Series("trigger_id", sorted(reader.get_many("decided_triggers", trigger_ids)), dtype=pl.String)


def renewable(reader: StateReader, trigger_ids: Iterable[str]) -> pl.DataFrame:
    """Of `trigger_ids`, those with a terminal decision, and it (`exits.renewed`): RENEWABLE_SCHEMA."""
    found = decoded(reader.get_many("decided_triggers", trigger_ids), VALUE_SCHEMAS["decided_triggers"])[1]
    return found.select([pl.col(c).cast(t) for c, t in RENEWABLE_SCHEMA.items()]).sort("trigger_id")


def profile_state(reader: StateReader, principals: Iterable[str]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(merged state, identity links) of the users behind `principals`, as `stores.profiles.state_for` gives
    them: the store holds each shopper's state merged and identity-resolved, under the principal its claims
    end at (a user id, or an anonymous principal no identify has linked: `merge.principal_links`)."""
    links, ends = principal_links(store_lookup(reader), principals)
    state = rows_of(reader, "profiles", ends, PARTIAL_SCHEMA).sort("principal")
    return state, links.sort("anonymous_id", "user_id", "first_seen_at")


def customers(reader: StateReader, users: Iterable[str], links: pl.DataFrame) -> pl.DataFrame:
    """The CRM rows of `users`' shoppers, one each under the id she goes by now (`transforms.profiles.crm`):
    a user an alias renamed (`links`, as `profile_state` gives them) is hers, as `stores.profiles`' are."""
    wanted = list(users)
    renamed = renamed_to(links)
    rows = rows_of(reader, "customers", crm_ids(wanted, renamed), CUSTOMERS_SCHEMA)
    return shopper_rows(rows, renamed, wanted).sort("user_id")


def catalog(reader: StateReader, product_ids: Iterable[str] | None) -> pl.DataFrame:
    """The catalog rows of `product_ids` (the whole catalog when None: what a send recommends from)."""
    if product_ids is None:
        found = dict(reader.scan("catalog"))
        return decoded(found, CATALOG_SCHEMA)[1]
    return rows_of(reader, "catalog", product_ids, CATALOG_SCHEMA).sort("product_id")


def suppressed_users(reader: StateReader, profiles: pl.DataFrame, secret: str) -> frozenset[str]:
    """The users of `profiles` whose user key or address key is in `suppressions`."""
    keys = {user_key(u, secret) for u in profiles["user_id"]}
    keys |= {address_key(e, secret) for e in profiles["email"].drop_nulls() if e}
    return suppressed(profiles, set(reader.get_many("suppressions", keys)), secret)


def recent_sends(reader: StateReader, users: Iterable[str]) -> pl.DataFrame:
    """The `send` decisions the store keeps for `users` (SENT_ROWS)."""
    names, values = decoded(reader.get_many("recent_sends", users), VALUE_SCHEMAS["recent_sends"])
    if not names:
        return pl.DataFrame(schema=SENT_ROWS)
    rows = values.with_columns(pl.Series("user_id", names)).explode("sends").unnest("sends")
    return rows.select([pl.col(c).cast(t) for c, t in SENT_ROWS.items()])


def viewers(reader: StateReader, product_ids: Iterable[str]) -> pl.DataFrame:
    """Who viewed or carted each product and when last (VIEWER_ROWS): every entry `product_viewers` holds."""
    return viewer_entries(reader, product_ids).select(list(VIEWER_ROWS))


def viewer_entries(reader: StateReader, product_ids: Iterable[str]) -> pl.DataFrame:
    """VIEWER_ROWS of every viewer of each product (`product_viewers`, a range scan each; the principal is
    read from the value: a long one is only a hash in the key), with the entry's `key` and `value` as the
    store holds them (what a conditional delete names: `StateChanges.delete_if`)."""
    products: list[str] = []
    keys: list[str] = []
    values: list[bytes] = []
    for product in sorted(set(product_ids)):
        before = len(keys)
        for key, value in reader.scan("product_viewers", *key_range(product)):
            keys.append(key)
            values.append(value)
        products += [product] * (len(keys) - before)
    if not values:
        return pl.DataFrame(schema={**VIEWER_ROWS, **ENTRY})
    rows = decode(values, VALUE_SCHEMAS["product_viewers"]).with_columns(pl.Series("product_id", products))
    entries = pl.DataFrame([pl.Series("key", keys, pl.String), pl.Series("value", values, pl.Binary)])
    return pl.concat(
        [rows.select([pl.col(c).cast(t) for c, t in VIEWER_ROWS.items()]), entries], how="horizontal"
    )
