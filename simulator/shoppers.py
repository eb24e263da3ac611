"""Deterministic shopper simulator: Segment-spec NDJSON lines from realistic sessions, with controlled dirt.

Pure: no file or network I/O. The same seed and the same sequence of `step` and `reference_files` calls
give byte-identical output. Time is integer milliseconds since the epoch; the event stream's randomness
comes from one `random.Random(seed)` (or of the seed and a `stream`); the catalog, its updates and each
shopper have their own, so creating CRM members up front does not shift the event stream. The hot path
avoids `random.choice` and friends (several times slower than `random()`), because `run_simulation`
must write >100k lines/s.

Besides events the simulator keeps the shop's reference data: a CRM snapshot (`customers/`) and catalog
updates (`catalog/`), both with `updated_at`, landed every few simulated minutes; shoppers see the new
prices and stock from the next step on (only products in stock are added to carts).

Here: the sessions, which action each takes next, and where dirt replaces a line. The shop is in `shop`,
the shoppers in `population`, the actions' messages in `events`, where a session comes from and the
`context` it sends in `context`, the dirt in `dirt`, the reference files in `reference`, the wire
format in `segment`.
"""

from __future__ import annotations

import random
from bisect import bisect_right
from datetime import datetime
from itertools import accumulate

import orjson

from simulator.context import email_origin
from simulator.dirt import MALFORMED_REASONS, Dirt, mangle
from simulator.events import Session, SessionActions
from simulator.population import Population
from simulator.reference import ReferenceFeeds, ReferenceFile
from simulator.segment import Message, SimLine, iso_ms, to_epoch_ms
from simulator.shop import Catalog, make_catalog

HELD_DUPLICATES = 256  # ok lines of the previous step that a later duplicate may repeat
# A session's next action once it has landed, by relative weight.
ACTIONS = ("view", "page", "search", "add", "remove", "cart", "login", "checkout", "end")
ACTION_CUM_WEIGHTS = tuple(accumulate((40, 12, 10, 12, 3, 5, 4, 5, 9)))
ORDER_CHANCE = 0.35  # chance, at each event while a checkout is open, that the order completes


class ShopperSimulator:
    """A pool of shoppers whose sessions emit Segment messages; `step` advances the simulated clock."""

    def __init__(
        self,
        *,
        users: int,
        seed: int = 0,
        start: datetime,
        dirt: Dirt | None = None,
        cart_ids: bool = False,
        stream: str | None = None,
    ) -> None:
        """Shoppers `u-000001`.. (created on first visit) and the catalog; the clock starts at `start`.

        `cart_ids`: checkouts, orders and product views carry the cart's `cart_id` too, as some shops
        add it (Segment's e-commerce spec puts it on cart events only). `stream`: the event stream (message
        ids, carts, checkouts, orders) is seeded with `seed` and it, the shoppers and catalog with `seed`
        alone; a demo that starts again with a new one carries on with new events from the same shoppers.
        """
        if users < 1:
            raise ValueError("users must be at least 1")
        self.users = users
        self.seed = seed
        self.dirt = dirt if dirt is not None else Dirt()
        self._rng = random.Random(seed if stream is None else f"lakemail-events-{seed}-{stream}")
        self._rnd = self._rng.random
        self._now_ms = to_epoch_ms(start)
        self._catalog = Catalog(make_catalog(seed))
        self._population = Population(seed, users)
        self._feeds = ReferenceFeeds(seed, self._now_ms, self._catalog, self._population)
        self._actions = SessionActions(self._rng, self._catalog, self.dirt, self._now_ms, cart_ids)
        self._builders = self._actions.builders
        self._sessions: list[Session] = []
        self._target_sessions = max(1, min(users // 3, 2000))
        self._held: list[SimLine] = []

    def step(self, now: datetime, n: int) -> list[SimLine]:
        """Exactly `n` lines of activity between the previous `now` and this one (late ones excepted)."""
        now_ms = to_epoch_ms(now)
        if now_ms < self._now_ms or n < 0:
            raise ValueError("now must not go backwards and n must not be negative")
        previous, self._now_ms = self._now_ms, now_ms
        self._actions.now_ms = now_ms
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

    def from_email(self, index: int, kind: str, buys: bool) -> None:
        """Shopper `index` clicked a link of a `kind` email: they come to the shop from it (a new session,
        unless they are in one), look at a product and, when they `buy`, check out and order next."""
        if not 1 <= index <= self.users:
            return
        shopper = self._population.get(index)
        session = next((s for s in self._sessions if s.shopper is shopper), None)
        if session is None:
            shopper.active = True
            session = Session(shopper, slot=len(self._sessions), origin=email_origin(shopper, kind))
            self._sessions.append(session)
        steps = ["view"]
        if buys:
            steps += [] if shopper.cart else ["add"]
            steps += [] if session.logged_in else ["login"]
            steps += ["checkout", "order"]
        session.pending += steps

    def _duplicate(self, ok: list[SimLine]) -> SimLine | None:
        """A repeat of an earlier ok line: held back from an earlier step, or from this one."""
        if self._held and (not ok or self._rnd() < 0.5):
            original = self._actions.pick(self._held)
        elif ok:
            original = self._actions.pick(ok)
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

    def _pick_session(self) -> Session:
        """An active session, or a new one for an idle shopper while fewer than the target run."""
        sessions = self._sessions
        if not sessions or (len(sessions) < self._target_sessions and self._rnd() < 0.3):
            for _ in range(8):
                shopper = self._population.get(1 + int(self._rnd() * self.users))
                if not shopper.active:
                    shopper.active = True
                    session = Session(shopper, slot=len(sessions))
                    self._actions.begin(session)
                    sessions.append(session)
                    return session
        return sessions[int(self._rnd() * len(sessions))]

    def _end_session(self, session: Session) -> None:
        last = self._sessions.pop()
        if last is not session:
            self._sessions[session.slot] = last
            last.slot = session.slot
        session.shopper.active = False

    def _choose(self, session: Session) -> str:
        """The session's next action, given what it and its shopper's cart allow."""
        if session.page is None:
            return "page"
        if session.pending:  # what follows a login: alias, group
            return session.pending.pop(0)
        shopper = session.shopper
        if shopper.checkout_id is not None and self._rnd() < ORDER_CHANCE:
            return "order" if session.logged_in else "login"
        action = ACTIONS[bisect_right(ACTION_CUM_WEIGHTS, self._rnd() * ACTION_CUM_WEIGHTS[-1])]
        if action in ("remove", "cart", "checkout") and not shopper.cart:
            return "view"
        if action == "add" and not (session.viewed and self._catalog.by_id[session.viewed[-1]].in_stock):
            return "view"
        if action == "checkout" and not session.logged_in:
            return "login"
        if action == "login" and session.logged_in:
            return "view"
        return action

    def _malformed(self, t: int) -> SimLine:
        """A line that is bad in exactly one way, for a randomly chosen reason."""
        reason = self._actions.pick(MALFORMED_REASONS)
        session = Session(self._population.get(1 + int(self._rnd() * self.users)))
        product = self._actions.pick(self._catalog.products)
        self._actions.go(session, product.page)
        message = self._actions.track(session, t, "Product Viewed", dict(product.props))
        message["sentAt"] = message["receivedAt"] = iso_ms(t)  # never late, skewed or without them
        message["timestamp"] = iso_ms(t)
        data = mangle(reason, message, self._rng, t)
        message_id = None if reason == "invalid_json" else message.get("messageId")
        return SimLine(data, "malformed", reason, message_id)

    def reference_files(self) -> list[ReferenceFile]:
        """Reference files due at the simulator's clock (the end of the last step), at most one per folder.

        The first call gives the whole catalog and the CRM members; later calls give catalog updates every
        CATALOG_EVERY_MS and CRM rows of new sign-ups and tier changes every CRM_EVERY_MS. Rows carry the
        clock as `updated_at`; shoppers see catalog changes from the next step on.
        """
        return self._feeds.due(self._now_ms)
