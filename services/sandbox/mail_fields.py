"""The top-level fields of a mail-send payload (from, content, headers, custom args, categories), validated
as SendGrid documents them; each parser returns what it could read and adds an error per problem."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

from services.sandbox.mail_errors import FieldErrors

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
EMAIL = re.compile(
    r"^[^@\s\"(),:;<>\[\]\\]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+$"
)
HEADER_NAME = re.compile(r"^[!-9;-~]+$")  # printable ASCII without ':' (RFC 5322 field name)


def parse_from(value: object, errors: FieldErrors) -> str:
    """The `from` address (empty when invalid)."""
    if not isinstance(value, dict):
        errors.add(
            "from",
            "The from object must be provided for every email send. It is an object that requires the "
            "email parameter, but may also contain a name parameter.",
        )
        return ""
    return parse_address(value, "from", errors)


def parse_address(value: Mapping[str, object], field: str, errors: FieldErrors) -> str:
    """The email of an address object at `field` (empty when invalid)."""
    email, name = value.get("email"), value.get("name")
    if not isinstance(email, str) or len(email) > 254 or not EMAIL.match(email):
        errors.add(f"{field}.email", "Does not contain a valid address.")
        return ""
    if name is not None and not isinstance(name, str):
        errors.add(f"{field}.name", "The name must be a string.")
    return email


def parse_content(value: object, errors: FieldErrors) -> tuple[str | None, str | None]:
    """The text/plain and text/html bodies of the `content` blocks."""
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


def parse_headers(value: object, field: str, errors: FieldErrors) -> dict[str, str]:
    """The string-valued headers at `field`; reserved and malformed ones are errors."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        errors.add(field, "The headers parameter must be a collection of key/value pairs.")
        return {}
    for key, item in value.items():
        if not HEADER_NAME.match(key):
            errors.add(field, "Header names must be printable ASCII without ':' or whitespace.")
        elif key.lower() in RESERVED_HEADERS:
            errors.add(field, f"The following header is reserved and cannot be set: {key}")
        elif not isinstance(item, str):
            errors.add(f"{field}.{key}", "Header values must be strings.")
        elif "\r" in item or "\n" in item:
            errors.add(f"{field}.{key}", "Header values cannot contain CR or LF characters.")
    return {key: item for key, item in value.items() if isinstance(item, str)}


def parse_custom_args(value: object, field: str, errors: FieldErrors) -> dict[str, str]:
    """The string-valued custom args at `field`, at most MAX_CUSTOM_ARGS_BYTES as JSON."""
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


def parse_categories(value: object, errors: FieldErrors) -> tuple[str, ...]:
    """The `categories` (at most MAX_CATEGORIES, each at most MAX_CATEGORY_CHARS)."""
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
