"""Typed values of reference rows: one converter per field of `customers/` and `catalog/`, and the row.

Each converter takes (field, landed value, from CSV) and returns the typed value, or raises `Rejected`
with the quarantine reason; `typed_row` applies them to one landed record.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import polars as pl

from transforms.ingest.events import EARLIEST, MAX_AHEAD
from transforms.schema import CATALOG_SCHEMA, CUSTOMERS_SCHEMA
from transforms.spec import Reason

CONSENT_WORDS = {"true": True, "false": False}
CSV_CONSENT_WORDS = {**CONSENT_WORDS, "1": True, "0": False, "yes": True, "no": False}
EARLIEST_UTC = EARLIEST.replace(tzinfo=UTC)


class Rejected(Exception):
    """One line's quarantine reason and detail (control flow inside the reference reader only)."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(detail)
        self.reason, self.detail = reason, detail


Converter = Callable[[str, object, bool], object]  # (field, landed value, from CSV) -> typed value


def _text(field: str, value: object, from_csv: bool) -> str | None:
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)  # numeric ids are common in CRM exports
    if not isinstance(value, str):
        raise Rejected(Reason.WRONG_TYPE, f"{field} must be a string, got {type(value).__name__}")
    return value.strip() or None


def _lower_text(field: str, value: object, from_csv: bool) -> str | None:
    text = _text(field, value, from_csv)
    return None if text is None else text.lower()


def _email(field: str, value: object, from_csv: bool) -> str | None:
    text = _text(field, value, from_csv)
    if text is None:
        return None
    local, at, domain = text.rpartition("@")
    if not (local and at and domain):
        raise Rejected(Reason.WRONG_TYPE, f"{field} must look like name@domain")
    return f"{local}@{domain.lower()}"  # domains are case-insensitive; local parts may not be


def _consent(field: str, value: object, from_csv: bool) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    words = CSV_CONSENT_WORDS if from_csv else CONSENT_WORDS
    if isinstance(value, str) and value.strip().lower() in words:
        return words[value.strip().lower()]
    if isinstance(value, str) and not value.strip():
        return None
    raise Rejected(Reason.WRONG_TYPE, f"{field} must be a boolean ({', '.join(words)})")


# A CSV number as Polars' CSV reader takes one (ASCII digits, a sign, a point, an exponent), blanks around
# stripped as in every field. Python's float() takes more (`1_000`, full-width `１２`, Arabic-Indic `٣`),
# which no other reader of the file would.
_DECIMAL = re.compile(r"[ \t]*[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?[ \t]*")


def _number(field: str, value: object, from_csv: bool) -> float | None:
    if value is None:
        return None
    number: float | None = None
    if isinstance(value, str):
        number = float(value) if from_csv and _DECIMAL.fullmatch(value) else None
    elif isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
    if number is None or not math.isfinite(number) or number < 0:
        raise Rejected(Reason.WRONG_TYPE, f"{field} must be a non-negative number")
    return number


def _count(field: str, value: object, from_csv: bool) -> int | None:
    if value is None:
        return None
    try:
        number = _number(field, value, from_csv)
    except Rejected:
        number = None
    if number is None or not number.is_integer() or number >= 2**63:
        raise Rejected(Reason.WRONG_TYPE, f"{field} must be a non-negative integer")
    return int(number)


@dataclass(frozen=True)
class Kind:
    """One reference folder: its table's schema, the fields a row needs, and each field's converter."""

    schema: dict[str, pl.DataType]
    required: tuple[str, ...]
    fields: dict[str, Converter]


KINDS: dict[str, Kind] = {
    "customers": Kind(
        CUSTOMERS_SCHEMA,
        ("user_id",),
        {
            "user_id": _text,
            "email": _email,
            "first_name": _text,
            "locale": _text,
            "timezone": _text,
            "loyalty_tier": _lower_text,
            "marketing_consent": _consent,
        },
    ),
    "catalog": Kind(
        CATALOG_SCHEMA,
        ("product_id", "name", "price"),
        {
            "product_id": _text,
            "name": _text,
            "category": _text,
            "price": _number,
            "currency": _text,
            "stock": _count,
            "url": _text,
            "image_url": _text,
        },
    ),
}


def _updated_at(value: object, landed_at: datetime) -> datetime:
    if value is None or (isinstance(value, str) and not value.strip()):
        return landed_at
    try:
        parsed = datetime.fromisoformat(value.strip()) if isinstance(value, str) else None
    except ValueError:
        parsed = None
    if parsed is None:
        raise Rejected(Reason.INVALID_TIMESTAMP, "updated_at is not an ISO-8601 timestamp")
    parsed = parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    # A far-future updated_at would win `latest_rows` for ever, so it is refused as for events.
    if parsed > landed_at + MAX_AHEAD or parsed < EARLIEST_UTC:
        raise Rejected(
            Reason.TIMESTAMP_OUT_OF_RANGE, "updated_at more than 24 h after landing or before 2000"
        )
    return parsed


def typed_row(
    record: dict[str, object], kind: Kind, *, from_csv: bool, landed_at: datetime
) -> dict[str, object]:
    """One table row from a landed record, or Rejected for the first problem found."""
    for field in kind.required:
        value = record.get(field)
        if value is None or (isinstance(value, str) and not value.strip()):
            raise Rejected(Reason.MISSING_FIELD, f"{field} is required")
    row = {field: convert(field, record.get(field), from_csv) for field, convert in kind.fields.items()}
    row["updated_at"] = _updated_at(record.get("updated_at"), landed_at)
    return row
