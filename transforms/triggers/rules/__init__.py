"""The trigger rules; a new trigger is one small module and one entry here."""

from __future__ import annotations

from datetime import timedelta

from transforms.triggers.rules.base import Rule, RuleContext, no_exit
from transforms.triggers.rules.browse import browse_candidates, browse_exit
from transforms.triggers.rules.carts import (
    cart_candidates,
    cart_exit,
    cart_refilled,
    checkout_candidates,
    checkout_exit,
    claimed_twins,
)
from transforms.triggers.rules.catalog_alerts import (
    back_in_stock_candidates,
    price_drop_candidates,
    price_exit,
    stock_exit,
)
from transforms.triggers.rules.lifecycle import (
    post_purchase_candidates,
    post_purchase_exit,
    welcome_candidates,
    welcome_twins,
)

RULES: dict[str, Rule] = {
    rule.kind: rule
    for rule in (
        Rule(
            "abandoned_checkout",
            timedelta(minutes=30),
            1,
            checkout_candidates,
            checkout_exit,
            exits_when_due=("cart_changed", "cart_emptied"),  # back on the cart before then: it goes
        ),
        Rule(
            "abandoned_cart",
            timedelta(hours=1),
            2,
            cart_candidates,
            cart_exit,
            cooldown=timedelta(days=7),
            exits_when_due=("cart_emptied", "cart_changed"),  # back on the cart (a change) before then
            renews=True,
            refilled=cart_refilled,
            twins=claimed_twins,
        ),
        Rule("welcome", timedelta(0), 0, welcome_candidates, no_exit, twins=welcome_twins),
        Rule("back_in_stock", timedelta(0), 3, back_in_stock_candidates, stock_exit),
        Rule("price_drop", timedelta(0), 4, price_drop_candidates, price_exit),
        Rule(
            "browse_abandonment",
            timedelta(hours=2),
            5,
            browse_candidates,
            browse_exit,
            cooldown=timedelta(days=14),
            cooldown_by_anchor=True,
        ),
        Rule("post_purchase", timedelta(days=3), 6, post_purchase_candidates, post_purchase_exit),
    )
}

__all__ = ["RULES", "Rule", "RuleContext"]
