"""SendGrid's error shape: `{"errors": [{"message", "field", "help"}]}`, and the exception carrying it."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

HELP_URL = "http://sendgrid.com/docs/API_Reference/Web_API_v3/Mail/errors.html"


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


class FieldErrors(list[ApiError]):
    """The errors of one payload, each said once, with a help link to its field."""

    def add(self, field: str | None, message: str) -> None:
        anchor = None if field is None else re.sub(r"\.\d+", "", field)
        if any(e.field == field and e.message == message for e in self):
            return  # e.g. the same missing subject in every personalization: said once
        self.append(ApiError(message, field, None if anchor is None else f"{HELP_URL}#message.{anchor}"))
