"""What data may put into an email: https links only, header-safe text, prices with their currency."""

from __future__ import annotations

import pytest

from transforms.sends.safety import format_price, header_value, holds_link, safe_url, subject_value

HOME = "https://shop.example"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://shop.example/p/1?x=1&y=2", "https://shop.example/p/1?x=1&y=2"),
        ("  HTTPS://shop.example/p  ", "HTTPS://shop.example/p"),
        ("http://shop.example/p", HOME),
        ("javascript:alert(1)", HOME),
        ("JaVaScRiPt:alert(1)", HOME),
        (" javascript:alert(1)", HOME),
        ("data:text/html;base64,PHNjcmlwdD4=", HOME),
        ("vbscript:msgbox(1)", HOME),
        ("//evil.example/p", HOME),
        ("/products/1", HOME),
        ("products/1", HOME),
        ("https:///no-host", HOME),
        ("https://shop.example/p\n1", HOME),
        ("https://shop.example/p\r\nX-Evil: 1", HOME),
        ("https://shop.example/\x00", HOME),
        ("https://shop.example/a b", HOME),
        ('https://shop.example/"onmouseover="alert(1)', HOME),
        ("https://shop.example/<script>", HOME),
        ("https://user:pw@evil.example/", HOME),
        ("https://[::1", HOME),
        ("https://shop.example/" + "a" * 3000, HOME),
        ("", HOME),
        ("   ", HOME),
        (None, HOME),
    ],
)
def test_safe_url(url: str | None, expected: str) -> None:
    assert safe_url(url, HOME) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Your cart is waiting", "Your cart is waiting"),
        ("  padded  ", "padded"),
        ("Ada\r\nBcc: evil@example.com", "Ada Bcc: evil@example.com"),
        ("line\nbreak", "line break"),
        ("tab\there", "tab here"),
        ("nul\x00byte", "nul byte"),
        ("bell\x07 \x1b[31m", "bell [31m"),
        ("unicode\u2028line\u2029para\x85next", "unicode line para next"),
        ("bidi\u202egnp.exe", "bidignp.exe"),
        ("emoji 👩\u200d💻 kept", "emoji 👩\u200d💻 kept"),
        ("Zoë – café", "Zoë – café"),
        ("\r\n", ""),
        ("", ""),
    ],
)
def test_header_value(text: str, expected: str) -> None:
    assert header_value(text) == expected


def test_header_value_is_bounded() -> None:
    value = header_value("x" * 5000)
    assert len(value) == 998 and value.endswith("…")
    assert header_value("word " * 100, limit=20) == "word word word word…"


def test_subject_value_breaks_every_encoded_word_and_is_idempotent() -> None:
    value = subject_value("Hi =?utf-8?b?SGk=?=\r\n=?x?=?", 150)
    assert value == "Hi =\u2060?utf-8?b?SGk=\u2060?= =\u2060?x?=\u2060?"
    assert subject_value(value, 150) == value


@pytest.mark.parametrize(
    ("amount", "currency", "expected"),
    [(12.5, "EUR", "€12.50"), (1234.0, "USD", "$1,234.00"), (3.0, "gbp", "£3.00"), (9.9, "CHF", "9.90 CHF"),
     (None, "EUR", ""), (float("nan"), "EUR", "")],
)  # fmt: skip
def test_format_price(amount: float | None, currency: str, expected: str) -> None:
    assert format_price(amount, currency) == expected


@pytest.mark.parametrize(
    ("text", "link"),
    [
        ("Claim your prize at evil.example/win", True),
        ("https://evil.example", True),
        ("HTTP://evil", True),
        ("see www.evil", True),
        ("mailto:x", True),
        ("write to me@evil.example", True),
        ("bit.ly/abc", True),
        ("EVIL.COM", True),
        ("evil\uff0eexample", True),  # a fullwidth stop
        ("evil\u3002example", True),  # an ideographic one
        ("\uff48\uff54\uff54\uff50\uff53\uff1a\uff0f\uff0fx", True),  # fullwidth https://
        ("Ada", False),
        ("Zoë-Amélie O'Brien", False),
        ("Dr. Who", False),
        ("J.R.R. Tolkien", False),
        ("Mug 0.5l", False),
        ("e.g. socks", False),
        ("Size: M", False),
        ("", False),
    ],
)
def test_holds_link(text: str, link: bool) -> None:
    """Names come from anyone's events: what a mail client would link is not shown (found by review)."""
    assert holds_link(text) is link
