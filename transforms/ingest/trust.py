"""Which landed messages may suppress a shopper (found by review: any could).

The collector's public write keys (LAKEMAIL_WRITE_KEY) are in every page's snippet, so anyone could post
an `Unsubscribed`, `Email Bounced` or `Email Marked as Spam` naming any user id or address and silently
stop that shopper's email. The collector now marks each message it took under a public key
(transforms.spec.KEY_KIND_FIELD; it strips the field from every other message), and such a message whose
event suppresses (SUPPRESSING_EVENTS, by `event_name`: a spec name's variant counts as the name) is
quarantined `untrusted_suppression`: landed and counted, never a suppression, never silently dropped.
Messages under a server key (LAKEMAIL_SERVER_WRITE_KEY), the collector's own (unsubscribe links, the
providers' webhooks) and files landed directly carry no mark: they are trusted.
"""

from __future__ import annotations

import polars as pl

from transforms.sends.refusals import BOUNCED, COMPLAINED

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
