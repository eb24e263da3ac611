"""The sandbox's HTML pages (inbox, one message, notices), built by one autoescaping Jinja2 environment.

An email's HTML is shown only inside `<iframe sandbox srcdoc="...">`: autoescaping makes it a valid
attribute value, and the sandbox (no `allow-scripts`, no `allow-same-origin`) keeps it from scripting
or reading the inbox. The pages' Content-Security-Policy forbids scripts altogether.
"""

from __future__ import annotations

import hashlib
import html
from collections.abc import Sequence
from dataclasses import replace

import jinja2

from services.sandbox.store import StoredMessage

PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src https: http: data:; "
        "form-action 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",  # an email's links hold tokens: never leak them onwards
}
REFRESH_SECONDS = 3
DEMO_IMAGES = "https://shop.example/img/"  # the simulator's catalog (a reserved name: never resolves)
LOCAL_IMAGES = "/demo/img/"

_TEMPLATES = {
    "base.html": """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
{% block head %}{% endblock %}
<title>{% block title %}lakemail sandbox{% endblock %}</title>
<style>
 body { font: 14px/1.45 system-ui, sans-serif; margin: 0; color: #1d2433; background: #f5f6f8; }
 header { background: #1d2433; color: #fff; padding: .8rem 1.5rem; }
 header a { color: #fff; text-decoration: none; font-weight: 600; }
 main { max-width: 1100px; margin: 1.5rem auto; padding: 0 1.5rem; }
 table { width: 100%; border-collapse: collapse; background: #fff; }
 th, td { text-align: left; padding: .45rem .7rem; border-bottom: 1px solid #e3e6eb; vertical-align: top; }
 th { font-size: 12px; text-transform: uppercase; color: #5b6475; }
 tr:hover td { background: #f0f4ff; }
 .tag { display: inline-block; padding: 0 .4rem; border-radius: 4px; background: #e8ecf6; font-size: 12px; }
 .muted { color: #5b6475; }
 iframe { width: 100%; height: 640px; border: 1px solid #d5d9e0; background: #fff; }
 pre { white-space: pre-wrap; background: #fff; padding: 1rem; border: 1px solid #d5d9e0; }
 dl { display: grid; grid-template-columns: max-content 1fr; gap: .2rem 1rem; }
 dt { font-weight: 600; } dd { margin: 0; word-break: break-all; }
</style></head>
<body><header><a href="/">lakemail sandbox inbox</a></header>
<main>{% block main %}{% endblock %}</main></body></html>
""",
    "inbox.html": """{% extends "base.html" %}
{% block head %}<meta http-equiv="refresh" content="{{ refresh }}">{% endblock %}
{% block main %}
<p class="muted">{{ total }} message(s) stored{% if total > messages | length %};
the latest {{ messages | length }} shown{% endif %}, newest first; refreshes every {{ refresh }} s.</p>
<table><thead><tr><th>received</th><th>to</th><th>subject</th><th>trigger</th><th>variant</th></tr></thead>
<tbody>
{% for m in messages %}<tr>
 <td class="muted">{{ m.received_at }}</td><td>{{ m.to }}</td>
 <td><a href="/messages/{{ m.id | urlencode }}">{{ m.subject }}</a></td>
 <td>{% if m.custom_args.get("kind") %}<span class="tag">{{ m.custom_args["kind"] }}</span>{% endif %}</td>
 <td>{{ m.custom_args.get("variant") or "" }}</td>
</tr>{% else %}<tr><td colspan="5" class="muted">No messages yet.</td></tr>{% endfor %}
</tbody></table>
{% endblock %}
""",
    "message.html": """{% extends "base.html" %}
{% block title %}{{ m.subject }} - lakemail sandbox{% endblock %}
{% block main %}
<h2>{{ m.subject }}</h2>
<dl><dt>to</dt><dd>{{ m.to }}</dd><dt>received</dt><dd>{{ m.received_at }}</dd>
{% for key, value in m.custom_args | dictsort %}<dt>{{ key }}</dt><dd>{{ value }}</dd>{% endfor %}</dl>
<h3>HTML</h3>
{% if m.html %}<iframe sandbox="allow-popups allow-popups-to-escape-sandbox" referrerpolicy="no-referrer"
 title="HTML part" srcdoc="{{ m.html }}"></iframe>{% else %}<p class="muted">No HTML part.</p>{% endif %}
<h3>Text</h3>
{% if m.text %}<pre>{{ m.text }}</pre>{% else %}<p class="muted">No text part.</p>{% endif %}
<h3>Headers</h3>
<dl>{% for key, value in m.headers | dictsort %}<dt>{{ key }}</dt><dd>{{ value }}</dd>{% endfor %}</dl>
{% endblock %}
""",
    "notice.html": """{% extends "base.html" %}
{% block title %}{{ title }}{% endblock %}
{% block main %}<h2>{{ title }}</h2><p>{{ detail }}</p>{% endblock %}
""",
}

_ENV = jinja2.Environment(
    loader=jinja2.DictLoader(_TEMPLATES), autoescape=True, undefined=jinja2.StrictUndefined
)


def inbox_page(messages: Sequence[StoredMessage], total: int) -> str:
    """The inbox: how many are stored (`total`), then time, recipient, subject, trigger kind and
    variant of each of `messages` (the latest)."""
    return _ENV.get_template("inbox.html").render(messages=messages, total=total, refresh=REFRESH_SECONDS)


def message_page(message: StoredMessage) -> str:
    """One message as its recipient would see it, then its text part and headers.

    The demo shop's images (`DEMO_IMAGES`, a host that never resolves) are shown from the sandbox.
    """
    shown = (
        replace(message, html=message.html.replace(DEMO_IMAGES, LOCAL_IMAGES)) if message.html else message
    )
    return _ENV.get_template("message.html").render(m=shown)


def placeholder_svg(name: str) -> str:
    """A product picture for the demo shop: a tinted square with the product id (escaped)."""
    label = html.escape(name.rsplit(".", 1)[0][:24])
    hue = int(hashlib.sha256(name.encode()).hexdigest()[:4], 16) % 360
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" width="256" height="256" viewBox="0 0 256 256">'
        f'<rect width="256" height="256" fill="hsl({hue},55%,82%)"/>'
        f'<circle cx="128" cy="110" r="56" fill="hsl({hue},45%,60%)"/>'
        f'<text x="128" y="215" font-family="sans-serif" font-size="22" text-anchor="middle" '
        f'fill="hsl({hue},40%,25%)">{label}</text></svg>'
    )


def notice_page(title: str, detail: str) -> str:
    """A short page: a title and a sentence."""
    return _ENV.get_template("notice.html").render(title=title, detail=detail)
