"""Which landed messages may suppress a shopper (found by review: any could), and whose event ids they get.

The collector's public write keys (LAKEMAIL_WRITE_KEY) are in every page's snippet, so anyone could post
an `Unsubscribed`, `Email Bounced` or `Email Marked as Spam` naming any user id or address and silently
stop that shopper's email. The collector now marks each message it took under a public key
(transforms.spec.KEY_KIND_FIELD; it strips the field from every other message), and such a message whose
event suppresses (SUPPRESSING_EVENTS, by `event_name`: a spec name's variant counts as the name) is
quarantined `untrusted_suppression`: landed and counted, never a suppression, never silently dropped.
Messages under a server key (LAKEMAIL_SERVER_WRITE_KEY), the collector's own (unsubscribe links, the
providers' webhooks) and files landed directly carry no mark: they are trusted.

A marked message's event id (the dedupe key) is its messageId in a namespace of its own (found by review:
with the plain id, a browser could post any harmless event as `unsubscribe-<send_id>`, an id computable
from public facts, and the shopper's real unsubscribe was then dropped as its duplicate, as was any id a
server-side source would use later). Ids starting with ID_NAMESPACE are lakemail's: a public key's `m` is
`~public:m`, and a trusted message whose own id starts with `~` is `~trusted:` and its id, so that no
public message reaches any trusted message's id, while a public key's retry and a trusted one's are each
still the same id as before.
"""

from __future__ import annotations

import polars as pl

from transforms.sends.refusals import BOUNCED, COMPLAINED
from transforms.spec import KEY_KIND_FIELD

UNSUBSCRIBED_EVENT = "Unsubscribed"
# The events stores.suppressions turns into `suppressions` rows (a test pins that they are the same).
SUPPRESSING_EVENTS = (UNSUBSCRIBED_EVENT, BOUNCED, COMPLAINED)
UNTRUSTED_DETAIL = (
    "a suppressing event sent with a public write key (LAKEMAIL_WRITE_KEY) suppresses no one: "
    "send it with a server write key (LAKEMAIL_SERVER_WRITE_KEY)"
)


def untrusted_suppressions(key_kind: pl.Series, event_name: pl.Series) -> pl.Series | None:
    """Per message, whether it is a suppressing event sent under a public key (any `key_kind`); None when
    no message was (the common case, a file landed directly: one look at the null count, #17)."""
    if key_kind.null_count() == key_kind.len():
        return None
    return key_kind.is_not_null() & event_name.is_in(SUPPRESSING_EVENTS).fill_null(False)


ID_NAMESPACE = "~"
PUBLIC_ID_PREFIX = "~public:"  # a message under a public write key
TRUSTED_ID_PREFIX = "~trusted:"  # a trusted message whose own messageId starts with ID_NAMESPACE
NAMESPACE_LOOK = "_namespaced_ids"


def namespace_look() -> pl.Expr:
    """Whether any message's own id starts with ID_NAMESPACE (one look at the ids, beside the ingest's other
    looks: none does but one made so, and then only its rows are written again)."""
    return pl.col("messageId").str.starts_with(ID_NAMESPACE).any().alias(NAMESPACE_LOOK)


def event_id_of(message_id: str, key_kind: object) -> str:
    """One message's event id, as `event_ids` gives it (for readers of landed lines: the soak's checks)."""
    if key_kind is not None:
        return PUBLIC_ID_PREFIX + message_id
    return TRUSTED_ID_PREFIX + message_id if message_id.startswith(ID_NAMESPACE) else message_id


def event_ids(key_kind: pl.Series, namespaced: bool) -> pl.Expr:
    """Each message's event id: its `messageId`; `~public:` and it when marked (any `key_kind`);
    `~trusted:` and it when unmarked and starting with `~` (only looked for when `namespaced`:
    namespace_look). A pass of unmarked ids outside the namespace (a file landed directly) keeps them as
    they are, and only a mixed pass writes ids by row."""
    message_id = pl.col("messageId")
    marked = key_kind.len() - key_kind.null_count()
    if marked and marked == key_kind.len():  # every message a public key's (a browser's batch)
        return pl.lit(PUBLIC_ID_PREFIX) + message_id
    ids = message_id
    if namespaced:
        escaped = pl.lit(TRUSTED_ID_PREFIX) + message_id
        ids = pl.when(message_id.str.starts_with(ID_NAMESPACE)).then(escaped).otherwise(ids)
    if marked:
        public = pl.lit(PUBLIC_ID_PREFIX) + message_id
        ids = pl.when(pl.col(KEY_KIND_FIELD).is_not_null()).then(public).otherwise(ids)
    return ids
