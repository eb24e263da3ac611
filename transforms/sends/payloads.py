"""Request bodies of the email providers, built from an `Email` (pure: no HTTP, no I/O).

Shapes follow each provider's documentation: SendGrid v3 `POST /v3/mail/send` (the sandbox speaks it
too), Postmark `POST /email`, and lakemail's own plain JSON document for a webhook.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from transforms.sends.message import Email

# Postmark's default stream for marketing ("broadcast") mail; "outbound" is its transactional one.
POSTMARK_STREAM = "broadcast"
# One address, as `compose` takes a recipient's: no spaces, brackets, commas, quotes or a second `@`.
ONE_ADDRESS = re.compile(r"[^@\s<>(),;:\"\[\]\\]+@[^@\s<>(),;:\"\[\]\\]+\.[^@\s<>(),;:\"\[\]\\]+")
SPECIALS = frozenset('()<>[]:;@\\,."')  # RFC 5322's: a display name holding one must be quoted


def split_address(text: str) -> tuple[str, str | None]:
    """`Name <addr>` -> (`addr`, `Name`), the name as written but for its quotes (all before the last `<`:
    `parseaddr` read `Acme, Inc. <a@b.example>` as two addresses and gave `Acme`, found by review); a
    bare address -> (`addr`, None)."""
    stripped = text.strip()
    if not (stripped.endswith(">") and "<" in stripped):
        return stripped, None
    cut = stripped.rindex("<")
    name = stripped[:cut].strip()
    if len(name) >= 2 and name[0] == name[-1] == '"':
        name = re.sub(r"\\(.)", r"\1", name[1:-1])
    return stripped[cut + 1 : -1].strip(), name or None


def mailbox(address: str, name: str | None) -> str:
    """`Name <addr>`, the name quoted when it holds a special (`"Acme, Inc." <a@b.example>`): Postmark
    refuses such a name bare ("Illegal email address")."""
    if not name:
        return address
    if any(c in SPECIALS for c in name):
        escaped = name.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{escaped}" <{address}>'
    return f"{name} <{address}>"


def check_sender(text: str) -> None:
    """ValueError naming LAKEMAIL_FROM (it is no secret) unless it is one address, with or without a name."""
    address, name = split_address(text)
    two = name is not None and ("<" in name or ">" in name)  # `A <a@b.example>, <c@d.example>`
    if two or not ONE_ADDRESS.fullmatch(address) or any(unicodedata.category(c) == "Cc" for c in text):
        raise ValueError(
            f"LAKEMAIL_FROM={text!r} must be one address: `Shop name <shop@example.com>` or "
            "`shop@example.com`"
        )


def tracking_args(email: Email) -> dict[str, str]:
    """The email's custom args as strings (SendGrid rejects other types), always carrying `send_id`."""
    return {**{str(k): str(v) for k, v in email.custom_args.items()}, "send_id": email.send_id}


def sendgrid_payload(email: Email) -> dict[str, Any]:
    """SendGrid v3 mail-send body: one personalization, text/plain before text/html as SendGrid requires."""
    address, name = split_address(email.sender)
    args = tracking_args(email)
    body: dict[str, Any] = {
        # custom_args at both levels: the personalization's reach the event webhook, the top-level
        # ones are what SendGrid-compatible receivers (the sandbox) read first; values are identical.
        "personalizations": [{"to": [{"email": email.to}], "custom_args": args}],
        "from": {"email": address, **({"name": name} if name else {})},
        "subject": email.subject,
        # SendGrid rejects an empty content value, so a missing part is left out rather than sent empty.
        "content": [
            {"type": kind, "value": value}
            for kind, value in (("text/plain", email.text), ("text/html", email.html))
            if value
        ],
        "custom_args": args,
    }
    if email.headers:
        body["headers"] = dict(email.headers)
    if args.get("kind"):
        body["categories"] = [args["kind"]]
    return body


def postmark_payload(email: Email, *, message_stream: str = POSTMARK_STREAM) -> dict[str, Any]:
    """Postmark `/email` body: marketing mail goes through the `broadcast` message stream."""
    args = tracking_args(email)
    body: dict[str, Any] = {
        "From": mailbox(*split_address(email.sender)),
        "To": email.to,
        "Subject": email.subject,
        "TextBody": email.text,
        "HtmlBody": email.html,
        "Headers": [{"Name": name, "Value": value} for name, value in email.headers.items()],
        "Metadata": args,
        "MessageStream": message_stream,
    }
    if args.get("kind"):
        body["Tag"] = args["kind"]
    return body


def webhook_payload(email: Email) -> dict[str, Any]:
    """lakemail's own JSON document: every field of the email, for a receiver that sends it on."""
    return {
        "send_id": email.send_id,
        "to": email.to,
        "from": email.sender,
        "subject": email.subject,
        "preheader": email.preheader,
        "text": email.text,
        "html": email.html,
        "headers": dict(email.headers),
        "custom_args": tracking_args(email),
    }
