"""A mail-send payload's personalizations: one `Delivery` each (recipients, subject, headers, custom args)."""

from __future__ import annotations

from dataclasses import dataclass

from services.sandbox.mail_errors import FieldErrors
from services.sandbox.mail_fields import parse_address, parse_custom_args, parse_headers

MAX_PERSONALIZATIONS = 1000
MAX_RECIPIENTS = 1000


@dataclass(frozen=True)
class Delivery:
    """One personalization: one stored message (its own recipients, subject, headers, custom args)."""

    to: tuple[str, ...]
    subject: str
    headers: dict[str, str]
    custom_args: dict[str, str]


def parse_personalizations(value: object, subject: str | None, errors: FieldErrors) -> list[Delivery]:
    """One Delivery per personalization (at most MAX_PERSONALIZATIONS and MAX_RECIPIENTS)."""
    if not isinstance(value, list) or not value:
        errors.add("personalizations", "You must have at least one personalization.")
        return []
    if len(value) > MAX_PERSONALIZATIONS:
        errors.add(
            "personalizations",
            f"The personalization block is limited to {MAX_PERSONALIZATIONS} personalizations per API "
            f"request. You have provided {len(value)} personalizations.",
        )
    deliveries = [
        _personalization(item, f"personalizations.{i}", subject, errors) for i, item in enumerate(value)
    ]
    if sum(len(d.to) for d in deliveries) > MAX_RECIPIENTS:
        errors.add("personalizations", f"There is a limit of {MAX_RECIPIENTS} total recipients per request.")
    return deliveries


def _personalization(value: object, field: str, subject: str | None, errors: FieldErrors) -> Delivery:
    if not isinstance(value, dict):
        errors.add(field, "Each personalization must be an object.")
        return Delivery((), "", {}, {})
    found = {
        part: _recipients(value.get(part), f"{field}.{part}", required=part == "to", errors=errors)
        for part in ("to", "cc", "bcc")
    }
    lowered = [address.lower() for addresses in found.values() for address in addresses if address]
    if len(set(lowered)) < len(lowered):
        errors.add(
            field, "Each email address in the personalization block should be unique between to, cc, and bcc."
        )
    own_subject = value.get("subject")
    if own_subject is not None and not isinstance(own_subject, str):
        errors.add(f"{field}.subject", "The subject must be a string.")
        own_subject = None
    if not (own_subject or subject):
        errors.add(
            "subject",
            "The subject is required. You can get around this requirement if you use a template with a "
            "subject defined or if every personalization has a subject defined.",
        )
    return Delivery(
        tuple(found["to"]),
        own_subject or subject or "",
        parse_headers(value.get("headers"), f"{field}.headers", errors),
        parse_custom_args(value.get("custom_args"), f"{field}.custom_args", errors),
    )


def _recipients(value: object, field: str, *, required: bool, errors: FieldErrors) -> list[str]:
    if value is None and not required:
        return []
    if not isinstance(value, list) or not value:
        errors.add(
            field,
            f"The {field.rsplit('.', 1)[-1]} array is required for all personalization objects, and must "
            "have at least one email object with a valid email address.",
        )
        return []
    found = []
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            errors.add(f"{field}.{i}", "Each recipient must be an object with an email and an optional name.")
        else:
            found.append(parse_address(item, f"{field}.{i}", errors))
    return found
