"""Deterministic shopper simulator: Segment-spec NDJSON lines from realistic sessions, with controlled dirt.

Pure: no file or network I/O. The same seed and the same sequence of `step` and `reference_files` calls
give byte-identical output. Time is integer milliseconds since the epoch; the event stream's randomness
comes from one `random.Random(seed)`; the catalog, its updates and each shopper have their own, so
creating CRM members up front does not shift the event stream. The hot path avoids `random.choice` and
friends (several times slower than `random()`), because `run_simulation` must write >100k lines/s.

Besides events the simulator keeps the shop's reference data: a CRM snapshot (`customers/`) and catalog
updates (`catalog/`), both with `updated_at`, landed every few simulated minutes; shoppers see the new
prices and stock from the next step on (only products in stock are added to carts).
"""

from __future__ import annotations

import csv
import hashlib
import io
import random
import time
from bisect import bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from itertools import accumulate
from typing import Any, Literal, TypeVar
from urllib.parse import quote_plus

import orjson

T = TypeVar("T")
LineKind = Literal["ok", "duplicate", "malformed"]
Message = dict[str, Any]
MALFORMED_REASONS: tuple[str, ...] = (
    "invalid_json",
    "invalid_utf8",
    "missing_field",
    "wrong_type",
    "unknown_type",
    "timestamp_out_of_range",
    "line_too_long",
)
MAX_LINE_BYTES = 32 * 1024  # Segment's limit for one message; longer lines are quarantined
SHOP = "https://shop.example"
CURRENCY = "EUR"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
HELD_DUPLICATES = 256  # ok lines of the previous step that a later duplicate may repeat
RECENT_VIEWS = 6
CATEGORIES: dict[str, tuple[str, ...]] = {
    "shoes": ("Runner", "Sneaker", "Boot", "Loafer", "Sandal"),
    "outerwear": ("Parka", "Rain Jacket", "Trench Coat", "Fleece", "Gilet"),
    "tops": ("Tee", "Shirt", "Hoodie", "Sweater", "Polo"),
    "bottoms": ("Jeans", "Chinos", "Shorts", "Joggers", "Skirt"),
    "bags": ("Backpack", "Tote", "Duffel", "Crossbody", "Wallet"),
    "accessories": ("Beanie", "Scarf", "Sunglasses", "Belt", "Watch"),
    "home": ("Mug", "Blanket", "Candle", "Lamp", "Cushion"),
    "beauty": ("Face Cream", "Shampoo", "Lip Balm", "Perfume", "Soap"),
}
PRICES = {
    "shoes": 49,
    "outerwear": 69,
    "tops": 12,
    "bottoms": 29,
    "bags": 19,
    "accessories": 9,
    "home": 7,
    "beauty": 5,
}
ADJECTIVES = ("Alpine", "Urban", "Classic", "Coastal", "Nordic", "Everyday", "Midnight", "Trail", "Vintage")
COLOURS = ("Navy", "Black", "Sand", "Olive", "Rust", "Grey", "Cream", "Forest")
BRANDS = ("Northwind", "Lumen", "Kiso", "Brava", "Oakline", "Veld")
# (IANA time zone, locale, first names): a mix of regions, some names outside ASCII.
REGIONS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("Europe/Berlin", "de-DE", ("Jürgen", "Anna", "Lena", "Felix", "Jonas")),
    ("America/New_York", "en-US", ("Emily", "Jacob", "Ava", "Noah", "Mia")),
    ("Asia/Tokyo", "ja-JP", ("Yuki", "Haruto", "Sakura", "Ren", "Aoi")),
    ("Europe/London", "en-GB", ("Oliver", "Amelia", "Harry", "Isla", "George")),
    ("Europe/Paris", "fr-FR", ("Zoé", "Louis", "Chloé", "Hugo", "Léa")),
    ("America/Los_Angeles", "en-US", ("Sofia", "Liam", "Ethan", "Chloe", "Mateo")),
    ("Australia/Sydney", "en-AU", ("Charlotte", "Jack", "Ruby", "William", "Matilda")),
    ("America/Sao_Paulo", "pt-BR", ("João", "Maria", "Helena", "Miguel", "Alice")),
)
USER_AGENTS = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 15; Pixel 9) AppleWebKit/537.36 Chrome/131.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/131.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_7) AppleWebKit/605.1.15 Version/18.1 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
)
# A session's next action once it has landed, by relative weight.
ACTIONS = ("view", "page", "search", "add", "remove", "cart", "login", "checkout", "end")
ACTION_CUM_WEIGHTS = tuple(accumulate((40, 12, 10, 12, 3, 5, 4, 5, 9)))
ORDER_CHANCE = 0.35  # chance, at each event while a checkout is open, that the order completes
NO_SENT_AT_RATE = 0.02  # valid events without sentAt / receivedAt (both are optional)
_MILLIS = tuple(f".{milli:03d}Z" for milli in range(1000))
CATALOG_EVERY_MS = 5 * 60_000  # catalog updates land every 5 simulated minutes
CRM_EVERY_MS = 10 * 60_000  # the CRM exports new sign-ups and tier changes every 10 simulated minutes
MEMBER_SHARE = 3  # of every 10 shoppers are customers from before the simulation (in the first snapshot)
CATEGORY_NAMES = tuple(CATEGORIES)
CONSENT_RATE = 0.85
NO_FIRST_NAME_RATE = 0.10  # shoppers without a first name, so emails show the neutral greeting
TIERS = ((6, "gold"), (2, "silver"), (0, "bronze"))  # (orders at least, loyalty tier)
RANDOM_CATALOG_CHANGES = 4  # per update, besides one restock, one sell-out and one markdown
CUSTOMER_COLUMNS = (
    "user_id",
    "email",
    "first_name",
    "locale",
    "timezone",
    "loyalty_tier",
    "marketing_consent",
    "updated_at",
)
CATALOG_COLUMNS = ("product_id", "name", "category", "price", "currency", "stock", "url", "image_url")


@dataclass(frozen=True)
class Dirt:
    """Rates of injected imperfections: duplicates and malformed per line, late and skew per ok event."""

    duplicate_rate: float = 0.005
    malformed_rate: float = 0.002
    late_rate: float = 0.01
    skew_rate: float = 0.05

    def __post_init__(self) -> None:
        """Reject rates that are not fractions, or pairs that cannot both happen."""
        for name in ("duplicate_rate", "malformed_rate", "late_rate", "skew_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1")
        if self.duplicate_rate + self.malformed_rate > 1 or self.late_rate + self.skew_rate > 1:
            raise ValueError("duplicate+malformed and late+skew rates must each sum to at most 1")

    @classmethod
    def none(cls) -> Dirt:
        """Perfectly clean output."""
        return cls(duplicate_rate=0.0, malformed_rate=0.0, late_rate=0.0, skew_rate=0.0)


@dataclass(frozen=True, slots=True)
class SimLine:
    """One NDJSON line (no newline), what it is, and for a malformed line why."""

    data: bytes
    kind: LineKind
    reason: str | None = None
    message_id: str | None = None


@dataclass(frozen=True)
class ReferenceFile:
    """One file for the `customers/` or `catalog/` landing folder: where it goes, its format and bytes."""

    folder: Literal["customers", "catalog"]
    suffix: Literal[".ndjson", ".csv"]
    data: bytes
    rows: int


@dataclass(slots=True)
class _Shopper:
    user_id: str
    anonymous_id: str
    email: str
    first_name: str | None
    locale: str
    timezone: str
    user_agent: str
    consent: bool
    favourite: str
    known: bool = False  # has signed up before: the next identify is a login
    orders: int = 0  # completed orders, before the simulation (members) and during it
    crm_tier: str | None = None  # loyalty tier in the last CRM file that listed the shopper
    active: bool = False  # in a session now
    cart_id: str | None = None
    cart: dict[str, int] = field(default_factory=dict)  # product_id -> quantity
    checkout_id: str | None = None


@dataclass(slots=True)
class _Session:
    shopper: _Shopper
    slot: int = -1  # index in ShopperSimulator._sessions
    logged_in: bool = False
    page: dict[str, str] | None = None
    viewed: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Product:
    product_id: str
    name: str
    category: str
    price: float
    in_stock: bool
    props: dict[str, Any]  # e-commerce v2 properties with quantity 1; shared, so never mutated
    page: dict[str, str]


def make_catalog(seed: int, size: int = 200) -> list[dict[str, Any]]:
    """A product catalog (landing `catalog/` rows), deterministic under `seed`."""
    rng = random.Random(f"lakemail-catalog-{seed}")
    categories = list(CATEGORIES)
    rows: list[dict[str, Any]] = []
    for index in range(size):
        category = categories[index % len(categories)]
        product_id = f"p-{index + 1:05d}"
        low = PRICES[category]
        name = f"{rng.choice(ADJECTIVES)} {rng.choice(CATEGORIES[category])}, {rng.choice(COLOURS)}"
        price = round(rng.randint(low, low * 4) + rng.choice((0.0, 0.5, 0.95, 0.99)), 2)
        stock = 0 if rng.random() < 0.1 else rng.randint(1, 250)
        url, image_url = f"{SHOP}/p/{product_id}", f"{SHOP}/img/{product_id}.jpg"
        rows.append(
            {"product_id": product_id, "name": name, "category": category, "price": price}
            | {"currency": CURRENCY, "stock": stock, "url": url, "image_url": image_url}
        )
    return rows


@lru_cache(maxsize=8192)
def _iso_second(second: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))


def iso_ms(epoch_ms: int) -> str:
    """ISO-8601 UTC with milliseconds, e.g. `2026-11-22T10:00:00.123Z`."""
    return _iso_second(epoch_ms // 1000) + _MILLIS[epoch_ms % 1000]


def to_epoch_ms(moment: datetime) -> int:
    """Milliseconds since the epoch of a timezone-aware datetime (integer arithmetic, no float rounding)."""
    if moment.tzinfo is None:
        raise ValueError("datetimes must be timezone-aware (UTC)")
    return (moment - EPOCH) // timedelta(milliseconds=1)


def _page(path: str, title: str) -> dict[str, str]:
    return {"url": f"{SHOP}{path}", "path": path, "title": title}


def _product(row: dict[str, Any]) -> _Product:
    pid, category, name, price = row["product_id"], row["category"], row["name"], row["price"]
    props = {
        "product_id": pid,
        "sku": f"SKU-{category[:3].upper()}-{pid[2:]}",
        "category": category,
        "name": name,
        "brand": BRANDS[int(pid[2:]) % len(BRANDS)],
        "price": price,
        "currency": row["currency"],
        "url": row["url"],
        "image_url": row["image_url"],
        "quantity": 1,
    }
    page = {"url": row["url"], "path": f"/p/{pid}", "title": name}
    return _Product(pid, name, category, price, row["stock"] > 0, props, page)


_CART_PAGE = _page("/cart", "Your cart")
_CHECKOUT_PAGE = _page("/checkout", "Checkout")
_ORDER_PAGE = _page("/checkout/thank-you", "Thank you for your order")
_LOGIN_PAGE = _page("/login", "Log in")
_SIGNUP_PAGE = _page("/signup", "Create your account")


class ShopperSimulator:
    """A pool of shoppers whose sessions emit Segment messages; `step` advances the simulated clock."""

    def __init__(self, *, users: int, seed: int = 0, start: datetime, dirt: Dirt | None = None) -> None:
        """Shoppers `u-000001`.. (created on first visit) and the catalog; the clock starts at `start`."""
        if users < 1:
            raise ValueError("users must be at least 1")
        self.users = users
        self.seed = seed
        self.dirt = dirt if dirt is not None else Dirt()
        self.catalog = make_catalog(seed)
        self._rng = random.Random(seed)
        self._rnd = self._rng.random
        self._now_ms = to_epoch_ms(start)
        self._products = [_product(row) for row in self.catalog]
        self._by_id = {p.product_id: p for p in self._products}
        self._by_category = {c: [p for p in self._products if p.category == c] for c in CATEGORIES}
        self._start_ms = self._now_ms
        self._base_prices = {row["product_id"]: row["price"] for row in self.catalog}
        self._catalog_rng = random.Random(f"lakemail-catalog-updates-{seed}")
        self._next_catalog_ms: int | None = None  # None: the whole catalog is still to be landed
        self._next_crm_ms: int | None = None  # None: the members are still to be landed
        self._landed = {"customers": 0, "catalog": 0}  # reference files so far: every other one is CSV
        self._shoppers: dict[int, _Shopper] = {}
        self._sessions: list[_Session] = []
        self._target_sessions = max(1, min(users // 3, 2000))
        self._held: list[SimLine] = []
        self._queries = [*CATEGORIES, *(noun.lower() for nouns in CATEGORIES.values() for noun in nouns)]
        self._search_pages = {q: _page(f"/search?q={quote_plus(q)}", f"Search: {q}") for q in self._queries}
        self._pages = [_page("/", "Home"), _page("/sale", "Sale"), _page("/new", "New in")]
        self._category_pages = {c: _page(f"/c/{c}", c.title()) for c in CATEGORIES}
        self._pages += self._category_pages.values()
        self._builders: dict[str, Callable[[_Session, int], Message]] = {
            "view": self._view,
            "page": self._page_view,
            "search": self._search,
            "add": self._add,
            "remove": self._remove,
            "cart": self._cart_viewed,
            "login": self._identify,
            "checkout": self._checkout,
            "order": self._order,
        }

    def step(self, now: datetime, n: int) -> list[SimLine]:
        """Exactly `n` lines of activity between the previous `now` and this one (late ones excepted)."""
        now_ms = to_epoch_ms(now)
        if now_ms < self._now_ms or n < 0:
            raise ValueError("now must not go backwards and n must not be negative")
        previous, self._now_ms = self._now_ms, now_ms
        scale, rnd, dumps = (now_ms - previous) / max(n, 1), self._rnd, orjson.dumps
        bad_below = self.dirt.malformed_rate
        dirty_below = bad_below + self.dirt.duplicate_rate
        out: list[SimLine] = []
        ok: list[SimLine] = []
        for i in range(n):
            t = previous + int((i + rnd()) * scale)
            r = rnd()
            if r < dirty_below:
                extra = self._malformed(t) if r < bad_below else self._duplicate(ok)
                if extra is not None:
                    out.append(extra)
                    continue
            message = self._next_message(t)
            line = SimLine(dumps(message), "ok", None, message["messageId"])
            ok.append(line)
            out.append(line)
        if ok:
            self._held = ok[-HELD_DUPLICATES:]
        return out

    def _pick(self, items: Sequence[T]) -> T:
        """A uniform choice (`random.choice` is several times slower than this)."""
        return items[int(self._rnd() * len(items))]

    def _duplicate(self, ok: list[SimLine]) -> SimLine | None:
        """A repeat of an earlier ok line: held back from an earlier step, or from this one."""
        if self._held and (not ok or self._rnd() < 0.5):
            original = self._pick(self._held)
        elif ok:
            original = self._pick(ok)
        else:
            return None
        return SimLine(original.data, "duplicate", None, original.message_id)

    def _next_message(self, t: int) -> Message:
        """The next event of some session (a session that ends gives way to another)."""
        while True:
            session = self._pick_session()
            action = self._choose(session)
            if action != "end":
                return self._builders[action](session, t)
            self._end_session(session)

    def _shopper(self, index: int) -> _Shopper:
        shopper = self._shoppers.get(index)
        if shopper is None:
            shopper = self._shoppers[index] = self._new_shopper(index)
        return shopper

    def _new_shopper(self, index: int) -> _Shopper:
        # Attributes from a hash of (seed, index), not self._rng: members are created for the first CRM
        # file without shifting the event stream, and a hash costs ~1 us where a Random() costs ~10.
        text = f"lakemail-shopper-{self.seed}-{index}".encode()
        digest = hashlib.blake2b(text, digest_size=32).digest()
        r = digest[16:]  # each byte uniform in 0..255
        timezone, locale, names = REGIONS[r[0] % len(REGIONS)]
        member = index % 10 < MEMBER_SHARE
        return _Shopper(
            user_id=f"u-{index:06d}",
            anonymous_id=_uuid4(digest[:16]),
            email=f"shopper{index}@example.com",
            first_name=None if r[1] < 256 * NO_FIRST_NAME_RATE else names[r[2] % len(names)],
            locale=locale,
            timezone=timezone,
            user_agent=USER_AGENTS[r[3] % len(USER_AGENTS)],
            consent=r[4] < 256 * CONSENT_RATE,
            favourite=CATEGORY_NAMES[r[5] % len(CATEGORY_NAMES)],
            known=member,
            orders=r[6] % 9 if member else 0,
        )

    def _pick_session(self) -> _Session:
        """An active session, or a new one for an idle shopper while fewer than the target run."""
        sessions = self._sessions
        if not sessions or (len(sessions) < self._target_sessions and self._rnd() < 0.3):
            for _ in range(8):
                shopper = self._shopper(1 + int(self._rnd() * self.users))
                if not shopper.active:
                    shopper.active = True
                    session = _Session(shopper, slot=len(sessions))
                    sessions.append(session)
                    return session
        return sessions[int(self._rnd() * len(sessions))]

    def _end_session(self, session: _Session) -> None:
        last = self._sessions.pop()
        if last is not session:
            self._sessions[session.slot] = last
            last.slot = session.slot
        session.shopper.active = False

    def _choose(self, session: _Session) -> str:
        """The session's next action, given what it and its shopper's cart allow."""
        if session.page is None:
            return "page"
        shopper = session.shopper
        if shopper.checkout_id is not None and self._rnd() < ORDER_CHANCE:
            return "order" if session.logged_in else "login"
        action = ACTIONS[bisect_right(ACTION_CUM_WEIGHTS, self._rnd() * ACTION_CUM_WEIGHTS[-1])]
        if action in ("remove", "cart", "checkout") and not shopper.cart:
            return "view"
        if action == "add" and not (session.viewed and self._by_id[session.viewed[-1]].in_stock):
            return "view"
        if action == "checkout" and not session.logged_in:
            return "login"
        if action == "login" and session.logged_in:
            return "view"
        return action

    def _uuid(self) -> str:
        """A random (version 4 shaped) UUID string from the seeded RNG."""
        return _uuid4(self._rng.randbytes(16))

    def _message(
        self, session: _Session, t: int, kind: str, event: str | None, key: str, body: Message
    ) -> Message:
        """A Segment message: ids, times, context, then `body` under `key` (properties or traits)."""
        shopper = session.shopper
        message: Message = {"messageId": self._uuid(), "type": kind}
        if event is not None:
            message["event"] = event
        if session.logged_in:
            message["userId"] = shopper.user_id
        message["anonymousId"] = shopper.anonymous_id
        self._stamp(message, t)
        message["context"] = {
            "locale": shopper.locale,
            "timezone": shopper.timezone,
            "userAgent": shopper.user_agent,
            "page": session.page,
        }
        message[key] = body
        return message

    def _stamp(self, message: Message, t: int) -> None:
        """timestamp / sentAt / receivedAt of an event that happened at `t`, late or skewed by the dirt."""
        rnd, dirt, iso = self._rnd, self.dirt, _iso_second
        r, sent = rnd(), min(t + int(rnd() * 1_500), self._now_ms)
        if r < dirt.late_rate:  # buffered on the device: happened up to 10 min ago, sent now
            message["timestamp"] = iso_ms(t - 1_000 - int(rnd() * 599_000))
            message["sentAt"] = message["receivedAt"] = iso_ms(t)
        elif r < dirt.late_rate + dirt.skew_rate:  # client clock off: receivedAt right, the rest shifted
            skew = (1_000 + int(rnd() * 299_000)) * (1 if rnd() < 0.5 else -1)
            message["timestamp"] = iso_ms(t + skew)
            message["sentAt"] = iso_ms(sent + skew)
            message["receivedAt"] = iso_ms(sent)
        elif r > 1.0 - NO_SENT_AT_RATE:
            message["timestamp"] = iso_ms(t)
        else:  # the common case, with iso_ms inlined
            message["timestamp"] = iso(t // 1000) + _MILLIS[t % 1000]
            message["sentAt"] = message["receivedAt"] = iso(sent // 1000) + _MILLIS[sent % 1000]

    def _track(self, session: _Session, t: int, event: str, properties: Message) -> Message:
        return self._message(session, t, "track", event, "properties", properties)

    def _page_view(self, session: _Session, t: int) -> Message:
        if session.page is not None and self._rnd() < 0.5:
            session.page = self._category_pages[session.shopper.favourite]
        else:
            session.page = self._pick(self._pages)
        return self._message(session, t, "page", None, "properties", session.page)

    def _search(self, session: _Session, t: int) -> Message:
        query = self._pick(self._queries)
        session.page = self._search_pages[query]
        return self._track(session, t, "Products Searched", {"query": query})

    def _pick_product(self, session: _Session) -> _Product:
        r, viewed = self._rnd(), session.viewed
        if viewed and r < 0.3:  # people look at the same product again
            return self._by_id[viewed[int(r * len(viewed) / 0.3)]]
        products = self._by_category[session.shopper.favourite] if r < 0.7 else self._products
        return products[int(self._rnd() * len(products))]

    def _view(self, session: _Session, t: int) -> Message:
        product, cart_id = self._pick_product(session), session.shopper.cart_id
        session.viewed.append(product.product_id)
        if len(session.viewed) > RECENT_VIEWS:
            del session.viewed[0]
        session.page = product.page
        properties = product.props if cart_id is None else {**product.props, "cart_id": cart_id}
        return self._track(session, t, "Product Viewed", properties)

    def _add(self, session: _Session, t: int) -> Message:
        shopper, product = session.shopper, self._by_id[session.viewed[-1]]
        if shopper.cart_id is None:
            shopper.cart_id = self._uuid()
        quantity = 1 if self._rnd() < 0.85 else 2
        shopper.cart[product.product_id] = shopper.cart.get(product.product_id, 0) + quantity
        shopper.checkout_id = None  # a changed cart needs a new checkout
        properties = {**product.props, "quantity": quantity, "cart_id": shopper.cart_id}
        return self._track(session, t, "Product Added", properties)

    def _remove(self, session: _Session, t: int) -> Message:
        shopper = session.shopper
        product = self._by_id[self._pick(list(shopper.cart))]
        quantity = shopper.cart.pop(product.product_id)
        shopper.checkout_id = None
        properties = {**product.props, "quantity": quantity, "cart_id": shopper.cart_id}
        return self._track(session, t, "Product Removed", properties)

    def _cart_lines(self, shopper: _Shopper) -> tuple[list[Message], float]:
        """The cart as order lines, and its total."""
        lines: list[Message] = []
        for product_id, quantity in shopper.cart.items():
            p = self._by_id[product_id]
            line: Message = {"product_id": product_id, "name": p.name, "price": p.price, "quantity": quantity}
            line["category"] = p.category
            lines.append(line)
        return lines, round(sum(line["price"] * line["quantity"] for line in lines), 2)

    def _cart_viewed(self, session: _Session, t: int) -> Message:
        lines, _ = self._cart_lines(session.shopper)
        session.page = _CART_PAGE
        return self._track(session, t, "Cart Viewed", {"cart_id": session.shopper.cart_id, "products": lines})

    def _checkout(self, session: _Session, t: int) -> Message:
        shopper = session.shopper
        lines, total = self._cart_lines(shopper)
        shopper.checkout_id = self._uuid()
        session.page = _CHECKOUT_PAGE
        properties: Message = {
            "checkout_id": shopper.checkout_id,
            "cart_id": shopper.cart_id,
            "total": total,
            "currency": CURRENCY,
            "products": lines,
        }
        return self._track(session, t, "Checkout Started", properties)

    def _order(self, session: _Session, t: int) -> Message:
        shopper = session.shopper
        lines, total = self._cart_lines(shopper)
        properties: Message = {
            "order_id": f"o-{self._rng.randbytes(6).hex()}",
            "checkout_id": shopper.checkout_id,
            "cart_id": shopper.cart_id,
            "total": total,
            "revenue": total,
            "currency": CURRENCY,
            "products": lines,
        }
        shopper.cart_id = shopper.checkout_id = None  # the next add starts a new cart
        shopper.cart = {}
        shopper.orders += 1
        session.page = _ORDER_PAGE
        return self._track(session, t, "Order Completed", properties)

    def _identify(self, session: _Session, t: int) -> Message:
        """Sign-up (the first time) or login: links the shopper's anonymousId to their userId."""
        shopper = session.shopper
        session.page = _LOGIN_PAGE if shopper.known else _SIGNUP_PAGE
        shopper.known = session.logged_in = True
        traits: Message = {"email": shopper.email}
        if shopper.first_name is not None:
            traits["first_name"] = shopper.first_name
        traits |= {
            "locale": shopper.locale,
            "timezone": shopper.timezone,
            "marketing_consent": shopper.consent,
        }
        return self._message(session, t, "identify", None, "traits", traits)

    def reference_files(self) -> list[ReferenceFile]:
        """Reference files due at the simulator's clock (the end of the last step), at most one per folder.

        The first call gives the whole catalog and the CRM members; later calls give catalog updates every
        CATALOG_EVERY_MS and CRM rows of new sign-ups and tier changes every CRM_EVERY_MS. Rows carry the
        clock as `updated_at`; shoppers see catalog changes from the next step on.
        """
        now, stamp = self._now_ms, iso_ms(self._now_ms)
        files: list[ReferenceFile] = []
        if self._next_catalog_ms is None or now >= self._next_catalog_ms:
            if self._next_catalog_ms is None:
                products = [{**row, "updated_at": stamp} for row in self.catalog]
            else:
                products = self._update_catalog(stamp)
            self._next_catalog_ms = _next_due(self._start_ms, now, CATALOG_EVERY_MS)
            files.append(self._reference_file("catalog", products, (*CATALOG_COLUMNS, "updated_at")))
        if self._next_crm_ms is None or now >= self._next_crm_ms:
            if self._next_crm_ms is None:
                for index in range(1, self.users + 1):
                    if index % 10 < MEMBER_SHARE:
                        self._shopper(index)
            self._next_crm_ms = _next_due(self._start_ms, now, CRM_EVERY_MS)
            customers = self._crm_rows(stamp)
            if customers:
                files.append(self._reference_file("customers", customers, CUSTOMER_COLUMNS))
        return files

    def _reference_file(
        self, folder: Literal["customers", "catalog"], rows: list[Message], columns: Sequence[str]
    ) -> ReferenceFile:
        as_csv = self._landed[folder] % 2 == 1  # every other file, so both formats are exercised
        self._landed[folder] += 1
        data = _csv_bytes(rows, columns) if as_csv else b"".join(orjson.dumps(row) + b"\n" for row in rows)
        return ReferenceFile(folder, ".csv" if as_csv else ".ndjson", data, len(rows))

    def _crm_rows(self, stamp: str) -> list[Message]:
        """CRM rows of signed-up shoppers not yet exported, or whose loyalty tier changed since."""
        rows: list[Message] = []
        for shopper in self._shoppers.values():
            tier = next(name for least, name in TIERS if shopper.orders >= least)
            if shopper.known and tier != shopper.crm_tier:
                shopper.crm_tier = tier
                rows.append(_crm_row(shopper, tier, stamp))
        return sorted(rows, key=lambda row: row["user_id"])

    def _update_catalog(self, stamp: str) -> list[Message]:
        """One round of changes: a restock, a sell-out, a markdown of 12-40 % and a few random ones."""
        rng, rows, base = self._catalog_rng, self.catalog, self._base_prices
        sold_out = [i for i, row in enumerate(rows) if row["stock"] == 0]
        in_stock = [i for i, row in enumerate(rows) if row["stock"] > 0]
        full_price = [i for i, row in enumerate(rows) if row["price"] >= base[row["product_id"]]]
        changed: dict[int, Message] = {}
        for candidates, change in ((sold_out, _restock), (in_stock, _sell_out), (full_price, _markdown)):
            free = [i for i in candidates if i not in changed]
            if free:
                i = rng.choice(free)
                changed[i] = change(rows[i], base[rows[i]["product_id"]], rng)
        for _ in range(RANDOM_CATALOG_CHANGES):
            i = rng.randrange(len(rows))
            if i not in changed:
                changed[i] = rng.choice((_reprice, _sell_some))(rows[i], base[rows[i]["product_id"]], rng)
        updates: list[Message] = []
        for i in sorted(changed):
            if changed[i] != rows[i]:
                rows[i] = changed[i]
                self._set_product(changed[i])
                updates.append({**changed[i], "updated_at": stamp})
        return updates

    def _set_product(self, row: Message) -> None:
        """Shoppers see `row` from now on (views, carts, orders)."""
        product = _product(row)
        old = self._by_id[product.product_id]
        self._by_id[product.product_id] = product
        for products in (self._products, self._by_category[product.category]):
            products[products.index(old)] = product

    def _malformed(self, t: int) -> SimLine:
        """A line that is bad in exactly one way, for a randomly chosen reason."""
        reason = self._pick(MALFORMED_REASONS)
        session = _Session(self._shopper(1 + int(self._rnd() * self.users)))
        product = self._pick(self._products)
        session.page = product.page
        message = self._track(session, t, "Product Viewed", dict(product.props))
        message["sentAt"] = message["receivedAt"] = iso_ms(t)  # never late, skewed or without them
        message["timestamp"] = iso_ms(t)
        data = _MANGLERS[reason](message, self._rng, t)
        message_id = None if reason == "invalid_json" else message.get("messageId")
        return SimLine(data, "malformed", reason, message_id)


def _uuid4(raw: bytes) -> str:
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{h[16:20]}-{h[20:]}"


def _next_due(start_ms: int, now_ms: int, every_ms: int) -> int:
    """The first time after `now_ms` on the grid of `every_ms` steps from `start_ms`."""
    return start_ms + ((now_ms - start_ms) // every_ms + 1) * every_ms


def _crm_row(shopper: _Shopper, tier: str, stamp: str) -> Message:
    email = shopper.email
    if int(shopper.user_id[2:]) % 20 == 7:  # CRM exports are not tidy: the reader normalises this back
        local, domain = email.split("@")
        email = f" {local}@{domain.upper()} "
    row: Message = {"user_id": shopper.user_id, "email": email}
    if shopper.first_name is not None:
        row["first_name"] = shopper.first_name
    row |= {"locale": shopper.locale, "timezone": shopper.timezone, "loyalty_tier": tier}
    return row | {"marketing_consent": shopper.consent, "updated_at": stamp}


def _csv_bytes(rows: list[Message], columns: Sequence[str]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")  # as spreadsheet exports write them
    writer.writerow(columns)
    writer.writerows([_csv_cell(row.get(column)) for column in columns] for row in rows)
    return out.getvalue().encode()


def _csv_cell(value: object) -> object:
    if isinstance(value, bool):
        return "yes" if value else "no"  # a CSV-only spelling the reader accepts
    return "" if value is None else value


def _restock(row: Message, base: float, rng: random.Random) -> Message:
    return {**row, "stock": rng.randint(5, 120)}


def _sell_out(row: Message, base: float, rng: random.Random) -> Message:
    return {**row, "stock": 0}


def _markdown(row: Message, base: float, rng: random.Random) -> Message:
    # Only full-price products are marked down, so 12-40 % off the base is >= 10 % off the price.
    return {**row, "price": round(base * rng.uniform(0.60, 0.88), 2)}


def _reprice(row: Message, base: float, rng: random.Random) -> Message:
    # Prices move around the base price (end of a sale, a small discount, a rise), so they never drift.
    return {**row, "price": round(base * rng.choice((0.95, 1.0, 1.1, 1.2)), 2)}


def _sell_some(row: Message, base: float, rng: random.Random) -> Message:
    return {**row, "stock": max(0, row["stock"] - rng.randint(1, 15))}


def _truncated(message: Message, rng: random.Random, t: int) -> bytes:
    data = orjson.dumps(message)
    cut = rng.randrange(1, len(data) - 1)
    while data[cut] & 0xC0 == 0x80:  # never split a UTF-8 sequence: the line stays valid UTF-8
        cut -= 1
    return data[:cut]


def _bad_utf8(message: Message, rng: random.Random, t: int) -> bytes:
    data = orjson.dumps(message)
    at = data.index(b'"userAgent":"') + len(b'"userAgent":"')
    return data[:at] + b"\xff\xfe" + data[at:]


def _missing_field(message: Message, rng: random.Random, t: int) -> bytes:
    if rng.random() < 0.5:
        del message["messageId"]
    else:
        message.pop("userId", None)
        del message["anonymousId"]
    return orjson.dumps(message)


def _wrong_type(message: Message, rng: random.Random, t: int) -> bytes:
    message["properties"] = "colour=navy;size=M" if rng.random() < 0.5 else [message["properties"]]
    return orjson.dumps(message)


def _unknown_type(message: Message, rng: random.Random, t: int) -> bytes:
    message["type"] = "bogus"
    return orjson.dumps(message)


def _future(message: Message, rng: random.Random, t: int) -> bytes:
    # sentAt and receivedAt stay true, so the skew-corrected event time is 3 days ahead as well.
    message["timestamp"] = iso_ms(t + 3 * 86_400_000 + rng.randrange(3_600_000))
    return orjson.dumps(message)


def _too_long(message: Message, rng: random.Random, t: int) -> bytes:
    message["properties"]["description"] = "lorem ipsum " * (2_800 + rng.randrange(400))
    return orjson.dumps(message)


_MANGLERS: dict[str, Callable[[Message, random.Random, int], bytes]] = {
    "invalid_json": _truncated,
    "invalid_utf8": _bad_utf8,
    "missing_field": _missing_field,
    "wrong_type": _wrong_type,
    "unknown_type": _unknown_type,
    "timestamp_out_of_range": _future,
    "line_too_long": _too_long,
}
_CART_PAGE = _page("/cart", "Your cart")
_CHECKOUT_PAGE = _page("/checkout", "Checkout")
_ORDER_PAGE = _page("/checkout/thank-you", "Thank you for your order")
_LOGIN_PAGE = _page("/login", "Log in")
_SIGNUP_PAGE = _page("/signup", "Create your account")
