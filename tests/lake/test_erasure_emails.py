"""The erasure of a shopper whose `email` trait was no address destroyed other shoppers' data (found by
review): the erasure looks for each of the person's emails as a whole word in every table and landed
file, and took every `email` trait of their events as one; anyone holding the public write key can send
`email: 5` or `email: "example.com"`, so erasing them deleted another shopper's `Product Added` (a
quantity of 5) or identify (an address at example.com) from `events`, blanked those lines and a catalog
feed's line in the landing zone, and the certificate passed (or failed on 5s in the Delta log). Only an
address (`name@domain`) is the person's email now."""

from __future__ import annotations

from pathlib import Path

import pytest

from stores.erasure.requests import erase_user
from tests.lake.test_unsubscribe_anonymous import SECRET, Home, _signup
from tests.story import at, message
from transforms.schema import EVENTS_SCHEMA

CATALOG = b"product_id,name,price,stock\np-5,Runner,5,5\n"


@pytest.mark.parametrize("email", [5, "example.com", "com", ["b@example.com"], "b@example.com"])
def test_erasing_a_shopper_whose_email_is_no_address_leaves_everyone_else(
    tmp_path: Path, email: object
) -> None:
    home = Home(tmp_path)
    home.landing.land("catalog/feed.csv", CATALOG)
    good = [
        _signup("u-good", at(0)),
        message(
            "Product Added", at(0.5), user="u-good", cart_id="c1", product_id="p-5", price=5.0, quantity=5
        ),
    ]
    odd = message("identify", at(0), user="u-odd", email=email, marketing_consent=True)
    home.batch("0", at(1), *good, odd)
    certificate = erase_user(home.lake, home.landing, "u-odd", secret=SECRET, state=home.state)
    assert certificate.passed and certificate.landing_files == {"events/0.ndjson": 1}  # its own line only
    assert home.lake.read("events", EVENTS_SCHEMA).filter(user_id="u-good").height == 2
    assert home.landing.read_entry("catalog/feed.csv", 1024)[0] == CATALOG
