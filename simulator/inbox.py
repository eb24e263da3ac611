"""Simulated shoppers read their email (#19): under `lakemail up` they open the emails the sandbox
delivered, click their links through the collector's click redirect, and some of them buy.

What a shopper does with one email is decided by a hash of (seed, send_id), never by when it is read:
the same seed gives the same responses to the same emails. Of the emails delivered since the reader
started, a share is opened, a share of those clicked (a GET of one of its `/c/<token>` links with the
shopper's own browser, some seconds after delivery, so the collector counts it), and a share of the
clickers arrive at the shop from the email and order (`ShopperSimulator.from_email`). A link scanner
checks a share of the emails at once with a `HEAD`, which the collector records as a bot and does not
count. The shopper is read from the address (`shopper<N>@example.com`, the simulator's own); an email to
anyone else is left alone.

Bounded: one look at the newest POLL_LIMIT messages every POLL_SECONDS, at most MAX_PENDING clicks
waiting, the ids of the last MAX_SEEN emails remembered.
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
import logging
import re
import threading
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx

from simulator.population import new_shopper

log = logging.getLogger(__name__)
POLL_SECONDS = 3.0
POLL_LIMIT = 100
MAX_PENDING = 2_000
MAX_SEEN = 20_000
CLICK_LINK = re.compile(r"https?://[^\s\"'<>]+/c/[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
ADDRESS = re.compile(r"shopper(\d+)@example\.com")


@dataclass(frozen=True)
class Response:
    """How shoppers respond to an email: the shares that open, click (of those who open), buy (of those
    who click), and that a link scanner checks; how long after delivery a shopper clicks (seconds)."""

    opens: float = 0.45
    clicks: float = 0.4
    buys: float = 0.35
    scanned: float = 0.1
    delay: tuple[float, float] = (15.0, 90.0)  # after the collector's 10 s "too soon" for a person


@dataclass(frozen=True)
class Reaction:
    """What one shopper does with one email: the link they click (None: they do not), whether a scanner
    checks it first, whether they buy, and when (seconds after the email is seen)."""

    send_id: str
    shopper: int
    kind: str
    click: str | None
    scan: str | None
    buys: bool
    after: float


def _uniforms(seed: int, send_id: str, n: int) -> list[float]:
    digest = hashlib.blake2b(f"lakemail-inbox-{seed}-{send_id}".encode(), digest_size=8 * n).digest()
    return [int.from_bytes(digest[8 * i : 8 * i + 8], "big") / 2**64 for i in range(n)]


def links(message: dict[str, Any]) -> list[str]:
    """The click-redirect links of a message, in order, each once (the text part, else the HTML)."""
    for part in (message.get("text"), message.get("html")):
        found = CLICK_LINK.findall(part or "")
        if found:
            return list(dict.fromkeys(found))
    return []


def react(seed: int, message: dict[str, Any], response: Response) -> Reaction | None:
    """What the shopper does with `message` (a sandbox message), or None: not the simulator's shopper's."""
    args = message.get("custom_args") or {}
    send_id, address = args.get("send_id"), ADDRESS.fullmatch(str(message.get("to", "")))
    found = links(message)
    if not isinstance(send_id, str) or address is None or not found:
        return None
    opened, clicked, bought, scanned, pick, wait = _uniforms(seed, send_id, 6)
    clicks = opened < response.opens and clicked < response.clicks
    low, high = response.delay
    return Reaction(
        send_id=send_id,
        shopper=int(address.group(1)),
        kind=str(args.get("kind", "")),
        click=found[int(pick * len(found))] if clicks else None,
        scan=found[0] if scanned < response.scanned else None,
        buys=clicks and bought < response.buys,
        after=low + wait * (high - low),
    )


def _after(stamp: object, since: datetime) -> bool:
    """Whether the sandbox's `received_at` is at or after `since` (an email from before is not read)."""
    try:
        return datetime.fromisoformat(str(stamp)) >= since
    except (TypeError, ValueError):
        return False


@dataclass(frozen=True)
class Arrival:
    """A shopper who clicked an email's link arrives at the shop (and buys, when `buys`)."""

    shopper: int
    kind: str
    buys: bool


class InboxReader:
    """Reads the sandbox's inbox (`GET /api/messages` with its key) and acts out the reactions: scanner
    `HEAD`s at once, shoppers' clicks when due; `arrivals()` gives the shoppers who clicked."""

    def __init__(
        self,
        url: str,
        api_key: str,
        seed: int,
        *,
        since: datetime,
        response: Response | None = None,
        inbox: httpx.Client | None = None,
        web: httpx.Client | None = None,
    ) -> None:
        self.seed, self.since, self.response = seed, since, response or Response()
        self.inbox = inbox or httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {api_key}"}, timeout=10.0
        )
        self.web = web or httpx.Client(timeout=10.0, follow_redirects=False)  # never the sandbox's key
        self.counts: Counter[str] = Counter()
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._due: list[tuple[float, int, Reaction]] = []
        self._order = itertools.count()
        self._arrivals: deque[Arrival] = deque(maxlen=MAX_PENDING)
        self._next_poll = 0.0

    def tick(self, now: float) -> None:
        """Look at the inbox when a poll is due, then click what is due at `now` (monotonic seconds)."""
        if now >= self._next_poll:
            self._next_poll = now + POLL_SECONDS
            self._poll(now)
        while self._due and self._due[0][0] <= now:
            _, _, reaction = heapq.heappop(self._due)
            if reaction.click is not None and self._visit("GET", reaction.click, reaction.shopper):
                self.counts["clicked"] += 1
                self._arrivals.append(Arrival(reaction.shopper, reaction.kind, reaction.buys))

    def arrivals(self) -> Iterator[Arrival]:
        """The shoppers who clicked since the last call (each once)."""
        while self._arrivals:
            yield self._arrivals.popleft()

    def run(self, stop: threading.Event, clock: Callable[[], float] = time.monotonic) -> None:
        """`tick` until `stop` is set (the simulator's thread for it)."""
        while not stop.is_set():
            self.tick(clock())
            stop.wait(0.5)

    def close(self) -> None:
        self.inbox.close()
        self.web.close()

    def _poll(self, now: float) -> None:
        try:
            response = self.inbox.get("/api/messages", params={"limit": POLL_LIMIT})
            response.raise_for_status()
            messages = response.json()
        except (httpx.HTTPError, ValueError) as error:
            self.counts["inbox_errors"] += 1
            log.debug("the inbox could not be read: %s", type(error).__name__)
            return
        for message in reversed(messages if isinstance(messages, list) else []):  # oldest first
            if isinstance(message, dict):
                self._read(message, now)

    def _read(self, message: dict[str, Any], now: float) -> None:
        key = str(message.get("id"))
        if key in self._seen or not _after(message.get("received_at"), self.since):
            return
        self._seen[key] = None
        if len(self._seen) > MAX_SEEN:
            self._seen.popitem(last=False)
        reaction = react(self.seed, message, self.response)
        if reaction is None:
            return
        self.counts["read"] += 1
        if reaction.scan is not None and self._visit("HEAD", reaction.scan, None):
            self.counts["scanned"] += 1
        if reaction.click is not None and len(self._due) < MAX_PENDING:
            heapq.heappush(self._due, (now + reaction.after, next(self._order), reaction))

    def _visit(self, method: str, url: str, shopper: int | None) -> bool:
        """One request to a click link (the shopper's browser, or a scanner's); whether it redirected."""
        agent = "Mozilla/5.0 (compatible; LinkScanner/1.0)" if shopper is None else None
        if shopper is not None:
            agent = new_shopper(self.seed, shopper).user_agent
        try:
            answer = self.web.request(method, url, headers={"User-Agent": agent or ""})
        except httpx.HTTPError as error:
            self.counts["click_errors"] += 1
            log.debug("a click link could not be followed: %s", type(error).__name__)
            return False
        return answer.status_code == 302
