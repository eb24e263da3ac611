"""GDPR erasure, pure part: which rows, landed lines and store values are the person's.

Theirs is what holds a key of the person alone (`Person.own`: every key but the anonymous ids other users
share), and what holds a shared id they claimed first without carrying another user's id
(`transforms.erasure.claims` says why). What holds a shared id and is not theirs is kept: `kept` finds it
for the certificate. A principal is the person's only where a principal stands: a `principal` column or
field holding one of `Person.principals` (`transforms.erasure.person`).
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass

import orjson
import polars as pl

from transforms.erasure.made import MADE_CHUNK, made_patterns
from transforms.erasure.person import Person, id_parts, text_pattern
from transforms.principals import of_anonymous, principal_user, user_of

PRINCIPAL = "principal"  # a column or JSON field that holds a principal (`transforms.principals`)
# A `principal` field of a JSON text (a state-store value), its value as JSON.
PRINCIPAL_FIELD = re.compile(rb'"principal":("(?:[^"\\]|\\.)*")')


def holds(
    schema: pl.Schema, keys: Collection[str], patterns: Sequence[str], principals: Collection[str] = ()
) -> pl.Expr:
    """True for rows of a frame of `schema` where a text or nested column equals one of `keys` or holds
    one of the (non-empty) `patterns`, or a `principal` column is one of `principals` (only that: a key
    there names another shopper, as the user `anon:abc`'s id is anonymous `abc`'s principal)."""
    checks: list[pl.Expr] = []
    for name, dtype in schema.items():
        if name == PRINCIPAL and dtype == pl.String:
            checks.append(pl.col(name).is_in(list(principals)))
            continue
        if dtype == pl.String:
            text = pl.col(name)
        elif isinstance(dtype, pl.List | pl.Array | pl.Struct):
            text = pl.struct(name).struct.json_encode()
        else:
            continue
        checks += [text.is_in(list(keys)), *(text.str.contains(p) for p in patterns)]
    return pl.any_horizontal(checks).fill_null(False) if checks else pl.lit(False)


def _ids(schema: pl.Schema, ids: Sequence[str]) -> pl.Expr:
    """Rows holding one of the anonymous `ids`, as themselves or as principals."""
    if not ids:
        return pl.lit(False)
    principals = [of_anonymous(a) for a in ids]
    return holds(schema, ids, ["|".join(id_parts(ids, principals))], principals)


def another_user(schema: pl.Schema, user_ids: Collection[str]) -> pl.Expr:
    """True for rows that carry a user id not one of `user_ids`: their `user_id`, the user of their
    `principal` (none when anonymous), or the `userId` of a quarantined line."""
    users = [pl.col("user_id")] if schema.get("user_id") == pl.String else []
    users += [principal_user(pl.col(PRINCIPAL))] if schema.get(PRINCIPAL) == pl.String else []
    if not users and schema.get("raw") == pl.String:
        users = [pl.col("raw").str.json_path_match("$.userId")]
    checks = [u.is_not_null() & ~u.is_in(sorted(user_ids)) for u in users]
    return pl.any_horizontal(checks).fill_null(False) if checks else pl.lit(False)


def mentions(schema: pl.Schema, person: Person) -> pl.Expr:
    """True for rows of a frame of `schema` that are the person's (see the module's docstring)."""
    own = person.own
    made = made_patterns(own.made_ids, MADE_CHUNK)  # a Polars regex may not pass 10 MB compiled
    theirs = holds(schema, own.values, [text_pattern(own, made=False), *made], own.principals)
    if not person.shared_ids:
        return theirs
    return theirs | (_ids(schema, person.shared_ids) & ~another_user(schema, person.user_ids))


def kept(schema: pl.Schema, person: Person) -> pl.Expr:
    """True for rows holding one of the person's shared or kept ids (after an erasure: left on purpose)."""
    return _ids(schema, (*person.shared_ids, *person.kept_ids))


def _holds(pattern: re.Pattern[bytes] | None, principals: Collection[str], text: bytes) -> bool:
    """Whether `pattern` (ids, and principals as `principal` fields) finds one in `text`: in a `principal`
    field only one of `principals` (an id inside one names another shopper)."""
    if pattern is None or pattern.search(text) is None:
        return False
    fields = PRINCIPAL_FIELD.findall(text)
    if not fields:
        return True
    if any(orjson.loads(field) in principals for field in fields):
        return True
    return pattern.search(PRINCIPAL_FIELD.sub(b'"principal":null', text)) is not None


def _compiled(parts: Iterable[str]) -> re.Pattern[bytes] | None:
    joined = "|".join(parts)
    return re.compile(joined.encode()) if joined else None


@dataclass(frozen=True)
class Lines:
    """Which landed lines and state-store values are the person's, as `mentions` takes rows."""

    own: re.Pattern[bytes]  # a key of theirs alone
    user_ids: frozenset[str] = frozenset()  # the person's (merged_ids too)
    shared: re.Pattern[bytes] | None = None  # a shared id of theirs: theirs where no other user is
    others: re.Pattern[bytes] | None = None  # another user linked to one of their anonymous ids
    kept: re.Pattern[bytes] | None = None  # any shared or kept id: what the certificate counts
    own_principals: frozenset[str] = frozenset()  # a `principal` field is theirs alone when one of these
    shared_principals: frozenset[str] = frozenset()  # ... of a shared id of theirs

    @classmethod
    def of(cls, person: Person) -> Lines:
        shared, both = person.shared_ids, (*person.shared_ids, *person.kept_ids)
        return cls(
            re.compile(text_pattern(person.own).encode()),
            frozenset(person.user_ids),
            _compiled(id_parts(shared, map(of_anonymous, shared))),
            _compiled(id_parts(person.others)),
            _compiled(id_parts(both, map(of_anonymous, both))),
            frozenset(person.own.principals),
            frozenset(map(of_anonymous, shared)),
        )

    def anywhere(self, content: bytes) -> bool:
        """Whether any line of `content` may be theirs."""
        return any(p is not None and p.search(content) for p in (self.own, self.shared))

    def theirs(self, text: bytes, *, own: bool = False, shared: bool = False, other: bool = False) -> bool:
        """Whether a line or value is theirs; `own`, `shared`, `other`: what its store key says."""
        if own or _holds(self.own, self.own_principals, text):
            return True
        if not shared and not _holds(self.shared, self.shared_principals, text):
            return False
        return not other and not self._another_user(text)

    def _another_user(self, text: bytes) -> bool:
        """A message (a JSON object) with another `userId`, else text holding a linked user's id."""
        try:
            message = orjson.loads(text)
        except orjson.JSONDecodeError:
            message = None
        if isinstance(message, dict):
            user = message.get("userId", message.get("user_id"))
            principal = message.get(PRINCIPAL)
            if isinstance(principal, str) and user_of(principal) not in {None, *self.user_ids}:
                return True
            return isinstance(user, str) and user not in self.user_ids
        return self.others is not None and self.others.search(text) is not None

    def count_kept(self, content: bytes) -> int:
        """Lines of `content` that hold a shared or kept id."""
        pattern = self.kept
        return 0 if pattern is None else sum(1 for line in content.split(b"\n") if pattern.search(line))


def blank_lines(content: bytes, lines: Lines, positions: Collection[int]) -> tuple[bytes, list[int]]:
    """`content` with the lines that are the person's (`lines`) or at `positions` (1-based) made empty.

    Blank lines are skipped by the ingest, so every other line keeps its `source_line` number.
    """
    if not positions and not lines.anywhere(content):
        return content, []
    parts = content.split(b"\n")
    blanked: list[int] = []
    for number, line in enumerate(parts, start=1):
        text = line.removeprefix(codecs.BOM_UTF8) if number == 1 else line
        if text and (number in positions or lines.theirs(text)):
            parts[number - 1] = line[: len(line) - len(text)]  # a BOM stays where it was
            blanked.append(number)
    return b"\n".join(parts), blanked
