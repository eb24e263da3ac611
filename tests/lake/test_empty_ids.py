"""One shopper's empty id stopped every decision (found by review): a `cart_id` or `product_id` of "" (which
anyone holding the public write key can send, and which the ingest keeps as it came) became the anchor of a
pending cart or browse email, and the next engine run looked it up in the state store's catalog; LMDB
refuses an empty key (MDB_BAD_VALSIZE), so every run after that failed for everyone. A key no store can
hold is found nowhere now. The ingest now reads a blank id as none (transforms.ingest.events.KEY_IDS), but
rows an earlier ingest wrote keep theirs: the batch here is ingested as that one did."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.lake.test_unsubscribe_anonymous import Home, _cart, _signup
from tests.story import at, message
from transforms.ingest import events


def test_an_empty_cart_id_or_product_id_is_decided_beside_a_good_shopper(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(events, "KEY_IDS", ())  # ingested as before 'blank ids are none': kept as sent
    home = Home(tmp_path)
    empty_cart = message(
        "Product Added", at(0), user="u-2", cart_id="", product_id="p1", name="Mug", price=9.5
    )
    views = [message("Product Viewed", at(m), user="u-3", product_id="") for m in (0, 0.5)]
    signups = [_signup(user, at(0)) for user in ("u-1", "u-2", "u-3")]
    home.batch("0", at(0), *signups, _cart("u-1", at(0)), empty_cart, *views)
    home.engine(at(1))  # welcomes; the cart and browse emails wait, anchored on their ids
    home.engine(at(62))  # reads the waiting rows' anchors
    home.engine(at(3 * 60))
    assert home.decisions("u-1") == [("welcome", "send"), ("abandoned_cart", "capped")]
    assert home.decisions("u-2") == [("welcome", "send"), ("abandoned_cart", "capped")]
    assert home.decisions("u-3") == [("welcome", "send"), ("browse_abandonment", "capped")]
