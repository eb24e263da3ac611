"""Rendering: every kind and variant, inlined CSS, unsubscribe headers, the one Jinja environment."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from jinja2 import PackageLoader, StrictUndefined
from jinja2.sandbox import SandboxedEnvironment

from resources.templates import TEMPLATES_PACKAGE, RenderAborted, RenderedParts, TemplateRenderer
from tests.unit.test_content import (
    BESTSELLERS,
    NOW,
    SHOP,
    STALENESS,
    catalog_frame,
    line,
    profile,
    trigger,
)
from transforms.sends.content import CART_KINDS, KINDS, PRODUCT_KINDS, VARIANTS, Content, build_content
from transforms.sends.message import Email

UNSUBSCRIBE = "https://shop.example/unsubscribe/s-abc.tok?v=1&k=2"
MAILTO = "mailto:unsubscribe@shop.example?subject=unsubscribe%20s-abc"
RENDERER = TemplateRenderer()  # built once, as in production
TEMPLATES = Path(__file__).resolve().parents[2] / "templates"  # the repository's copy of the package


def content(kind: str, *, catalog_rows: tuple[dict, ...] = (), **overrides: Any) -> Content:
    return build_content(
        kind,
        profile=profile(**overrides),
        trigger=trigger(kind, old_price=80.0),
        catalog=catalog_frame(*catalog_rows),
        bestsellers=BESTSELLERS,
        now=NOW,
        shop=SHOP,
        staleness=STALENESS,
    )


def render(kind: str, variant: str = "a", **overrides: Any) -> RenderedParts:
    return RENDERER.render(
        content(kind, **overrides), kind=kind, variant=variant, unsubscribe_url=UNSUBSCRIBE
    )


def compose(parts: RenderedParts, **overrides: Any) -> Email:
    arguments: dict[str, Any] = {
        "send_id": "s-abc",
        "to": "ada@example.com",
        "sender": "Maison Demo <hello@shop.example>",
        "unsubscribe_url": UNSUBSCRIBE,
        "unsubscribe_mailto": MAILTO,
        "custom_args": {"send_id": "s-abc", "kind": "abandoned_cart", "variant": "a"},
        **overrides,
    }
    return RENDERER.compose(parts, **arguments)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_and_variant_renders(kind: str, variant: str) -> None:
    parts = render(kind, variant)
    assert parts.subject and parts.preheader
    for body in (parts.html, parts.text):
        assert "Maison Demo" in body and "1 Demo Street, Paris" in body and "Hi Ada," in body
    assert f"Unsubscribe: {UNSUBSCRIBE}" in parts.text
    assert f'href="{UNSUBSCRIBE.replace("&", "&amp;")}"' in parts.html
    assert re.search(r"<a [^>]*>Unsubscribe</a>", parts.html)  # visible, not only a header
    assert parts.preheader in parts.html and f"<title>{parts.subject}</title>" in parts.html
    if kind in CART_KINDS:
        assert "Linen shirt" in parts.text and "€118.00" in parts.html and "Total: €118.00" in parts.text
    if kind in PRODUCT_KINDS:
        assert "Oxford shirt" in parts.html and 'src="https://img.shop.example/p-oxford.jpg"' in parts.html
    assert "{{" not in parts.text and "{%" not in parts.html  # no template syntax left


@pytest.mark.parametrize("kind", KINDS)
def test_variants_have_their_own_subject_and_preheader(kind: str) -> None:
    a, b = render(kind, "a"), render(kind, "b")
    assert a.subject != b.subject and a.preheader != b.preheader


@pytest.mark.parametrize("kind", KINDS)
def test_css_is_inlined(kind: str) -> None:
    html = render(kind).html
    assert re.search(r'<a class="button" href="[^"]+" style="[^"]*background-color: #d9622b', html)
    assert re.search(r'<td class="footer" style="[^"]+"', html)
    assert "<link" not in html.lower()
    styles = re.findall(r"<style>(.*?)</style>", html, re.DOTALL)
    assert all(block.strip().startswith("@media") for block in styles)  # only responsive rules stay


def test_cart_email_shows_lines_in_a_table() -> None:
    parts = render("abandoned_cart", cart_items=[line("p-linen", 2), line("p-denim", 1)])
    html = parts.html
    assert 'src="https://img.shop.example/p-linen.jpg"' in html
    assert re.search(r"Linen shirt</a>.*?€59\.00 each.*?× 2.*?€118\.00", html, re.DOTALL)
    assert "Total: €190.50" in html
    assert re.search(r'<a class="button" href="https://shop.example/cart"', html)
    assert "Picked for you" in html and "Oxford shirt" in html  # the recommendations grid
    assert "- Linen shirt x 2: €118.00" in parts.text


def test_stale_profile_renders_generic_cart() -> None:
    parts = render("abandoned_cart", as_of=NOW - STALENESS * 2)
    assert "Linen shirt" in parts.text and "€" not in parts.text.split("Popular right now")[0]
    assert "Gold member" not in parts.html and "Your cart is still waiting for you." in parts.text


def test_list_unsubscribe_headers() -> None:
    email = compose(render("abandoned_cart"))
    assert dict(email.headers) == {
        "List-Unsubscribe": f"<{UNSUBSCRIBE}>, <{MAILTO}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }
    assert (email.send_id, email.to, email.subject) == (
        "s-abc",
        "ada@example.com",
        "Ada, you left something in your cart",
    )
    assert email.custom_args["kind"] == "abandoned_cart"


def test_local_http_unsubscribe_link_is_allowed() -> None:
    url = "http://127.0.0.1:8025/unsubscribe/s-abc.tok"
    parts = RENDERER.render(content("welcome"), kind="welcome", variant="a", unsubscribe_url=url)
    assert f'href="{url}"' in parts.html
    assert compose(parts, unsubscribe_url=url).headers["List-Unsubscribe"].startswith(f"<{url}>")


def test_render_email_is_render_then_compose() -> None:
    email = RENDERER.render_email(
        content("welcome"),
        kind="welcome",
        variant="b",
        send_id="s-abc",
        to="ada@example.com",
        sender="hello@shop.example",
        unsubscribe_url=UNSUBSCRIBE,
        unsubscribe_mailto=MAILTO,
        custom_args={"variant": "b"},
    )
    assert email == compose(render("welcome", "b"), sender="hello@shop.example", custom_args={"variant": "b"})


def test_environment_is_sandboxed_strict_and_autoescapes_html() -> None:
    environment = RENDERER.environment
    assert isinstance(environment, SandboxedEnvironment)
    assert environment.undefined is StrictUndefined
    assert callable(environment.autoescape)
    assert environment.autoescape("welcome.html.j2") and environment.autoescape("layout.html")
    assert not environment.autoescape("welcome.txt.j2") and not environment.autoescape(None)


def test_templates_come_only_from_the_templates_package() -> None:
    loader = RENDERER.environment.loader
    assert isinstance(loader, PackageLoader) and loader.package_name == TEMPLATES_PACKAGE == "templates"
    filename = RENDERER.environment.get_template("welcome.html.j2").filename
    assert filename is not None and Path(filename) == TEMPLATES / "welcome.html.j2"
    kinds = {f"{kind}.{part}.j2" for kind in KINDS for part in ("html", "txt")}
    shared = {"layout.html.j2", "layout.txt.j2", "macros.html.j2", "macros.txt.j2"}
    assert set(RENDERER.environment.list_templates(extensions=["j2"])) == kinds | shared


@pytest.mark.parametrize(
    "kind", ["winback", "layout", "../templates/welcome", "welcome.html", "{{ 7*7 }}", ""]
)
def test_template_names_are_fixed_per_kind(kind: str) -> None:
    with pytest.raises(ValueError, match="unknown email kind"):
        RENDERER.render(content("welcome"), kind=kind, variant="a", unsubscribe_url=UNSUBSCRIBE)


def test_content_of_another_kind_raises() -> None:
    with pytest.raises(ValueError, match="rendered as 'abandoned_cart'"):
        RENDERER.render(content("welcome"), kind="abandoned_cart", variant="a", unsubscribe_url=UNSUBSCRIBE)


def test_unknown_variant_raises() -> None:
    with pytest.raises(ValueError, match="unknown variant"):
        RENDERER.render(content("welcome"), kind="welcome", variant="c", unsubscribe_url=UNSUBSCRIBE)


def test_aborted_content_is_never_rendered() -> None:
    with pytest.raises(RenderAborted) as aborted:
        RENDERER.render(
            Content(aborted="empty_cart"), kind="abandoned_cart", variant="a", unsubscribe_url=UNSUBSCRIBE
        )
    assert aborted.value.reason == "empty_cart"


def test_missing_variable_aborts_instead_of_rendering_half_an_email() -> None:
    full = content("abandoned_cart")
    partial = Content(context={k: v for k, v in full.context.items() if k != "cart"})
    with pytest.raises(RenderAborted) as aborted:
        RENDERER.render(partial, kind="abandoned_cart", variant="a", unsubscribe_url=UNSUBSCRIBE)
    assert aborted.value.reason == "template_error: 'cart' is undefined"


@pytest.mark.parametrize(
    ("name", "old", "new", "reason"),
    [
        (
            "layout.html.j2",
            '<a class="footer-link" href="{{ unsubscribe_url }}">',
            "<a>",
            "missing_unsubscribe_link",
        ),
        ("layout.txt.j2", "Unsubscribe: {{ unsubscribe_url }}", "", "missing_unsubscribe_link"),
        (
            "welcome.txt.j2",
            "{% block subject %}",
            "{% block subject %} \r\n{% endblock %}{% block x %}",
            "empty_subject",
        ),
        ("welcome.html.j2", "<h1>", "<h1>{{ ''.__class__.__mro__ }}", "template_error"),
        ("welcome.html.j2", "<h1>", "<h1>{{ unknown_variable }}", "template_error"),
    ],
)
def test_broken_templates_abort(tmp_path: Path, name: str, old: str, new: str, reason: str) -> None:
    folder = tmp_path / "templates"
    shutil.copytree(TEMPLATES, folder)
    source = (folder / name).read_text()
    assert old in source
    (folder / name).write_text(source.replace(old, new))
    renderer = TemplateRenderer(folder)
    with pytest.raises(RenderAborted) as aborted:
        renderer.render(content("welcome"), kind="welcome", variant="a", unsubscribe_url=UNSUBSCRIBE)
    assert aborted.value.reason.startswith(reason)
    assert TemplateRenderer().render(
        content("welcome"), kind="welcome", variant="a", unsubscribe_url=UNSUBSCRIBE
    )
