"""SendGrid v3 `POST /v3/mail/send` payloads: validated as SendGrid documents them, errors in its shape."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

HELP_URL = "http://sendgrid.com/docs/API_Reference/Web_API_v3/Mail/errors.html"
MAX_PERSONALIZATIONS = 1000
MAX_RECIPIENTS = 1000
MAX_CATEGORIES = 10
MAX_CATEGORY_CHARS = 255
MAX_CUSTOM_ARGS_BYTES = 10_000
# Headers SendGrid sets itself and refuses from callers.
RESERVED_HEADERS = frozenset(
    name.lower()
    for name in (
        "x-sg-id",
        "x-sg-eid",
        "received",
        "dkim-signature",
        "Content-Type",
        "Content-Transfer-Encoding",
        "To",
        "From",
        "Subject",
        "Reply-To",
        "CC",
        "BCC",
    )
)
_EMAIL = re.compile(
    r"^[^@\s\"(),:;<>\[\]\\]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+$"
)
_HEADER_NAME = re.compile(r"^[!-9;-~]+$")  # printable ASCII without ':' (RFC 5322 field name)


@dataclass(frozen=True)
class ApiError:
    """One entry of SendGrid's `{"errors": [...]}` body."""

    message: str
    field: str | None = None
    help: str | None = None

    def as_dict(self) -> dict[str, str | None]:
        return {"message": self.message, "field": self.field, "help": self.help}


def error_body(errors: Sequence[ApiError]) -> dict[str, list[dict[str, str | None]]]:
    """SendGrid's error response body."""
    return {"errors": [error.as_dict() for error in errors]}


class MailValidationError(Exception):
    """The payload is not a valid mail-send request; `errors` name each offending field."""

    def __init__(self, errors: Sequence[ApiError]) -> None:
        super().__init__("; ".join(f"{e.field}: {e.message}" for e in errors))
        self.errors = list(errors)


@dataclass(frozen=True)
class Delivery:
    """One personalization: one stored message (its own recipients, subject, headers, custom args)."""

    to: tuple[str, ...]
    subject: str
    headers: dict[str, str]
    custom_args: dict[str, str]


@dataclass(frozen=True)
class MailRequest:
    """A valid mail-send payload, parsed."""

    sender: str
    text: str | None
    html: str | None
    categories: tuple[str, ...]
    deliveries: tuple[Delivery, ...]
    payload: dict[str, Any]


class _Errors(list[ApiError]):
    def add(self, field: str | None, message: str) -> None:
        anchor = None if field is None else re.sub(r"\.\d+", "", field)
        if any(e.field == field and e.message == message for e in self):
            return  # e.g. the same missing subject in every personalization: said once
        self.append(ApiError(message, field, None if anchor is None else f"{HELP_URL}#message.{anchor}"))


def parse_mail(body: bytes) -> MailRequest:
    """The request in `body`, or MailValidationError listing every field SendGrid would reject."""
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise MailValidationError([ApiError("Bad Request")]) from None
    if not isinstance(payload, dict):
        raise MailValidationError([ApiError("Bad Request")])
    errors = _Errors()
    sender = _from(payload.get("from"), errors)
    text, html = _content(payload.get("content"), errors)
    headers = _headers(payload.get("headers"), "headers", errors)
    custom_args = _custom_args(payload.get("custom_args"), "custom_args", errors)
    categories = _categories(payload.get("categories"), errors)
    subject = payload.get("subject")
    if subject is not None and not isinstance(subject, str):
        errors.add("subject", "The subject must be a string.")
        subject = None
    deliveries = _personalizations(payload.get("personalizations"), subject or None, errors)
    if errors:
        raise MailValidationError(errors)
    merged = tuple(
        Delivery(d.to, d.subject, {**headers, **d.headers}, {**custom_args, **d.custom_args})
        for d in deliveries
    )
    return MailRequest(sender, text, html, categories, merged, payload)


def send_id_of(body: bytes) -> str | None:
    """The `custom_args.send_id` of a payload (top level or first personalization), best effort."""
    try:
        payload = json.loads(body)
        args = {**payload.get("custom_args", {}), **payload["personalizations"][0].get("custom_args", {})}
    except (ValueError, UnicodeDecodeError, LookupError, TypeError, AttributeError):
        return None
    value = args.get("send_id")
    return value if isinstance(value, str) else None


def _from(value: object, errors: _Errors) -> str:
    if not isinstance(value, dict):
        errors.add(
            "from",
            "The from object must be provided for every email send. It is an object that requires the "
            "email parameter, but may also contain a name parameter.",
        )
        return ""
    return _address(value, "from", errors)


def _address(value: Mapping[str, object], field: str, errors: _Errors) -> str:
    email, name = value.get("email"), value.get("name")
    if not isinstance(email, str) or len(email) > 254 or not _EMAIL.match(email):
        errors.add(f"{field}.email", "Does not contain a valid address.")
        return ""
    if name is not None and not isinstance(name, str):
        errors.add(f"{field}.name", "The name must be a string.")
    return email


def _content(value: object, errors: _Errors) -> tuple[str | None, str | None]:
    if not isinstance(value, list) or not value:
        errors.add(
            "content",
            "Unless a valid template_id is provided, the content parameter is required. There must be at "
            "least one defined content block.",
        )
        return None, None
    parts: dict[str, str] = {}
    order: list[str] = []
    for i, block in enumerate(value):
        kind = block.get("type") if isinstance(block, dict) else None
        text = block.get("value") if isinstance(block, dict) else None
        if not isinstance(kind, str) or not kind or any(c in kind for c in ";\r\n"):
            errors.add(f"content.{i}.type", "Content types cannot contain ';', or CRLF characters.")
        elif not isinstance(text, str) or not text:
            errors.add(
                f"content.{i}.value", "The content value must be a string at least one character in length."
            )
        else:
            parts.setdefault(kind.lower(), text)
            order.append(kind.lower())
    if (
        "text/plain" in order
        and "text/html" in order
        and order.index("text/html") < order.index("text/plain")
    ):
        errors.add(
            "content",
            "If present, text/plain and text/html may only be provided in order: text/plain, text/html.",
        )
    return parts.get("text/plain"), parts.get("text/html")


def _headers(value: object, field: str, errors: _Errors) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        errors.add(field, "The headers parameter must be a collection of key/value pairs.")
        return {}
    for key, item in value.items():
        if not _HEADER_NAME.match(key):
            errors.add(field, "Header names must be printable ASCII without ':' or whitespace.")
        elif key.lower() in RESERVED_HEADERS:
            errors.add(field, f"The following header is reserved and cannot be set: {key}")
        elif not isinstance(item, str):
            errors.add(f"{field}.{key}", "Header values must be strings.")
        elif "\r" in item or "\n" in item:
            errors.add(f"{field}.{key}", "Header values cannot contain CR or LF characters.")
    return {key: item for key, item in value.items() if isinstance(item, str)}


def _custom_args(value: object, field: str, errors: _Errors) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        errors.add(field, "The custom_args parameter must be a collection of key/value pairs.")
        return {}
    for key, item in value.items():
        if not isinstance(item, str):
            errors.add(f"{field}.{key}", f"Invalid type. Expected: string, given: {type(item).__name__}.")
    if len(json.dumps(value).encode()) > MAX_CUSTOM_ARGS_BYTES:
        errors.add(field, f"The custom_args may not exceed {MAX_CUSTOM_ARGS_BYTES} bytes.")
    return {key: item for key, item in value.items() if isinstance(item, str)}


def _categories(value: object, errors: _Errors) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(c, str) and c for c in value):
        errors.add("categories", "The categories parameter must be a list of non-empty strings.")
        return ()
    if len(value) > MAX_CATEGORIES:
        errors.add(
            "categories", f"Too many categories on this message. The maximum number is {MAX_CATEGORIES}."
        )
    if any(len(c) > MAX_CATEGORY_CHARS for c in value):
        errors.add("categories", f"A category cannot have more than {MAX_CATEGORY_CHARS} characters.")
    return tuple(value)


def _personalizations(value: object, subject: str | None, errors: _Errors) -> list[Delivery]:
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


def _personalization(value: object, field: str, subject: str | None, errors: _Errors) -> Delivery:
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
        _headers(value.get("headers"), f"{field}.headers", errors),
        _custom_args(value.get("custom_args"), f"{field}.custom_args", errors),
    )


def _recipients(value: object, field: str, *, required: bool, errors: _Errors) -> list[str]:
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
            found.append(_address(item, f"{field}.{i}", errors))
    return found
