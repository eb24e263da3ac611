"""Histories Hypothesis found for tests/lake/test_decide_store.py, pinned so that every clone runs them
(CI has no .hypothesis database)."""

from __future__ import annotations

from datetime import UTC, datetime

from tests.lake.decide_harness import csv
from tests.story import message


def at(day: int, hour: int, minute: int) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=UTC)


# Shoppers sharing cart ids c1 and c2 (u1 and u3 start checkouts of c2, u2 and u3 fill c1; anonymous a2
# is u2's and u3's): both shoppers' states proposed one trigger id, the first engine run logged two
# terminal rows of it, and the live store and the lake picked different ones as its decision.
UNSUBSCRIBED_ABANDONER = [
    (
        [
            message(
                "Product Viewed",
                at(24, 12, 16),
                user="u3",
                message_id="m-20",
                product_id="p1",
                cart_id="c1",
                price=10.0,
                quantity=1,
            ),
            message("Checkout Started", at(24, 12, 24), user="u1", message_id="m-21", cart_id="c2"),
            message(
                "identify",
                at(24, 12, 38),
                user="u2",
                anon="a1",
                message_id="m-22",
                email="u2@example.com",
                marketing_consent=True,
                timezone="America/New_York",
            ),
            message(
                "identify",
                at(24, 12, 48),
                user="u1",
                anon="a3",
                message_id="m-23",
                email="u1@example.com",
                marketing_consent=True,
            ),
            message(
                "Product Removed",
                at(24, 12, 52),
                user="u3",
                anon="a2",
                message_id="m-24",
                product_id="p1",
                cart_id="c2",
                price=10.0,
                quantity=1,
            ),
            message(
                "Product Added",
                at(24, 12, 53),
                user="u2",
                anon="a2",
                message_id="m-25",
                product_id="p2",
                cart_id="c1",
                price=10.0,
                quantity=1,
            ),
            message(
                "Product Viewed",
                at(24, 13, 1),
                user="u2",
                message_id="m-26",
                product_id="p2",
                cart_id="c2",
                price=10.0,
                quantity=1,
            ),
            message("Checkout Started", at(24, 13, 3), user="u3", message_id="m-27", cart_id="c2"),
            message(
                "Product Viewed",
                at(24, 13, 26),
                user="u3",
                anon="a2",
                message_id="m-28",
                product_id="p1",
                cart_id="c1",
                price=10.0,
                quantity=1,
            ),
            message(
                "Product Added",
                at(24, 13, 30),
                user="u2",
                message_id="m-29",
                product_id="p1",
                cart_id="c2",
                price=10.0,
                quantity=1,
            ),
        ],
        csv([("p1", 10.0, 0), ("p2", 10.0, 0)], at(24, 13, 31)),
        at(24, 17, 46),
    ),
    (
        [
            message("Checkout Started", at(24, 17, 52), user="u2", message_id="m-30", cart_id="c1"),
            message(
                "Product Viewed",
                at(24, 18, 1),
                user="u3",
                anon="a2",
                message_id="m-31",
                product_id="p1",
                cart_id="c2",
                price=10.0,
                quantity=1,
            ),
            message(
                "Product Viewed",
                at(24, 18, 14),
                anon="a2",
                message_id="m-32",
                product_id="p1",
                cart_id="c2",
                price=10.0,
                quantity=1,
            ),
            message("Unsubscribed", at(24, 18, 45), user="u3", message_id="m-33"),
            message(
                "Product Viewed",
                at(24, 18, 54),
                anon="a1",
                message_id="m-34",
                product_id="p1",
                cart_id="c1",
                price=10.0,
                quantity=1,
            ),
            message(
                "Product Viewed",
                at(24, 19, 12),
                user="u3",
                message_id="m-35",
                product_id="p1",
                cart_id="c2",
                price=10.0,
                quantity=1,
            ),
        ],
        csv([("p1", 10.0, 5), ("p2", 8.0, 5)], at(24, 19, 17)),
        at(24, 22, 34),
    ),
    (
        [
            message(
                "identify",
                at(24, 22, 35),
                user="u3",
                message_id="m-36",
                email="u3@example.com",
                marketing_consent=False,
            ),
            message(
                "Product Added",
                at(24, 23, 44),
                user="u2",
                message_id="m-37",
                product_id="p1",
                cart_id="c1",
                price=10.0,
                quantity=1,
            ),
        ],
        csv([("p1", 8.0, 5), ("p2", 10.0, 0)], at(25, 0, 5)),
        at(25, 8, 20),
    ),
    (
        [
            message(
                "identify",
                at(25, 9, 1),
                user="u3",
                anon="a3",
                message_id="m-38",
                email="u3@example.com",
                marketing_consent=False,
            ),
        ],
        None,
        at(25, 20, 29),
    ),
]
