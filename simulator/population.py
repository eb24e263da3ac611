"""The simulated shoppers: who they are (region, locale, name, consent, favourite category, device and IP
address, the business account of a few), made on demand.

A shopper's attributes come from a hash of (seed, index), not from the event stream's random generator:
members are created for the first CRM file without shifting the event stream, and a hash costs ~1 us
where a `random.Random()` costs ~10.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field

from simulator.segment import uuid4
from simulator.shop import CATEGORY_NAMES

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
MEMBER_SHARE = 3  # of every 10 shoppers are customers from before the simulation (in the first snapshot)
CONSENT_RATE = 0.85
BUSINESS_RATE = 0.10  # shoppers who buy for a business account (analytics.js `group` after each login)
COMPANIES = 24  # business accounts `g-0001`.., shared by those shoppers
IPV6_RATE = 0.20  # shoppers seen over IPv6; the others over IPv4 (addresses from the documentation ranges)
IPV4_NETS = ("192.0.2", "198.51.100", "203.0.113")
NO_FIRST_NAME_RATE = 0.10  # shoppers without a first name, so emails show the neutral greeting


@dataclass(slots=True)
class Shopper:
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
    order_id: str | None = None  # the order the open checkout will complete (Segment puts it on both)
    ip: str = ""
    company: int | None = None  # business account number, for shoppers who buy for one


def new_shopper(seed: int, index: int) -> Shopper:
    """Shopper `u-<index>` of the simulation seeded `seed` (a member when index % 10 < MEMBER_SHARE)."""
    text = f"lakemail-shopper-{seed}-{index}".encode()
    digest = hashlib.blake2b(text, digest_size=32).digest()
    r = digest[16:]  # each byte uniform in 0..255
    timezone, locale, names = REGIONS[r[0] % len(REGIONS)]
    member = index % 10 < MEMBER_SHARE
    return Shopper(
        user_id=f"u-{index:06d}",
        anonymous_id=uuid4(digest[:16]),
        email=f"shopper{index}@example.com",
        first_name=None if r[1] < 256 * NO_FIRST_NAME_RATE else names[r[2] % len(names)],
        locale=locale,
        timezone=timezone,
        user_agent=USER_AGENTS[r[3] % len(USER_AGENTS)],
        consent=r[4] < 256 * CONSENT_RATE,
        favourite=CATEGORY_NAMES[r[5] % len(CATEGORY_NAMES)],
        known=member,
        orders=r[6] % 9 if member else 0,
        ip=_ip(r[7:12]),
        company=1 + r[12] % COMPANIES if r[13] < 256 * BUSINESS_RATE else None,
    )


COMPANY_WORDS = (
    ("Acme", "Globex", "Initech", "Umbrella", "Hooli", "Vandelay"),
    ("Studio", "Labs", "GmbH", "Ltd"),
)
INDUSTRIES = ("Retail", "Design", "Hospitality", "Software", "Architecture", "Events")
PLANS = ("business", "business_plus")


def company(number: int) -> tuple[str, dict[str, object]]:
    """Business account `number` (1-based) as Segment's `group`: its groupId and traits."""
    first, second = COMPANY_WORDS
    traits: dict[str, object] = {
        "name": f"{first[number % len(first)]} {second[number // len(first) % len(second)]}",
        "industry": INDUSTRIES[number % len(INDUSTRIES)],
        "employees": 5 + (number * 37) % 400,
        "plan": PLANS[number % len(PLANS)],
    }
    return f"g-{number:04d}", traits


def _ip(r: bytes) -> str:
    """An IP address from 5 hash bytes: IPv4 in the documentation ranges, or IPv6 in 2001:db8::/32."""
    if r[0] < 256 * IPV6_RATE:
        return f"2001:db8:{r[1]:x}{r[2]:02x}:{r[3]:x}::{r[4]:x}"
    return f"{IPV4_NETS[r[1] % len(IPV4_NETS)]}.{1 + r[2] % 254}"


class Population:
    """Shoppers `u-000001`..`u-<users>`, each made on first sight and kept (carts, orders, CRM tier)."""

    def __init__(self, seed: int, users: int) -> None:
        if users < 1:
            raise ValueError("users must be at least 1")
        self.seed, self.users = seed, users
        self._shoppers: dict[int, Shopper] = {}

    def get(self, index: int) -> Shopper:
        """Shopper number `index` (1-based)."""
        shopper = self._shoppers.get(index)
        if shopper is None:
            shopper = self._shoppers[index] = new_shopper(self.seed, index)
        return shopper

    def add_members(self) -> None:
        """Make every member now (they are in the first CRM file, before their first visit)."""
        for index in range(1, self.users + 1):
            if index % 10 < MEMBER_SHARE:
                self.get(index)

    def __iter__(self) -> Iterator[Shopper]:
        """The shoppers made so far, in the order they were made."""
        return iter(self._shoppers.values())
