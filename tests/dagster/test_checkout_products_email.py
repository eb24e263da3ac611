"""A shop that tracks checkouts server-side, without `Product Added`: the shopper who starts checkout and
leaves gets the abandoned_checkout email with the checkout's `products[]` as its cart lines (found by
review: decided `send`, then aborted `empty_cart` at render, so no such shopper ever got it). Real
micro-batch runs on a Delta lake, mailing a real sandbox over HTTP on loopback."""

from __future__ import annotations

from typing import Any

import dagster as dg
import orjson

from orchestration.settings import Settings
from resources.landing import LandingResource
from tests.conftest import land
from tests.dagster.sends_harness import SHOPPERS, Mailbox, run, sends, signups
from tests.story import at, spec_message

CATALOG = [
    {"product_id": "p-mug", "name": "Stoneware mug", "category": "kitchen", "price": 12.5, "stock": 9},
    {"product_id": "p-sock", "name": "Wool socks", "category": "socks", "price": 8.0, "stock": 9},
]


def test_a_shopper_with_only_a_checkout_gets_its_products_in_the_checkout_email(
    mail_settings: Settings, mailbox: Mailbox, instance: dg.DagsterInstance
) -> None:
    user = SHOPPERS[0]
    feed = b"".join(orjson.dumps(row) + b"\n" for row in CATALOG)
    LandingResource(uri=mail_settings.landing_uri).land("catalog/products.ndjson", feed)
    signups(mail_settings, [user])
    run(mail_settings, instance, 5)  # the welcome goes out; a day later the cap has passed
    products: list[dict[str, Any]] = [
        {"product_id": "p-mug", "sku": "M-1", "name": "Mug", "price": 12.5, "quantity": 2},
        {"product_id": "p-sock", "sku": "S-1", "name": "Socks", "price": 8.0, "quantity": 1},
    ]
    started = spec_message(
        "Checkout Started", at(20 * 60), user=user, order_id="o1", value=33.0, revenue=33.0, currency="EUR",
        products=products,
    )  # fmt: skip
    land(mail_settings, "checkout.ndjson", [orjson.dumps(started)])
    run(mail_settings, instance, 20 * 60 + 1)  # held until 30 minutes after the start
    run(mail_settings, instance, 20 * 60 + 31)
    outbox = sends(mail_settings)
    [row] = outbox.filter(outbox["kind"] == "abandoned_checkout").rows(named=True)
    assert (row["status"], row["last_error"]) == ("sent", None)
    [mail] = [m for m in mailbox.messages() if m["custom_args"]["kind"] == "abandoned_checkout"]
    assert "- Stoneware mug x 2: €25.00" in mail["text"]
    assert "- Wool socks x 1: €8.00" in mail["text"]
    assert "Total: €33.00" in mail["text"]
