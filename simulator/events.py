"""What a shopper's session does next, as the Segment message it sends: views, pages (screens in the app),
searches, cart changes, checkouts, orders, logins and what follows them (alias, group); each also moves
the session's page and the shopper's cart.

Checkouts and orders are shaped as Segment's e-commerce v2 spec documents them: `order_id`,
`checkout_id`, `products`, `revenue`, `total`, `currency`, and no `cart_id` (`cart_ids=True`: a shop
that adds the cart's id to them, as lakemail's own shape did).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar
from urllib.parse import quote_plus

from simulator.context import Origin, draw_origin, page_context, web_origin
from simulator.dirt import Dirt, stamp
from simulator.population import Shopper, company
from simulator.segment import Message, uuid4
from simulator.shop import (
    CART_PAGE,
    CATEGORIES,
    CHECKOUT_PAGE,
    CURRENCY,
    LOGIN_PAGE,
    ORDER_PAGE,
    SIGNUP_PAGE,
    Catalog,
    Product,
    page,
)

T = TypeVar("T")
RECENT_VIEWS = 6
ALIAS_ON_LOGIN = 0.25  # logins followed by an `alias` (every sign-up is), as shops that call it each login


@dataclass(slots=True)
class Session:
    shopper: Shopper
    slot: int = -1  # index in ShopperSimulator._sessions
    logged_in: bool = False
    page: dict[str, str] | None = None
    viewed: list[str] = field(default_factory=list)
    origin: Origin | None = None  # app or website, campaign, Segment export (None: a direct website visit)
    context: Message | None = None  # what the session's messages carry now (set by `go`)
    pending: list[str] = field(default_factory=list)  # actions that must come next (alias, group)


class SessionActions:
    """The actions of a session (`builders`, by name), drawing on the simulation's one random stream."""

    def __init__(
        self, rng: random.Random, catalog: Catalog, dirt: Dirt, now_ms: int, cart_ids: bool = False
    ) -> None:
        self._rng = rng
        self._rnd = rng.random
        self.catalog = catalog
        self.dirt = dirt
        self.cart_ids = cart_ids
        self.now_ms = now_ms  # the end of the current step: no event is sent after it
        self._queries = [*CATEGORIES, *(noun.lower() for nouns in CATEGORIES.values() for noun in nouns)]
        self._search_pages = {q: page(f"/search?q={quote_plus(q)}", f"Search: {q}") for q in self._queries}
        self._pages = [page("/", "Home"), page("/sale", "Sale"), page("/new", "New in")]
        self._category_pages = {c: page(f"/c/{c}", c.title()) for c in CATEGORIES}
        self._pages += self._category_pages.values()
        self.builders: dict[str, Callable[[Session, int], Message]] = {
            "view": self._view,
            "page": self._page_view,
            "search": self._search,
            "add": self._add,
            "remove": self._remove,
            "cart": self._cart_viewed,
            "login": self._identify,
            "checkout": self._checkout,
            "order": self._order,
            "alias": self._alias,
            "group": self._group,
        }

    def pick(self, items: Sequence[T]) -> T:
        """A uniform choice (`random.choice` is several times slower than this)."""
        return items[int(self._rnd() * len(items))]

    def uuid(self) -> str:
        """A random (version 4 shaped) UUID string from the seeded RNG."""
        return uuid4(self._rng.randbytes(16))

    def begin(self, session: Session) -> None:
        """A new session: where it comes from (app or website, campaign, Segment export)."""
        session.origin = draw_origin(session.shopper, self._rnd)

    def go(self, session: Session, page: dict[str, str]) -> None:
        """The session moves to `page` (the previous one, else where the session came from, refers)."""
        if session.origin is None:
            session.origin = web_origin(session.shopper)
        origin = session.origin
        if session.page is None:
            referrer, search = origin.referrer, origin.search
        else:
            referrer, search = session.page["url"], ""
        session.page = page
        session.context = (
            origin.base if origin.app else origin.base | {"page": page_context(page, referrer, search)}
        )

    def message(
        self,
        session: Session,
        t: int,
        kind: str,
        *,
        event: str | None = None,
        key: str = "properties",
        body: Message | None = None,
        **fields: str,
    ) -> Message:
        """A Segment message: ids, `fields`, times, context, then `body` under `key` (properties, traits)."""
        shopper = session.shopper
        message: Message = {"messageId": self.uuid(), "type": kind}
        if event is not None:
            message["event"] = event
        if session.logged_in:
            message["userId"] = shopper.user_id
        message["anonymousId"] = shopper.anonymous_id
        if fields:
            message |= fields
        processed = session.origin is not None and session.origin.processed
        stamp(message, t, self.now_ms, self._rnd, self.dirt, processed)
        message["context"] = session.context
        if body is not None:
            message[key] = body
        return message

    def track(self, session: Session, t: int, event: str, properties: Message) -> Message:
        return self.message(session, t, "track", event=event, body=properties)

    def _page_view(self, session: Session, t: int) -> Message:
        """A page view on the website, a screen in the app."""
        if session.page is not None and self._rnd() < 0.5:
            page = self._category_pages[session.shopper.favourite]
        else:
            page = self.pick(self._pages)
        self.go(session, page)
        if session.origin is not None and session.origin.app:
            return self.message(session, t, "screen", body={"path": page["path"]}, name=page["title"])
        assert session.context is not None
        return self.message(session, t, "page", body=session.context["page"])

    def _search(self, session: Session, t: int) -> Message:
        query = self.pick(self._queries)
        self.go(session, self._search_pages[query])
        return self.track(session, t, "Products Searched", {"query": query})

    def _pick_product(self, session: Session) -> Product:
        r, viewed = self._rnd(), session.viewed
        if viewed and r < 0.3:  # people look at the same product again
            return self.catalog.by_id[viewed[int(r * len(viewed) / 0.3)]]
        products = self.catalog.by_category[session.shopper.favourite] if r < 0.7 else self.catalog.products
        return products[int(self._rnd() * len(products))]

    def _view(self, session: Session, t: int) -> Message:
        product, cart_id = self._pick_product(session), session.shopper.cart_id
        session.viewed.append(product.product_id)
        if len(session.viewed) > RECENT_VIEWS:
            del session.viewed[0]
        self.go(session, product.page)
        if cart_id is None or not self.cart_ids:  # the spec's Product Viewed names no cart
            return self.track(session, t, "Product Viewed", product.props)
        properties = {**product.props, "cart_id": cart_id}
        return self.track(session, t, "Product Viewed", properties)

    def _add(self, session: Session, t: int) -> Message:
        shopper, product = session.shopper, self.catalog.by_id[session.viewed[-1]]
        if shopper.cart_id is None:
            shopper.cart_id = self.uuid()
        quantity = 1 if self._rnd() < 0.85 else 2
        shopper.cart[product.product_id] = shopper.cart.get(product.product_id, 0) + quantity
        shopper.checkout_id = shopper.order_id = None  # a changed cart needs a new checkout
        properties = {**product.props, "quantity": quantity, "cart_id": shopper.cart_id}
        return self.track(session, t, "Product Added", properties)

    def _remove(self, session: Session, t: int) -> Message:
        shopper = session.shopper
        product = self.catalog.by_id[self.pick(list(shopper.cart))]
        quantity = shopper.cart.pop(product.product_id)
        shopper.checkout_id = shopper.order_id = None
        properties = {**product.props, "quantity": quantity, "cart_id": shopper.cart_id}
        return self.track(session, t, "Product Removed", properties)

    def _cart_lines(self, shopper: Shopper) -> tuple[list[Message], float]:
        """The cart as order lines, and its total."""
        lines: list[Message] = []
        for product_id, quantity in shopper.cart.items():
            p = self.catalog.by_id[product_id]
            line: Message = {"product_id": product_id, "sku": p.props["sku"], "name": p.name}
            line |= {"price": p.price, "quantity": quantity, "category": p.category}
            lines.append(line)
        return lines, round(sum(line["price"] * line["quantity"] for line in lines), 2)

    def _cart_viewed(self, session: Session, t: int) -> Message:
        lines, _ = self._cart_lines(session.shopper)
        self.go(session, CART_PAGE)
        return self.track(session, t, "Cart Viewed", {"cart_id": session.shopper.cart_id, "products": lines})

    def _checkout(self, session: Session, t: int) -> Message:
        """Checkout Started: the checkout's id and the id of the order it will complete, as the spec has."""
        shopper = session.shopper
        shopper.checkout_id = self.uuid()
        shopper.order_id = f"o-{self._rng.randbytes(6).hex()}"
        self.go(session, CHECKOUT_PAGE)
        return self.track(session, t, "Checkout Started", self._order_properties(shopper))

    def _order(self, session: Session, t: int) -> Message:
        shopper = session.shopper
        properties = self._order_properties(shopper)
        shopper.cart_id = shopper.checkout_id = shopper.order_id = None  # the next add starts a new cart
        shopper.cart = {}
        shopper.orders += 1
        self.go(session, ORDER_PAGE)
        return self.track(session, t, "Order Completed", properties)

    def _order_properties(self, shopper: Shopper) -> Message:
        """E-commerce v2 properties of the open checkout and its order (`cart_id` if the shop adds it)."""
        lines, total = self._cart_lines(shopper)
        properties: Message = {"checkout_id": shopper.checkout_id, "order_id": shopper.order_id}
        if self.cart_ids:
            properties["cart_id"] = shopper.cart_id
        properties |= {"total": total, "revenue": total, "currency": CURRENCY, "products": lines}
        return properties

    def _identify(self, session: Session, t: int) -> Message:
        """Sign-up (the first time) or login: links the shopper's anonymousId to their userId.

        An `alias` follows every sign-up and a share of the logins, a `group` every login of a shopper
        who buys for a business account.
        """
        shopper = session.shopper
        self.go(session, LOGIN_PAGE if shopper.known else SIGNUP_PAGE)
        if not shopper.known or self._rnd() < ALIAS_ON_LOGIN:
            session.pending.append("alias")
        if shopper.company is not None:
            session.pending.append("group")
        shopper.known = session.logged_in = True
        traits: Message = {"email": shopper.email}
        if shopper.first_name is not None:
            traits["first_name"] = shopper.first_name
        traits |= {
            "locale": shopper.locale,
            "timezone": shopper.timezone,
            "marketing_consent": shopper.consent,
        }
        return self.message(session, t, "identify", key="traits", body=traits)

    def _alias(self, session: Session, t: int) -> Message:
        """analytics.js's `alias(userId)`: the anonymous id (`previousId`) is the user from now on."""
        return self.message(session, t, "alias", previousId=session.shopper.anonymous_id)

    def _group(self, session: Session, t: int) -> Message:
        """analytics.js's `group(groupId, traits)`: the business account the shopper buys for."""
        number = session.shopper.company
        assert number is not None
        group_id, traits = company(number)
        return self.message(session, t, "group", key="traits", body=traits, groupId=group_id)
