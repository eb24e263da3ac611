"""`lakemail sql` on one clock and in one zone, UTC, whatever the host's `TZ`.

The lake's timestamps are UTC (`Datetime('us', 'UTC')`, timestamptz). Polars' SQL engine reads its clock
(`now()`, `current_timestamp`, `current_date`, ...) in the host's local zone, and its `timestamp '...'`,
`cast(... as timestamp)`, `strptime(...)` are timestamps without a zone, which it refuses to compare with
the lake's ("could not evaluate '<' comparison"). It offers no setting for either (its `SQLContext` takes
frames only; `now()` is the host's local wall clock, read while the query is planned). So the query's
text is rewritten before it runs, token by token (strings, quoted names and comments untouched):

- the clock is read once, at the run's `now`, in UTC: `now()`, `current_timestamp`, `localtimestamp` ->
  `TIMESTAMPTZ '<now>'`, `current_date` -> `DATE '<today in UTC>'`, `current_time`, `localtime` ->
  `TIME '<now>'`;
- a timestamp without a zone is a UTC one: the type `timestamp` / `datetime` (a typed literal, a cast,
  `::timestamp`, `timestamp without time zone`) is `timestamptz`, and `strptime(...)`, `timestamp(...)`,
  `datetime(...)` are cast to it (a naive value cast to timestamptz is read as UTC).

What stays without a zone is what `AT TIME ZONE` gives: a local wall time, on purpose. The columns are
not touched: results show UTC timestamps as before and `x AT TIME ZONE 'Europe/Paris'` is Paris' wall
time. Not the other ways: the engine reads `TZ` through chrono, which keeps a zone a second per thread,
so `TZ=UTC` set in-process is not reliably read, and a test could not pass `now`; columns shown without
their zone would make `AT TIME ZONE` read UTC values as local wall times, silently, and every result's
timestamps would need their zone put back.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

UTC_TYPE = "TIMESTAMPTZ"
CLOCK = {  # word -> (literal type, strftime format); `now` only as a call
    "now": ("TIMESTAMPTZ", "%Y-%m-%d %H:%M:%S.%f"),
    "current_timestamp": ("TIMESTAMPTZ", "%Y-%m-%d %H:%M:%S.%f"),
    "localtimestamp": ("TIMESTAMPTZ", "%Y-%m-%d %H:%M:%S.%f"),
    "current_date": ("DATE", "%Y-%m-%d"),
    "current_time": ("TIME", "%H:%M:%S.%f"),
    "localtime": ("TIME", "%H:%M:%S.%f"),
}
NAIVE_TYPES = ("timestamp", "datetime")
NAIVE_FUNCTIONS = ("strptime", "timestamp", "datetime")
CASTS = ("cast", "try_cast", "safe_cast")
SKIPPED = ("space", "comment")
_TOKEN = re.compile(
    r"(?P<space>\s+|--[^\n]*)"
    r"|(?P<string>'(?:[^']|'')*'?)"
    r"|(?P<quoted>\"(?:[^\"]|\"\")*\"?|`[^`]*`?)"
    r"|(?P<dollar>\$(?:[^\W\d]\w*)?\$)"
    r"|(?P<word>[^\W\d][\w$]*)"
    r"|(?P<cast>::)"
    r"|(?P<other>.)",
    re.DOTALL,
)

Token = list[str]  # [kind, text]; the text is rewritten in place


def tokens(sql: str) -> list[Token]:
    """`sql` as tokens whose texts join back to it: spaces and comments (nested `/* */` too), strings,
    quoted names, dollar-quoted strings, words, `::` and single characters."""
    found: list[Token] = []
    at = 0
    while at < len(sql):
        if sql.startswith("/*", at):
            end = _comment_end(sql, at)
            found.append(["comment", sql[at:end]])
            at = end
            continue
        match = _TOKEN.match(sql, at)
        assert match is not None and match.lastgroup is not None  # `.` with DOTALL takes any character
        kind, end = match.lastgroup, match.end()
        if kind == "dollar":  # `$tag$ ... $tag$`: to the same tag, or the end
            close = sql.find(match.group(), end)
            kind, end = "string", len(sql) if close < 0 else close + len(match.group())
        found.append([kind, sql[at:end]])
        at = end
    return found


def _comment_end(sql: str, at: int) -> int:
    depth = 0
    while at < len(sql):
        if sql.startswith("/*", at):
            depth, at = depth + 1, at + 2
        elif sql.startswith("*/", at):
            depth, at = depth - 1, at + 2
            if depth == 0:
                return at
        else:
            at += 1
    return at


def on_utc(sql: str, now: datetime) -> str:
    """`sql` with its clock read at `now` in UTC and its timestamps without a zone taken as UTC ones."""
    now = now.astimezone(UTC)
    found = tokens(sql)
    significant = [token for token in found if token[0] not in SKIPPED]
    opened: list[tuple[bool, bool]] = []  # per open parenthesis: a cast's, and one to close as timestamptz
    wrap_next = False
    for at, token in enumerate(significant):
        kind, text = token
        before = _text(significant, at - 1)
        in_cast = before == "as" and bool(opened) and opened[-1][0]  # `cast(x AS <type>)`
        if text == "(":
            opened.append((before in CASTS, wrap_next))
            wrap_next = False
        elif text == ")" and opened and opened.pop()[1]:
            token[1] = f") AS {UTC_TYPE})"
        elif kind != "word" or (before in ("as", ".") and not in_cast):
            continue  # an alias or a qualified name
        elif text.lower() in CLOCK:
            _clock(significant, at, now)
        elif text.lower() in NAIVE_TYPES + NAIVE_FUNCTIONS:
            wrap_next = _zoned(significant, at, before == "::" or in_cast)
    return "".join(text for _, text in found)


def _text(significant: list[Token], at: int) -> str:
    return significant[at][1].lower() if 0 <= at < len(significant) else ""


def _clock(significant: list[Token], at: int, now: datetime) -> None:
    word = significant[at][1].lower()
    call = _text(significant, at + 1) == "(" and _text(significant, at + 2) == ")"
    if word == "now" and not call:
        return  # a column named `now`
    kind, form = CLOCK[word]
    significant[at][1] = f"{kind} '{now.strftime(form)}'"
    if call:
        significant[at + 1][1] = significant[at + 2][1] = ""


def _zoned(significant: list[Token], at: int, type_position: bool) -> bool:
    """Make the naive type or function at `at` a UTC one; True when it is a call to cast when it closes."""
    word, after = significant[at][1].lower(), [_text(significant, at + n) for n in (1, 2, 3)]
    if after == ["with", "time", "zone"]:
        return False  # timestamptz already
    if after == ["without", "time", "zone"] and word in NAIVE_TYPES:
        significant[at][1] = UTC_TYPE
        for n in (1, 2, 3):
            significant[at + n][1] = ""
        return False
    literal = at + 1 < len(significant) and significant[at + 1][0] == "string"  # `timestamp '...'`
    if word in NAIVE_TYPES and (type_position or literal):
        significant[at][1] = UTC_TYPE
        return False
    if word in NAIVE_FUNCTIONS and after[0] == "(" and not type_position:
        significant[at][1] = f"CAST({significant[at][1]}"
        return True
    return False
