"""The tracking API's write keys, of two kinds (found by review: every key was one kind, and public).

- Public keys, `LAKEMAIL_WRITE_KEY`: the site snippet `/lakemail.js` and the shop's pages carry one to
  every browser, so anyone can post with it. The collector stamps every message taken under a public key
  `"lakemailKeyKind": "public"` (transforms.spec.KEY_KIND_FIELD), and the ingest quarantines such a
  message that would suppress a shopper (`Unsubscribed`, `Email Bounced`, `Email Marked as Spam`) as
  `untrusted_suppression` (transforms.ingest.trust): it lands and is counted, but suppresses no one.
  Its event id is its messageId as `~public:<messageId>`, so it takes no trusted message's id first.
- Server keys, `LAKEMAIL_SERVER_WRITE_KEY`: secret, for the shop's back end and Segment's server libraries.
  Their messages land without the stamp and are trusted, as files landed directly are.
The collector strips a `lakemailKeyKind` a client sent from every message, so no client forges trust.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

SERVER_KEY_VARIABLE = "LAKEMAIL_SERVER_WRITE_KEY"
MIN_SERVER_KEY_CHARS = 16  # a guessable server key would let anyone suppress anyone
KeyKind = Literal["public", "server"]


def check_server_keys(server: Sequence[str], public: Sequence[str]) -> None:
    """ValueError naming LAKEMAIL_SERVER_WRITE_KEY (never a value) unless `server` can be secret keys."""
    if any(len(key) < MIN_SERVER_KEY_CHARS for key in server):
        raise ValueError(
            f"{SERVER_KEY_VARIABLE} must hold keys of at least {MIN_SERVER_KEY_CHARS} characters "
            "(e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))')"
        )
    if any(":" in key for key in server):  # Segment's libraries send it as the HTTP Basic user
        raise ValueError(f"{SERVER_KEY_VARIABLE} must not hold a key with a ':' (it ends the Basic user)")
    if any(_equal(key, known) for key in server for known in public):
        raise ValueError(
            f"{SERVER_KEY_VARIABLE} must not hold a key of LAKEMAIL_WRITE_KEY: those are public "
            "(every page's snippet carries them)"
        )


@dataclass(frozen=True)
class WriteKeys:
    """The collector's write keys: `public` (LAKEMAIL_WRITE_KEY) and secret `server` ones."""

    public: tuple[str, ...]
    server: tuple[str, ...] = ()

    def kind(self, key: object) -> KeyKind | None:
        """What `key` is (compared in constant time with each key), None when it is no write key."""
        if not isinstance(key, str) or not key:
            return None
        if any(_equal(key, known) for known in self.server):
            return "server"
        if any(_equal(key, known) for known in self.public):
            return "public"
        return None


def _equal(given: str, known: str) -> bool:
    # surrogatepass: a lone surrogate (read leniently from a body) is no key, and no UnicodeEncodeError
    return hmac.compare_digest(given.encode("utf-8", "surrogatepass"), known.encode())
