"""One shopper's cart or orders worth more than a double holds made the profile API answer that shopper 500
(found by review): the ingest takes any finite price and revenue, so anyone holding the public write key
can cart two at 1e308 or order twice for 1e308; the cart value and lifetime value are then infinite (or
NaN), which the lake's profiles keep, but the API's own derivation rounded them with Python's `round`
(OverflowError). Such a value is now left as it is, as Polars leaves it; JSON has no infinity: null."""

from __future__ import annotations

from orchestration.settings import Settings
from resources.lake import LakeResource
from resources.landing import LandingResource
from resources.state import StateResource
from stores.ingest import ingest
from stores.state.rebuild import rebuild
from tests.lake.test_profile_api import api_app
from tests.profile_shop import headers, message


def test_a_cart_and_orders_beyond_a_double_are_served_beside_a_good_shopper(
    settings: Settings, lake: LakeResource, landing: LandingResource
) -> None:
    lines = [
        message("identify", 30, user=user, email=f"{user}@example.com", marketing_consent=True)
        for user in ("u-good", "u-big")
    ]
    lines += [
        message(
            "Product Added", 20, user="u-good", cart_id="c-good", product_id="p-1", price=59.9, quantity=2
        ),
        message(
            "Product Added", 20, user="u-big", cart_id="c-big", product_id="p-1", price=1e308, quantity=2
        ),
        message("Order Completed", 25, user="u-big", order_id="o-1", revenue=1e308),
        message("Order Completed", 24, user="u-big", order_id="o-2", revenue=1e308),
    ]
    landing.land("events/1.ndjson", b"\n".join(lines) + b"\n")
    ingest(lake, landing)
    state = StateResource(uri=settings.state_store_uri)
    rebuild(lake, state)
    with api_app(settings, state) as client:
        answers = {u: client.get(f"/v1/profiles/{u}", headers=headers()) for u in ("u-good", "u-big")}
        content = client.get("/v1/profiles/u-big/content", headers=headers())
    assert [a.status_code for a in answers.values()] == [200, 200] and content.status_code == 200
    assert answers["u-good"].json()["cart_value"] == 119.8
    assert (answers["u-big"].json()["cart_value"], answers["u-big"].json()["lifetime_value"]) == (None, None)
