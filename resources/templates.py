"""Email rendering: the one Jinja2 environment, CSS inlining, and an `Email` ready for any provider."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import css_inline
from jinja2 import BaseLoader, FileSystemLoader, PackageLoader, StrictUndefined, Template, TemplateError
from jinja2.sandbox import SandboxedEnvironment

from transforms.sends.content import KINDS, VARIANTS, Content
from transforms.sends.message import Email
from transforms.sends.safety import header_value, safe_url, subject_value

# The templates ship inside the package (`templates/`, package data): an installed lakemail renders
# from its own copy, wherever the process runs, and never from a folder next to the working directory.
TEMPLATES_PACKAGE = "templates"
SUBJECT_LIMIT = 150  # longer subjects are cut by every client anyway
PREHEADER_LIMIT = 200
UNSUBSCRIBE_URL_LIMIT = 900  # so the List-Unsubscribe header stays within one 998-character line
ONE_CLICK = "List-Unsubscribe=One-Click"  # RFC 8058
# One address, nothing a header could smuggle: no spaces, brackets, commas, quotes or a second "@".
_MAILTO = re.compile(r"mailto:[^\s<>,\"@]+@[^\s<>,\"@]+", re.IGNORECASE)
_ADDRESS = re.compile(r"[^@\s<>(),;:\"\[\]\\]+@[^@\s<>(),;:\"\[\]\\]+\.[^@\s<>(),;:\"\[\]\\]+")


class RenderAborted(Exception):
    """No valid email can be made; `reason` goes on the aborted send (never person data)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class RenderedParts:
    """The four rendered parts of one email; `html` has its CSS inlined."""

    subject: str
    preheader: str
    html: str
    text: str


def _autoescape(name: str | None) -> bool:
    # select_autoescape(["html"]) would miss "*.html.j2"; an unnamed template is never HTML here
    return name is not None and name.endswith((".html.j2", ".html"))


def build_environment(templates_dir: Path | None = None) -> SandboxedEnvironment:
    """The Jinja2 environment of every email: sandboxed, strict, HTML autoescaped, templates only.

    Templates load from the `templates` package; `templates_dir` (a folder) is for trying edited copies.
    """
    loader: BaseLoader = (
        PackageLoader(TEMPLATES_PACKAGE, "") if templates_dir is None else FileSystemLoader(templates_dir)
    )
    return SandboxedEnvironment(
        loader=loader,
        undefined=StrictUndefined,
        autoescape=_autoescape,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,  # templates are read once per process; edits apply on restart
    )


def _block(template: Template, name: str, context: Mapping[str, Any]) -> str:
    """One block of `template` rendered on its own (subject and preheader live in the text template)."""
    if name not in template.blocks:
        raise RenderAborted(f"template_error: no {name} block")
    return "".join(template.blocks[name](template.new_context(dict(context))))


def _unsubscribe_url(url: str) -> str:
    """`url` when it is an http(s) link safe for href and header alike (http: the local sandbox)."""
    candidate = url.strip()
    as_https = "https://" + candidate[7:] if candidate.lower().startswith("http://") else candidate
    if len(candidate) > UNSUBSCRIBE_URL_LIMIT or not safe_url(as_https, ""):
        raise RenderAborted("invalid_unsubscribe_url")
    return candidate


class TemplateRenderer:
    """Renders `Content` through the kind's templates; build once (templates and CSS inliner are reused)."""

    def __init__(self, templates_dir: Path | None = None) -> None:
        self.environment = build_environment(templates_dir)
        self._inliner = css_inline.CSSInliner(
            load_remote_stylesheets=False, keep_link_tags=False, keep_at_rules=True
        )

    def render(self, content: Content, *, kind: str, variant: str, unsubscribe_url: str) -> RenderedParts:
        """Subject, preheader, HTML (CSS inlined) and text of one email; RenderAborted when it cannot be."""
        if kind not in KINDS:  # template names are fixed per kind: nothing else picks a file
            raise ValueError(f"unknown email kind: {kind!r}")
        if variant not in VARIANTS:
            raise ValueError(f"unknown variant: {variant!r}")
        if content.aborted:
            raise RenderAborted(content.aborted)
        if content.context.get("kind") != kind:
            raise ValueError(f"content of kind {content.context.get('kind')!r} rendered as {kind!r}")
        url = _unsubscribe_url(unsubscribe_url)
        context = {**content.context, "variant": variant, "unsubscribe_url": url}
        try:
            text_template = self.environment.get_template(f"{kind}.txt.j2")
            subject = subject_value(_block(text_template, "subject", context), SUBJECT_LIMIT)
            preheader = header_value(_block(text_template, "preheader", context), PREHEADER_LIMIT)
            text = text_template.render(context)
            html_template = self.environment.get_template(f"{kind}.html.j2")
            html = html_template.render({**context, "subject": subject, "preheader": preheader})
            html = self._inliner.inline(html)
        except TemplateError as error:  # undefined variables, syntax, sandbox violations: names only
            raise RenderAborted(f"template_error: {error.message or type(error).__name__}"[:200]) from error
        except (css_inline.InlineError, TypeError, ValueError, ArithmeticError) as error:
            raise RenderAborted(f"render_error: {type(error).__name__}") from error  # messages may hold data
        if not subject:
            raise RenderAborted("empty_subject")
        if url not in text or f'href="{url.replace("&", "&amp;")}"' not in html:
            raise RenderAborted("missing_unsubscribe_link")
        return RenderedParts(subject=subject, preheader=preheader, html=html, text=text)

    def compose(
        self,
        parts: RenderedParts,
        *,
        send_id: str,
        to: str,
        sender: str,
        unsubscribe_url: str,
        unsubscribe_mailto: str,
        custom_args: Mapping[str, str],
    ) -> Email:
        """The email of rendered `parts`, with RFC 8058 one-click unsubscribe headers."""
        url = _unsubscribe_url(unsubscribe_url)
        if url not in parts.text:
            raise RenderAborted("unsubscribe_link_mismatch")  # footer and header must name one link
        mailto = unsubscribe_mailto.strip()
        if not _MAILTO.fullmatch(mailto) or header_value(mailto) != mailto:
            raise RenderAborted("invalid_unsubscribe_mailto")
        address = to.strip()
        if not _ADDRESS.fullmatch(address) or header_value(address) != address:
            raise RenderAborted("invalid_address")
        return Email(
            send_id=header_value(send_id),
            to=address,
            sender=header_value(sender),
            subject=subject_value(parts.subject, SUBJECT_LIMIT),
            preheader=header_value(parts.preheader, PREHEADER_LIMIT),
            html=parts.html,
            text=parts.text,
            headers={
                "List-Unsubscribe": header_value(f"<{url}>, <{mailto}>"),
                "List-Unsubscribe-Post": header_value(ONE_CLICK),
            },
            custom_args={header_value(k): header_value(v) for k, v in custom_args.items()},
        )

    def render_email(
        self,
        content: Content,
        *,
        kind: str,
        variant: str,
        send_id: str,
        to: str,
        sender: str,
        unsubscribe_url: str,
        unsubscribe_mailto: str,
        custom_args: Mapping[str, str],
    ) -> Email:
        """`render` then `compose`: the whole email of `content`, or RenderAborted."""
        parts = self.render(content, kind=kind, variant=variant, unsubscribe_url=unsubscribe_url)
        return self.compose(
            parts,
            send_id=send_id,
            to=to,
            sender=sender,
            unsubscribe_url=unsubscribe_url,
            unsubscribe_mailto=unsubscribe_mailto,
            custom_args=custom_args,
        )


@cache
def default_renderer() -> TemplateRenderer:
    """The process's one renderer over the `templates` package (built on first use)."""
    return TemplateRenderer()
