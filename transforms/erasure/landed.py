"""GDPR erasure, pure part: the person in landed event files the lake has not ingested yet.

An identify, alias or any message with the person's `userId` links its anonymous id (and an alias its
`previousId`) to them exactly as the ingest would: the erasure takes those ids too, so the lines under
them are blanked before the ingest can turn them into an anonymous shopper with the person's history.
An alias not ingested yet renames a user as an ingested one does (`landed_aliases`).
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from typing import Any

import orjson


def _messages(content: bytes, user_ids: Collection[str]) -> Iterator[dict[str, Any]]:
    """The JSON objects of `content` whose `userId` is one of `user_ids` (other lines are not parsed)."""
    tokens = {t for u in user_ids for t in (orjson.dumps(u), orjson.dumps(u).replace(b"/", b"\\/"))}
    if not any(token in content for token in tokens):
        return
    for line in content.split(b"\n"):
        if not any(token in line for token in tokens):
            continue
        try:
            message = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue  # the ingest quarantines it; the erasure blanks it by its content
        if isinstance(message, dict) and message.get("userId") in user_ids:
            yield message


def _text(value: object) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def landed_links(content: bytes, *user_ids: str) -> tuple[set[str], set[str]]:
    """(anonymous ids, emails) that the lines of a landed events file link to any of `user_ids`."""
    anonymous: set[str] = set()
    emails: set[str] = set()
    for message in _messages(content, set(user_ids)):
        anonymous |= {v for v in (_text(message.get("anonymousId")), _text(message.get("previousId"))) if v}
        context = message.get("context")
        own = message.get("traits") if message.get("type") != "group" else None  # a group's are the group's
        for traits in (own, context.get("traits") if isinstance(context, dict) else None):
            if isinstance(traits, dict) and (email := _text(traits.get("email"))):
                emails.add(email)
    return anonymous, emails


def landed_edges(content: bytes, anonymous_ids: Collection[str], *user_ids: str) -> set[tuple[str, str]]:
    """(anonymous id, user id) links the lines of a landed events file make from one of `anonymous_ids`
    to a user not one of `user_ids`: an erasure must not take such an id as theirs alone."""
    tokens = [t for a in anonymous_ids for t in (orjson.dumps(a), orjson.dumps(a).replace(b"/", b"\\/"))]
    found: set[tuple[str, str]] = set()
    for line in content.split(b"\n") if any(t in content for t in tokens) else ():
        if not any(t in line for t in tokens):
            continue
        try:
            message = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        user = _text(message.get("userId")) if isinstance(message, dict) else None
        if user is None or user in user_ids:
            continue
        linked = (_text(message.get(key)) for key in ("anonymousId", "previousId"))
        found |= {(a, user) for a in linked if a is not None and a in anonymous_ids}
    return found


def landed_aliases(content: bytes) -> set[tuple[str, str]]:
    """(previous id, user id) of every `alias` in the lines of a landed events file (both ids as sent)."""
    found: set[tuple[str, str]] = set()
    for line in content.split(b"\n") if b"previousId" in content else ():
        if b"previousId" not in line:
            continue
        try:
            message = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if isinstance(message, dict) and message.get("type") == "alias":
            previous, user = message.get("previousId"), message.get("userId")
            if isinstance(previous, str) and isinstance(user, str) and previous.strip() and user.strip():
                found.add((previous, user))  # as sent: the ingest keeps an id's blanks
    return found
