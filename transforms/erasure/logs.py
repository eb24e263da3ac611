"""GDPR erasure, pure part: the person in Delta log text (`_delta_log` commits), and commitInfo redacted."""

from __future__ import annotations

import re
from typing import Any

import orjson

from transforms.erasure.person import MIN_WORD_ID, Person, email_part, names_person


def log_pattern(person: Person) -> str:
    """A Python regex finding the person in Delta log text: a quoted id, a long id as a word, an email."""
    # A short id ("u-1") counts only as a whole quoted value: as a word it would be found everywhere.
    ids = [
        rf"(?<![A-Za-z0-9_]){re.escape(v)}(?![A-Za-z0-9_])"
        if len(v) >= MIN_WORD_ID
        else rf"(?:^|['\"]){re.escape(v)}(?:$|\\?['\"])"
        for v in person.ids
    ]
    return "|".join(ids + [email_part(e) for e in person.emails])


REDACTED = "<erased>"


def _redact(value: Any, person: Person) -> Any:
    if isinstance(value, str):
        return REDACTED if names_person(value, person) else value
    if isinstance(value, dict):
        return {key: _redact(item, person) for key, item in value.items()}
    if isinstance(value, list):
        return [_redact(item, person) for item in value]
    return value


def scrub_log(content: bytes, person: Person) -> tuple[bytes, int]:
    """A `_delta_log` commit with the person taken out of its commitInfo, and lines still naming them.

    commitInfo is provenance only (an engine's merge may have put source values into its predicate);
    the actions that make up table state are never changed, so a trace there is counted, not hidden.
    """
    lines = content.split(b"\n")
    exact = re.compile(log_pattern(person))
    left = 0
    for number, line in enumerate(lines):
        text = line.decode("utf-8", errors="replace")
        if not names_person(text, person):
            continue
        action = orjson.loads(line)
        if set(action) == {"commitInfo"}:  # redacted generously: a near namesake loses provenance only
            lines[number] = orjson.dumps(_redact(action, person))
        elif exact.search(text):
            left += 1
    return b"\n".join(lines), left
