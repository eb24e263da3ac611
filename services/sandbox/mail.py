"""SendGrid v3 `POST /v3/mail/send` payloads: validated as SendGrid documents them, errors in its shape.

The fields are read in `mail_fields` and `personalizations`; the errors take SendGrid's shape in
`mail_errors`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from services.sandbox.mail_errors import ApiError, FieldErrors, MailValidationError
from services.sandbox.mail_fields import (
    parse_categories,
    parse_content,
    parse_custom_args,
    parse_from,
    parse_headers,
)
from services.sandbox.personalizations import Delivery, parse_personalizations


@dataclass(frozen=True)
class MailRequest:
    """A valid mail-send payload, parsed."""

    sender: str
    text: str | None
    html: str | None
    categories: tuple[str, ...]
    deliveries: tuple[Delivery, ...]
    payload: dict[str, Any]


def parse_mail(body: bytes) -> MailRequest:
    """The request in `body`, or MailValidationError listing every field SendGrid would reject."""
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise MailValidationError([ApiError("Bad Request")]) from None
    if not isinstance(payload, dict):
        raise MailValidationError([ApiError("Bad Request")])
    errors = FieldErrors()
    sender = parse_from(payload.get("from"), errors)
    text, html = parse_content(payload.get("content"), errors)
    headers = parse_headers(payload.get("headers"), "headers", errors)
    custom_args = parse_custom_args(payload.get("custom_args"), "custom_args", errors)
    categories = parse_categories(payload.get("categories"), errors)
    subject = payload.get("subject")
    if subject is not None and not isinstance(subject, str):
        errors.add("subject", "The subject must be a string.")
        subject = None
    deliveries = parse_personalizations(payload.get("personalizations"), subject or None, errors)
    if errors:
        raise MailValidationError(errors)
    merged = tuple(
        Delivery(d.to, d.subject, {**headers, **d.headers}, {**custom_args, **d.custom_args})
        for d in deliveries
    )
    return MailRequest(sender, text, html, categories, merged, payload)


@dataclass(frozen=True)
class SendKey:
    """What makes two mail-send requests one send: its `send_id` and every custom arg sent with it."""

    send_id: str
    custom_args: dict[str, object]


def send_key_of(body: bytes) -> SendKey | None:
    """The custom args of a payload's first personalization (the top level's merged under them) and
    their `send_id`, best effort: None without a string `send_id`."""
    try:
        payload = json.loads(body)
        args = {**payload.get("custom_args", {}), **payload["personalizations"][0].get("custom_args", {})}
    except (ValueError, UnicodeDecodeError, LookupError, TypeError, AttributeError):
        return None
    send_id = args.get("send_id")
    return SendKey(send_id, args) if isinstance(send_id, str) else None
