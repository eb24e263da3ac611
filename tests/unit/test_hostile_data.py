"""What hostile data cannot do to an email: markup escaped, template syntax inert, links and headers safe."""

from __future__ import annotations

import re
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import pytest

from resources.templates import RenderAborted
from tests.unit.test_content import HOME, catalog_frame, line, product
from tests.unit.test_content import content as email_content
from tests.unit.test_render import RENDERER, compose, content, render
from transforms.sends.content import CART_KINDS, KINDS, PRODUCT_KINDS
from transforms.sends.payloads import postmark_payload, sendgrid_payload

LINKS = re.compile(r'\b(?:href|src)="([^"]*)"', re.IGNORECASE)


HOSTILE = ["<script>alert(1)</script>", '"><img src=x onerror=alert(1)>', "{{ 7*7 }}"]


def hostile_overrides(where: str, payload: str) -> dict[str, Any]:
    if where == "first_name":
        return {"first_name": payload}
    name = "p-linen" if where == "cart_product" else "p-oxford"  # the cart's line, or the trigger's product
    return {"catalog_rows": (product(name, payload, "shirts", 59.0, 3),)}


@pytest.mark.parametrize("payload", HOSTILE)
@pytest.mark.parametrize(
    ("kind", "where"),
    [(kind, "first_name") for kind in KINDS]
    + [(kind, "cart_product") for kind in CART_KINDS]
    + [(kind, "product") for kind in PRODUCT_KINDS],
)
def test_hostile_names_are_escaped_in_html_and_inert_in_text(kind: str, where: str, payload: str) -> None:
    parts = render(kind, **hostile_overrides(where, payload))
    html = parts.html.lower()
    assert "<script" not in html and "<img src=x" not in html and "onerror=alert(1)>" not in html
    assert "49" not in parts.html and "49" not in parts.text and "49" not in parts.subject
    assert payload in parts.text  # literally: never evaluated, never escaped in the text part
    if payload == "{{ 7*7 }}":
        assert payload in parts.html
    else:
        assert "&lt;" in parts.html


def test_text_part_is_not_html_escaped() -> None:
    parts = render("welcome", first_name="Tom & Jerry's")
    assert "Hi Tom & Jerry's," in parts.text and "Tom & Jerry's" in parts.subject
    assert "Tom &amp; Jerry" in parts.html


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("bad", ["javascript:alert(1)", "JaVaScRiPt:alert(1)", "data:text/html,<b>x</b>"])
def test_unsafe_product_urls_never_reach_href_or_src(kind: str, bad: str) -> None:
    rows = tuple(
        product(pid, pid, "shirts", 59.0, 3, url=bad, image_url=bad)
        for pid in ("p-linen", "p-oxford", "p-denim", "p-socks", "p-belt")
    )
    items = [line("p-linen", 1, url=bad, image_url=bad), line("p-gone", 1, url=bad, image_url=bad)]
    parts = render(kind, catalog_rows=rows, cart_items=items, top_category="shirts", purchased_products=[])
    links = LINKS.findall(parts.html)
    assert links and all(link.startswith("https://shop.example") for link in links)
    for body in (parts.html.lower(), parts.text.lower()):
        assert "javascript:" not in body and "data:" not in body


@pytest.mark.parametrize(
    ("kind", "where"),
    [("abandoned_cart", "first_name"), ("welcome", "first_name"), ("browse_abandonment", "product")],
)
def test_crlf_never_reaches_headers_or_subject(kind: str, where: str) -> None:
    # No address in it: a name holding one is left out whole (transforms.sends.safety.holds_link).
    payload = "Ada\r\nBcc: evil\nX-Injected: 1"
    email = compose(render(kind, **hostile_overrides(where, payload)))
    assert "Bcc: evil X-Injected: 1" in email.subject
    for value in (email.subject, email.preheader, email.to, email.sender, *email.headers.values()):
        assert "\r" not in value and "\n" not in value


ENCODED_WORD = "=?utf-8?q?Your_account_is_locked?="


def as_a_client_reads_it(subject: str) -> str:
    """The subject put in a MIME message by a mail builder (Python's, as a provider builds one from the
    JSON it is given) and read back by a mail reader, encoded-words decoded."""
    message = EmailMessage()
    message["Subject"] = subject
    return str(message_from_bytes(message.as_bytes(), policy=policy.default)["Subject"])


@pytest.mark.parametrize("payload", [ENCODED_WORD, f"Ada\r\n{ENCODED_WORD}\n=?UTF-8?B?TG9ja2Vk?="])
@pytest.mark.parametrize(
    ("kind", "where"),
    [("welcome", "first_name"), ("abandoned_cart", "first_name"), ("post_purchase", "first_name")]
    + [(kind, "product") for kind in PRODUCT_KINDS],
)
def test_data_cannot_make_an_encoded_word_in_the_subject(kind: str, where: str, payload: str) -> None:
    email = compose(render(kind, **hostile_overrides(where, payload)))
    assert "=?" not in email.subject and "\r" not in email.subject and "\n" not in email.subject
    shown = as_a_client_reads_it(email.subject)
    assert shown == email.subject  # what the template and the data say, not "Your account is locked"
    assert " ".join(payload.split()) in shown.replace("\u2060", "")  # literally, the joiner invisible
    for payload_of in (sendgrid_payload(email)["subject"], postmark_payload(email)["Subject"]):
        assert payload_of == email.subject


@pytest.mark.parametrize(
    "to",
    ["ada@example.com\r\nBcc: evil@example.com", "ada@example.com, eve@example.com", "not-an-address", ""],
)
def test_compose_refuses_a_bad_recipient(to: str) -> None:
    with pytest.raises(RenderAborted) as aborted:
        compose(render("welcome"), to=to)
    assert aborted.value.reason == "invalid_address"


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"unsubscribe_url": "https://shop.example/unsubscribe/other"}, "unsubscribe_link_mismatch"),
        ({"unsubscribe_url": "javascript:alert(1)"}, "invalid_unsubscribe_url"),
        ({"unsubscribe_mailto": "https://shop.example/u"}, "invalid_unsubscribe_mailto"),
        ({"unsubscribe_mailto": "mailto:u@shop.example>, <https://x.example"}, "invalid_unsubscribe_mailto"),
        (
            {"unsubscribe_mailto": "mailto:u@shop.example>\r\nBcc: evil@example.com"},
            "invalid_unsubscribe_mailto",
        ),
    ],
)
def test_compose_refuses_inconsistent_unsubscribe(overrides: dict[str, str], reason: str) -> None:
    with pytest.raises(RenderAborted) as aborted:
        compose(render("welcome"), **overrides)
    assert aborted.value.reason == reason


@pytest.mark.parametrize(
    "url",
    ["javascript:alert(1)", "ftp://shop.example/u", "/unsubscribe", "https://shop.example/u\r\nBcc: x", ""],
)
def test_render_refuses_an_unsafe_unsubscribe_url(url: str) -> None:
    with pytest.raises(RenderAborted) as aborted:
        RENDERER.render(content("welcome"), kind="welcome", variant="a", unsubscribe_url=url)
    assert aborted.value.reason == "invalid_unsubscribe_url"


def test_unsafe_catalog_urls_fall_back_to_shop_home() -> None:
    catalog = catalog_frame(
        product("p-evil", "Evil", "evil", 5.0, 1, url="javascript:alert(1)", image_url="data:x")
    )
    result = email_content("browse_abandonment", catalog=catalog, trigger={"anchor": "p-evil"})
    assert result.context["product"]["url"] == HOME
    assert result.context["product"]["image_url"] == ""
    assert result.context["cta_url"] == HOME


def test_names_are_cleaned_and_bounded() -> None:
    result = email_content(first_name="Ada\r\nBcc: x", loyalty_tier="Gold\n")
    assert result.context["first_name"] == "Ada Bcc: x"
    assert result.context["loyalty_tier"] == "Gold"
    assert len(email_content(first_name="A" * 500).context["first_name"]) == 120
