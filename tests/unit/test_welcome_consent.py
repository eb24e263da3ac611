"""The welcome goes out at the first moment a user has both an email and marketing consent (PRODUCT.md §4).

It used to be decided at the first identify with an email, consent or not: a user who consented later
(in a later identify, on the consent object, or in the CRM) had already had `no_consent`, a terminal
decision of the one welcome trigger they ever get, and was never welcomed.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import polars as pl
import pytest

from tests.story import Shop, at, message, spec_message
from transforms.schema import CUSTOMERS_SCHEMA

DAY = 24 * 60


def identify(minutes: float, user: str = "u1", **traits: Any) -> dict:
    return message("identify", at(minutes), user=user, **traits)


def signed_up(shop: Shop, **traits: Any) -> None:
    """u1 identifies with an email at T0 (and `traits`); the engine runs then."""
    shop.land(identify(0, email="u1@example.com", **traits))
    shop.run(at(0))


def crm(consent: bool | None, updated: datetime, user: str = "u1") -> pl.DataFrame:
    row = {"user_id": user, "marketing_consent": consent, "updated_at": updated}
    return pl.DataFrame([row], schema=CUSTOMERS_SCHEMA)


def welcomes(shop: Shop) -> list[tuple[str, str, datetime, datetime]]:
    """Every welcome row of the log: (user, decision, due_at, decided_at)."""
    rows = shop.log.filter(pl.col("kind") == "welcome").sort("decided_at")
    return rows.select("user_id", "decision", "due_at", "decided_at").rows()


@pytest.mark.parametrize(
    "consent",
    [
        identify(30, marketing_consent=True),  # a later identify with a consent trait
        identify(30, accepts_marketing=True),  # Shopify's
        spec_message("identify", at(30), user="u1", newsletter=True),
    ],
    ids=["marketing_consent", "accepts_marketing", "spec-newsletter"],
)
def test_consent_given_after_the_identify_gets_one_welcome_then(consent: dict) -> None:
    shop = Shop()
    signed_up(shop)
    assert welcomes(shop) == []  # no consent yet: no candidate, nothing decided for good
    shop.land(consent)
    shop.run(at(30))
    shop.land(identify(60, email="u1@example.com", marketing_consent=True, first_name="Ann"))
    shop.run(at(60))
    shop.run(at(3 * DAY))
    assert welcomes(shop) == [("u1", "send", at(30), at(30))]


def test_consent_on_the_consent_object_after_the_identify_gets_the_welcome() -> None:
    shop = Shop()
    signed_up(shop)
    page = spec_message("page", at(30), user="u1", name="Home")
    page["context"]["consent"] = {"categoryPreferences": {"Marketing": True}}
    shop.land(page)
    shop.run(at(30))
    assert welcomes(shop) == [("u1", "send", at(30), at(30))]


def test_consent_given_in_the_crm_after_the_identify_gets_the_welcome() -> None:
    shop = Shop()
    signed_up(shop)
    shop.customers = crm(None, at(-60))  # a CRM row that says nothing of consent: still none
    shop.run(at(10))
    assert welcomes(shop) == []
    shop.customers = crm(True, at(30))
    shop.run(at(31))
    shop.customers = crm(True, at(90))  # the row changes again: the welcome stays the one
    shop.run(at(91))
    assert welcomes(shop) == [("u1", "send", at(30), at(31))]


def test_an_email_after_consent_gets_the_welcome_at_the_email() -> None:
    shop = Shop()
    shop.land(identify(0, marketing_consent=True, first_name="Ann"))
    shop.run(at(0))
    assert welcomes(shop) == []  # consent but no address: no welcome yet
    shop.land(identify(45, email="u1@example.com"))
    shop.run(at(45))
    assert welcomes(shop) == [("u1", "send", at(45), at(45))]


def test_the_crm_consent_of_a_user_who_identifies_later_welcomes_at_the_identify() -> None:
    shop = Shop()
    shop.customers = crm(True, at(-10 * DAY))  # imported long ago
    signed_up(shop)
    assert welcomes(shop) == [("u1", "send", at(0), at(0))]


def test_identify_with_consent_is_welcomed_at_once_as_before() -> None:
    shop = Shop()
    signed_up(shop, marketing_consent=True)
    shop.land(identify(60, marketing_consent=True))
    shop.run(at(60))
    assert welcomes(shop) == [("u1", "send", at(0), at(0))]


def test_never_consenting_gets_no_welcome_and_no_decision() -> None:
    shop = Shop()
    signed_up(shop, marketing_consent=False)
    shop.land(identify(60, email="u1@example.com", marketing_consent=False))
    shop.run(at(60))
    shop.run(at(3 * DAY))
    assert welcomes(shop) == []


def test_consent_withdrawn_before_the_welcome_is_due_is_no_consent() -> None:
    """With a delay, consent withdrawn while the welcome waits: `no_consent` at due time, and that is the
    welcome's one decision (a consent given again later does not bring a second one)."""
    shop = Shop(delays={"welcome": timedelta(hours=1)})
    signed_up(shop, marketing_consent=True)
    shop.land(identify(20, marketing_consent=False))
    shop.run(at(20))
    shop.run(at(60))
    shop.land(identify(90, marketing_consent=True))
    shop.run(at(90))
    shop.run(at(3 * 60))
    assert welcomes(shop) == [("u1", "held", at(60), at(0)), ("u1", "no_consent", at(60), at(60))]


def test_consent_withdrawn_again_before_an_engine_run_brings_no_welcome() -> None:
    """Yes then no in one batch: consent as it stands is no, so there is no candidate (and none burnt: a
    yes later still welcomes)."""
    shop = Shop()
    shop.land(
        identify(0, email="u1@example.com", marketing_consent=True), identify(5, marketing_consent=False)
    )
    shop.run(at(5))
    assert welcomes(shop) == []
    shop.land(identify(30, marketing_consent=True))
    shop.run(at(30))
    assert welcomes(shop) == [("u1", "send", at(0), at(30))]
