"""Marketing consent as real integrations state it: trait names, Segment's consent object, the CRM.

The mapping is documented in the README ("Marketing consent") and kept in transforms/profiles/traits.py.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from tests.story import Shop, at, spec_message
from transforms.profiles.derive import derive
from transforms.profiles.traits import CONSENT_TRAITS, EMAIL_CATEGORIES, NO, YES
from transforms.schema import CUSTOMERS_SCHEMA


def identify(minutes: float, prefs: dict[str, Any] | None = None, **traits: Any) -> dict:
    """An identify as analytics-python sends it, with `traits` and the consent object `prefs`."""
    body = spec_message("identify", at(minutes), user="u1", email="u1@example.com", **traits)
    if prefs is not None:
        body["context"]["consent"] = {"categoryPreferences": prefs}
    return body


def page(minutes: float, prefs: dict[str, Any]) -> dict:
    body = spec_message("page", at(minutes), user="u1", name="Home")
    body["context"]["consent"] = {"categoryPreferences": prefs}
    return body


def consent(shop: Shop) -> bool | None:
    [value] = derive(shop.state(), shop.customers, at(60))["marketing_consent"].to_list()
    return value


@pytest.mark.parametrize(
    ("traits", "expected"),
    [
        ({"marketing_consent": True}, True),
        ({"marketing_consent": "no"}, False),
        ({"email_marketing_consent": {"state": "subscribed", "opt_in_level": "single_opt_in"}}, True),
        ({"email_marketing_consent": {"state": "unsubscribed"}}, False),
        ({"email_marketing_consent": {"state": "pending"}}, None),  # double opt-in not confirmed yet
        ({"email_marketing_consent": True}, True),
        ({"email_consent": True}, True),
        ({"email_opt_in": "yes"}, True),
        ({"accepts_marketing": True}, True),  # Shopify
        ({"accepts_marketing": "false"}, False),
        ({"subscribed": True}, True),
        ({"newsletter": 1}, True),
        ({"newsletter": 0}, False),
        ({"unsubscribed": True}, False),  # negated
        ({"unsubscribed": False}, True),
        ({"marketing_consent": False, "newsletter": True}, False),  # the first name in the table wins
        ({"newsletter": "maybe", "subscribed": True}, True),  # a value that says nothing is skipped
        ({"first_name": "Ann"}, None),
    ],
)
def test_consent_traits(traits: dict[str, Any], expected: bool | None) -> None:
    shop = Shop()
    shop.land(identify(0, **traits))
    assert consent(shop) is expected


@pytest.mark.parametrize(
    ("prefs", "expected"),
    [
        ({"Advertising": True, "Analytics": True, "Marketing": False}, False),
        ({"Advertising": False, "Marketing": True}, True),
        ({"email": True}, True),
        ({"Email Marketing": True, "Functional": False}, True),
        ({"email_marketing": True}, True),
        ({"Email": True, "Marketing": False}, False),  # every email category must agree
        ({"Advertising": True, "Analytics": True}, None),  # advertising is not email
        ({"C0001": True, "C0004": True}, None),  # category ids that name nothing
        ({}, None),
    ],
)
def test_segment_consent_object(prefs: dict[str, Any], expected: bool | None) -> None:
    shop = Shop()
    shop.land(identify(0, prefs))
    assert consent(shop) is expected


def test_the_latest_consent_object_wins() -> None:
    shop = Shop()
    shop.land(identify(0, {"Marketing": True}), page(10, {"Marketing": False}))
    assert consent(shop) is False
    shop.land(page(20, {"Marketing": True}))
    assert consent(shop) is True


@pytest.mark.parametrize("later", [True, False])
def test_a_trait_outranks_the_consent_object_whatever_their_times(later: bool) -> None:
    """Segment keeps the consent object for cookie and data-collection consent and communication
    preferences in traits: declining marketing cookies does not unsubscribe from the newsletter."""
    shop = Shop()
    prefs = {"Marketing": False}
    if later:
        shop.land(identify(0, newsletter=True), page(10, prefs))
    else:
        shop.land(page(0, prefs), identify(10, newsletter=True))
    assert consent(shop) is True
    shop.land(identify(20, prefs, email_consent=True))  # on the same message, too
    assert consent(shop) is True


def crm(consent: bool, updated: datetime) -> pl.DataFrame:
    row = {"user_id": "u1", "email": "u1@example.com", "marketing_consent": consent, "updated_at": updated}
    return pl.DataFrame([row], schema=CUSTOMERS_SCHEMA)


@pytest.mark.parametrize(("updated", "expected"), [(at(5), False), (at(-5), True)])
def test_the_crm_row_wins_over_a_trait_when_newer(updated: datetime, expected: bool) -> None:
    shop = Shop()
    shop.land(identify(0, accepts_marketing=True))
    shop.customers = crm(False, updated)
    assert consent(shop) is expected


def test_the_crm_row_outranks_the_consent_object() -> None:
    shop = Shop()
    shop.customers = crm(False, at(-60))
    shop.land(identify(0, {"Marketing": True}))
    assert consent(shop) is False


def test_a_shopper_of_segments_clients_gets_the_welcome_email() -> None:
    """Consent in the consent object only: welcome, not `no_consent`."""
    shop = Shop()
    shop.land(identify(0, {"Advertising": False, "Analytics": True, "Marketing": True}, first_name="Ann"))
    assert shop.run(at(0)).select("kind", "decision").rows() == [("welcome", "send")]


def test_traits_of_any_shape_are_read_without_failing() -> None:
    """An object or a list where a string trait is expected counts as no value (the batch goes on)."""
    shop = Shop()
    shop.land(identify(0, first_name={"given": "Ann"}, timezone=["Europe/Paris"], email_consent=True))
    [row] = derive(shop.state(), shop.customers, at(5)).rows(named=True)
    assert (row["email"], row["first_name"], row["timezone"]) == ("u1@example.com", None, None)
    assert row["marketing_consent"] is True


def test_the_readme_documents_the_mapping() -> None:
    """Every trait name, category and word of transforms/profiles/traits.py is in the README's table."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("### Marketing consent", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"`([^`]+)`", section))
    assert {name for name, _ in CONSENT_TRAITS} <= documented
    assert documented >= YES | NO
    categories = {re.sub(r"[^a-z0-9]", "", c.lower()) for c in documented}
    assert categories >= EMAIL_CATEGORIES
