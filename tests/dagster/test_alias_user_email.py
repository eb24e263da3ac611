"""A golden story in Segment's shapes: Ann identifies as u-old with her address and consent, adds a mug as
u-old, the shop renames her (`alias`, userId u-new, previousId u-old: spec/alias.md's "a User ID you
previously identified them with") and she orders as u-new, a micro-batch later. She gets her one welcome
and no cart email, and is one shopper: the profile API serves u-new with her address, consent and order
and no cart, u-old no more, and the lake's `profiles` table has one row for her (found by review: the
alias stitched u-old as an anonymous id only, so the cart email went to u-old after her order). Real
micro-batch runs on a Delta lake, mailing a real sandbox over HTTP on loopback."""

from __future__ import annotations

from typing import Any

import dagster as dg
import orjson
import polars as pl
import pytest

from orchestration.definitions import build_defs
from orchestration.jobs import PROFILES_JOB
from orchestration.settings import Settings
from resources.state import StateResource
from tests.conftest import land, table
from tests.dagster.sends_harness import SHOPPERS, Mailbox, run, sends
from tests.dagster.test_order_checkout_cart_email import profile_api
from tests.story import at, spec_message

MUG: dict[str, Any] = {"product_id": "p-mug", "sku": "M-1", "name": "Mug", "price": 12.5, "quantity": 2}
TEAPOT: dict[str, Any] = {"product_id": "p-pot", "sku": "T-1", "name": "Teapot", "price": 30.0, "quantity": 1}
OLD, NEW = "u-old", "u-new"
LEAVER = SHOPPERS[0]  # carts and leaves: the cart email goes to her
START = 20 * 60  # the carts, a day after the welcomes (the 16 h cap)


def _signups() -> list[dict[str, Any]]:
    traits: dict[str, Any] = {"marketing_consent": True, "timezone": "Europe/London"}
    return [
        spec_message("identify", at(0), user=user, email=f"{name}@example.com", first_name=name, **traits)
        for user, name in ((OLD, "Ann"), (LEAVER, "Lee"))
    ]


def test_a_user_renamed_between_her_cart_and_her_order_gets_no_cart_email_and_is_one_shopper(
    mail_settings: Settings, mailbox: Mailbox, instance: dg.DagsterInstance, state: StateResource
) -> None:
    land(mail_settings, "signup.ndjson", [orjson.dumps(m) for m in _signups()])
    run(mail_settings, instance, 5)  # the welcomes go out
    carts = [
        spec_message("Product Added", at(START), user=OLD, **MUG),
        spec_message("Product Added", at(START), user=LEAVER, **MUG),
        spec_message("alias", at(START + 1), user=NEW, previous_id=OLD),
    ]
    land(mail_settings, "carts.ndjson", [orjson.dumps(m) for m in carts])
    run(mail_settings, instance, START + 2)
    order: dict[str, Any] = {"order_id": "o-1", "total": 25.0, "revenue": 25.0, "currency": "EUR"}
    ordered = spec_message("Order Completed", at(START + 3), user=NEW, products=[MUG], **order)
    land(mail_settings, "order.ndjson", [orjson.dumps(ordered)])
    for minutes in (START + 4, START + 63, START + 90):
        run(mail_settings, instance, minutes)

    outbox = sends(mail_settings).sort("kind", "user_id")
    assert outbox.select("kind", "user_id", "status").rows() == [
        ("abandoned_cart", LEAVER, "sent"),
        ("welcome", LEAVER, "sent"),
        ("welcome", OLD, "sent"),
    ]
    assert sorted(m["to"] for m in mailbox.messages()) == sorted(
        ["Ann@example.com", "Lee@example.com", "Lee@example.com"]
    )

    [ann] = profile_api(mail_settings, state, f"/v1/profiles/{NEW}")
    assert (ann["email"], ann["first_name"], ann["marketing_consent"]) == ("Ann@example.com", "Ann", True)
    assert (ann["cart_id"], ann["cart_items"], ann["order_count"]) == (None, [], 1)

    refresh = build_defs(mail_settings).resolve_job_def(PROFILES_JOB)  # the `profiles` table it writes
    assert refresh.execute_in_process(instance=instance).success
    rows = table(mail_settings, "profiles").sort("user_id").select("user_id", "email", "order_count")
    assert rows.rows() == [(LEAVER, "Lee@example.com", 0), (NEW, "Ann@example.com", 1)]
    assert rows.filter(pl.col("user_id") == OLD).is_empty()


@pytest.mark.parametrize("orders", [True, False])
def test_a_cart_email_waiting_for_the_provider_is_checked_against_the_renamed_shopper(
    mail_settings: Settings, mailbox: Mailbox, instance: dg.DagsterInstance, orders: bool
) -> None:
    """Ann's cart email (to u-old) is decided but the provider refuses the key; the shop renames her u-new,
    and she orders as u-new, or adds a teapot as u-new, before the retry. The retry's re-check reads her
    under her new id: her order withdraws the email (`order_completed`), else it goes to her address with
    the cart she has now (it was withdrawn as `cart_emptied` either way: u-old's state was no longer
    there)."""
    land(mail_settings, "signup.ndjson", [orjson.dumps(_signups()[0])])
    run(mail_settings, instance, 5)  # the welcome goes out
    cart = spec_message("Product Added", at(START), user=OLD, **MUG)
    land(mail_settings, "cart.ndjson", [orjson.dumps(cart)])
    run(mail_settings, instance, START + 61, api_key="wrong-key")  # decided `send`, the key refused
    waiting = sends(mail_settings).filter(pl.col("kind") == "abandoned_cart")
    assert waiting.select("user_id", "status").rows() == [(OLD, "retrying")]
    order: dict[str, Any] = {"order_id": "o-1", "total": 25.0, "revenue": 25.0, "currency": "EUR"}
    renamed = [spec_message("alias", at(START + 62), user=NEW, previous_id=OLD)]
    if orders:
        renamed.append(spec_message("Order Completed", at(START + 62), user=NEW, products=[MUG], **order))
    else:
        renamed.append(spec_message("Product Added", at(START + 62), user=NEW, **TEAPOT))
    land(mail_settings, "renamed.ndjson", [orjson.dumps(m) for m in renamed])
    run(mail_settings, instance, START + 63)  # the cool-off (30 s) has passed
    cart_email = sends(mail_settings).filter(pl.col("kind") == "abandoned_cart").row(0, named=True)
    delivered = [(m["custom_args"]["kind"], m["to"]) for m in mailbox.messages()]
    if orders:
        assert (cart_email["status"], cart_email["last_error"]) == ("aborted", "exited: order_completed")
        assert delivered == [("welcome", "Ann@example.com")]
    else:
        assert cart_email["status"] == "sent"
        assert sorted(delivered) == [("abandoned_cart", "Ann@example.com"), ("welcome", "Ann@example.com")]
        [email] = [m for m in mailbox.messages() if m["custom_args"]["kind"] == "abandoned_cart"]
        assert "Mug" in email["text"] and "Teapot" in email["text"], email["text"]
