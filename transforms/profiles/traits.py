"""What a profile takes from a message: its traits, and marketing consent as real integrations state it.

Traits are read per distinct `traits` text (few per batch: identifies; a `group` call's traits describe
its group, so they are not the user's), so a value of any shape is taken in stride: a string trait
sent as an object or a list counts as no value rather than failing the batch. Marketing consent (the
README's "Marketing consent" has this table):

- traits, the first of CONSENT_TRAITS the message states (true / false; a value that says neither,
  such as Shopify's `pending`, is skipped): lakemail's own, Shopify's customer fields, common names;
- Segment's consent object `context.consent.categoryPreferences`, on any message: the categories of
  EMAIL_CATEGORIES (case, spaces, `_` and `-` aside) must all be true; without one it says nothing.

The two are kept apart (`marketing_consent`, `category_consent`): Segment meant its consent object
for cookie and data-collection consent and communication preferences for traits, so a trait (or
the CRM row) outranks the consent object whatever their times (transforms.profiles.derive).
"""

from __future__ import annotations

import re
from collections.abc import Callable

import orjson
import polars as pl

from transforms.profiles.state import TRAITS

# (trait, negated), in the order they are asked.
CONSENT_TRAITS: tuple[tuple[str, bool], ...] = (
    ("marketing_consent", False),  # lakemail's own
    ("email_marketing_consent", False),  # Shopify: {"state": "subscribed", ...}, or a boolean
    ("email_consent", False),
    ("email_opt_in", False),
    ("accepts_marketing", False),  # Shopify (the older field)
    ("subscribed", False),
    ("newsletter", False),
    ("unsubscribed", True),
)
# Segment's reserved traits come in camelCase or snake_case ("sending `firstName`, ... `first_name`",
# spec/identify.md): the snake_case name is asked first, as lakemail's own and the CRM's.
CAMEL_CASE = {"first_name": "firstName"}
# Segment's reserved `name` trait is the full name; a message stating no first name has its first word,
# as Segment's own facade (the normaliser of its analytics.js destinations) reads `firstName()`.
FULL_NAME = "name"
EMAIL_CATEGORIES = frozenset({"marketing", "email", "emailmarketing", "marketingemail", "marketingemails"})
YES = frozenset({"true", "1", "yes", "y", "on", "subscribed", "opted_in", "granted"})
NO = frozenset({"false", "0", "no", "n", "off", "unsubscribed", "not_subscribed", "opted_out", "denied"})
_NOT_A_LETTER = re.compile(r"[^a-z0-9]")
_READ = pl.Struct({f"_{t}": pl.String() for t in TRAITS})


def stated(value: object) -> bool | None:
    """What a consent value says: True, False, or None when it says neither."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return True if value == 1 else False if value == 0 else None
    if isinstance(value, str):
        word = value.strip().lower().replace("-", "_").replace(" ", "_")
        return True if word in YES else False if word in NO else None
    if isinstance(value, dict):  # Shopify's consent object
        return stated(value.get("state"))
    return None


def trait_consent(traits: dict[str, object]) -> bool | None:
    """Consent as the first of CONSENT_TRAITS that `traits` states says it."""
    for name, negated in CONSENT_TRAITS:
        said = stated(traits.get(name))
        if said is not None:
            return said is not negated
    return None


def category_consent(preferences: object) -> bool | None:
    """Consent as a `categoryPreferences` object says it: every email category true (None without one)."""
    if not isinstance(preferences, dict):
        return None
    said = [
        stated(v) for k, v in preferences.items() if _NOT_A_LETTER.sub("", str(k).lower()) in EMAIL_CATEGORIES
    ]
    known = [s for s in said if s is not None]
    return all(known) if known else None


def _category(key: object) -> str:
    """A category id as EMAIL_CATEGORIES has it: lower case, letters and digits only."""
    return _NOT_A_LETTER.sub("", str(key).lower())


def read_traits(events: pl.DataFrame) -> pl.DataFrame:
    """One row per event: `_<trait>` for each of TRAITS (consent as "true" / "false"), `_category_consent`.

    A `group` message's traits are its group's (Segment's reserved group traits include the company's
    `email` and `name`), not the user's: they state none of TRAITS. Its context is the user's, as on any
    message."""
    users = events.select(pl.when(pl.col("event_type") != "group").then(pl.col("traits"))).to_series()
    traits = _per_distinct(users, _traits, _READ)
    context = events["context"]
    if context.str.contains("categoryPreferences", literal=True).any():
        found = context.str.json_path_match("$.consent.categoryPreferences")
        categories = _per_distinct(found, _categories, pl.String())
    else:
        categories = pl.Series([None] * events.height, dtype=pl.String())
    return traits.struct.unnest().with_columns(categories.alias("_category_consent"))


def _per_distinct(texts: pl.Series, read: Callable[[str], object], dtype: pl.DataType) -> pl.Series:
    """`read` of each text, computed once per distinct text (null stays null)."""
    distinct = texts.drop_nulls().unique()
    table = pl.DataFrame({"text": distinct, "read": pl.Series([read(t) for t in distinct], dtype=dtype)})
    rows = texts.rename("text").to_frame().join(table, on="text", how="left", maintain_order="left")
    return rows["read"]


def _traits(text: str) -> dict[str, str | None]:
    traits = _object(text)
    read = {f"_{t}": _text(traits.get(t)) for t in TRAITS}
    for name, camel in CAMEL_CASE.items():
        if read[f"_{name}"] is None:
            read[f"_{name}"] = _text(traits.get(camel))
    if read["_first_name"] is None:
        read["_first_name"] = _first_word(traits.get(FULL_NAME))
    return read | {"_marketing_consent": _word(trait_consent(traits))}


def _categories(text: str) -> str | None:
    return _word(category_consent(_object(text)))


def _object(text: str) -> dict[str, object]:
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def _text(value: object) -> str | None:
    """A string trait's value: a string, or a scalar written as JSON writes it; None for any other shape."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    return None


def _first_word(full_name: object) -> str | None:
    """The first word of a full name given as a string (None for any other shape, or no word)."""
    words = full_name.split() if isinstance(full_name, str) else []
    return words[0] if words else None


def _word(consent: bool | None) -> str | None:
    return None if consent is None else "true" if consent else "false"
