"""An in-memory shop for golden stories: events in, the engine's decisions out, no lake needed.

It runs the same pure code as the micro-batch (transforms.profiles.partials, transforms.triggers.decide); the
integration tests run the real assets over Delta tables.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import polars as pl

from transforms.erasure.records import suppressed, user_key
from transforms.ingest.events import drop_seen, identity_edges
from transforms.ingest.files import process_file
from transforms.ingest.reference_tables import catalog_changes
from transforms.profiles.derive import derive
from transforms.profiles.merge import merge_partials, resolve
from transforms.profiles.partials import partials, principal
from transforms.schema import (
    CATALOG_CHANGE_SCHEMA,
    CATALOG_SCHEMA,
    CUSTOMERS_SCHEMA,
    PENDING_DECISIONS,
    TRIGGERS_SCHEMA,
)
from transforms.triggers.decide import World, evaluate
from transforms.triggers.exits import renewable_rows
from transforms.triggers.policies import Policy

T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)  # a Friday, 12:00 UTC
SECRET = "story-secret"
_ids = itertools.count(1)
# Who viewed or carted a product, as the store's `product_viewers` reads them (VIEWED_OR_CARTED).
VIEWED = ["Product Viewed", "Product Added", "Wishlist Product Added to Cart"]


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def message(
    kind: str, when: datetime, *, user: str | None = None, anon: str | None = None, **fields: Any
) -> dict:
    """A Segment message; `kind` is `identify` or a track event name."""
    body: dict[str, Any] = {
        "messageId": fields.pop("message_id", f"m-{next(_ids)}"),
        "timestamp": when.isoformat(),
    }
    body |= {"userId": user} if user else {}
    body |= {"anonymousId": anon} if anon else {}
    if kind == "identify":
        body |= {"type": "identify", "traits": fields}
    else:
        body |= {"type": "track", "event": kind, "properties": fields}
    return body


def spec_message(
    kind: str,
    when: datetime,
    *,
    user: str | None = None,
    anon: str | None = None,
    skew: timedelta = timedelta(0),
    processed: bool = False,
    **fields: Any,
) -> dict:
    """A message in Segment's shape, as `analytics-python` sends it and the collector lands it.

    `kind` is `identify`, `alias` (`previous_id=`), `group` (`group_id=`, the other fields its traits),
    `page` or a track event name. The client's clock
    is `skew` off: `timestamp` and the batch's `sentAt` carry it, the collector's `receivedAt` does
    not, so the event time is `when` again. `processed`: an export Segment has corrected already
    (`timestamp` = `when`, the client's time in `originalTimestamp`).
    """
    client = when + skew
    body: dict[str, Any] = {
        "integrations": {},
        "anonymousId": anon,
        "context": {"library": {"name": "analytics-python", "version": "2.3.5"}},
        "userId": user,
        "messageId": fields.pop("message_id", f"spec-{next(_ids)}"),
    }
    if processed:
        body |= {
            "timestamp": when.isoformat(timespec="milliseconds"),
            "originalTimestamp": client.isoformat(),
        }
    else:
        body["timestamp"] = client.isoformat(timespec="milliseconds")
    body |= {
        "sentAt": (client + timedelta(seconds=1)).isoformat(),
        "receivedAt": _z(when + timedelta(seconds=1)),
    }
    if kind == "identify":
        body |= {"type": "identify", "traits": fields}
    elif kind == "alias":
        body |= {"type": "alias", "previousId": fields.pop("previous_id")}
    elif kind == "group":
        body |= {"type": "group", "groupId": fields.pop("group_id"), "traits": fields}
    elif kind == "page":
        body |= {"type": "page", "name": fields.pop("name", None), "properties": fields}
    else:
        body |= {"type": "track", "event": kind, "properties": fields}
    return body


def _z(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _same(these: list[Any], those: list[Any]) -> bool:
    """The same objects, one for one (not equal frames: the same ones)."""
    return len(these) == len(those) and all(a is b for a, b in zip(these, those, strict=True))


def _landed(message: dict) -> datetime:
    """When a message can have landed: after its receipt (or its own time when none is stamped)."""
    stamp = message.get("receivedAt") or message.get("timestamp") or message["originalTimestamp"]
    return datetime.fromisoformat(stamp)


@dataclass
class Shop:
    """Lands events in batches and runs the trigger engine at chosen times."""

    delays: dict[str, timedelta] = field(default_factory=dict)
    policy: Policy = field(default_factory=lambda: Policy(holdout_rate=0.0))
    events: pl.DataFrame | None = None
    parts: list[pl.DataFrame] = field(default_factory=list)
    log: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=TRIGGERS_SCHEMA))
    customers: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=CUSTOMERS_SCHEMA))
    catalog: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=CATALOG_SCHEMA))
    changes: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=CATALOG_CHANGE_SCHEMA))
    suppressions: set[str] = field(default_factory=set)  # user keys, as the `suppressions` table holds them
    batch: int = 0
    # What state() and identities() computed last, and from what (frames are never changed in place).
    _state: tuple[Any, list[pl.DataFrame], pl.DataFrame] | None = field(default=None, init=False, repr=False)
    _identities: tuple[Any, pl.DataFrame] | None = field(default=None, init=False, repr=False)

    def land(self, *messages: dict) -> None:
        """One micro-batch of messages (deduplicated against everything landed before, as ingest does)."""
        self.batch += 1
        data = b"\n".join(orjson.dumps(m) for m in messages)
        landed = max(_landed(m) for m in messages) + timedelta(seconds=1)
        result = process_file(
            data, source_file=f"b{self.batch}", landed_at=landed, ingested_at=landed, batch_id=self.batch
        )
        assert result.quarantine.height == 0, result.quarantine
        seen = self.events["event_id"] if self.events is not None else pl.Series([], dtype=pl.String)
        new = drop_seen(result.events, seen)
        self.events = new if self.events is None else pl.concat([self.events, new])
        self.parts.append(partials(new))
        # As stores.suppressions does: an `Unsubscribed` event suppresses its user.
        unsubscribed = new.filter((pl.col("event_name") == "Unsubscribed") & pl.col("user_id").is_not_null())
        self.suppressions |= {user_key(user, SECRET) for user in unsubscribed["user_id"]}

    def set_product(
        self, product_id: str, when: datetime, *, price: float, stock: int, category: str = "shirts"
    ) -> pl.DataFrame:
        """A catalog update of one product at `when`; returns (and records) the changes it makes."""
        row = {
            "product_id": product_id,
            "name": product_id.title(),
            "category": category,
            "price": price,
            "currency": "EUR",
            "stock": stock,
            "url": f"https://shop.example/{product_id}",
            "image_url": f"https://shop.example/{product_id}.jpg",
            "updated_at": when,
        }
        after = pl.DataFrame([row], schema=CATALOG_SCHEMA)
        found = catalog_changes(self.catalog, after).select(list(CATALOG_CHANGE_SCHEMA))
        self.catalog = pl.concat([self.catalog.filter(pl.col("product_id") != product_id), after])
        self.changes = pl.concat([self.changes, found])
        return found

    def state(self) -> pl.DataFrame:
        # The same batches merge to the same state: a story runs the engine many times between landings.
        # Each call gets a frame of its own (a clone shares the columns), as when it was merged each time.
        made = self._state
        if made is None or not _same([made[0], *made[1]], [self.events, *self.parts]):
            state = merge_partials(resolve(pl.concat(self.parts), self.identities()))
            made = self._state = (self.events, list(self.parts), state)
        return made[2].clone()

    def identities(self) -> pl.DataFrame:
        assert self.events is not None
        if self._identities is None or self._identities[0] is not self.events:
            self._identities = (self.events, identity_edges(self.events))
        return self._identities[1].clone()

    def run(self, now: datetime) -> pl.DataFrame:
        """Evaluate at `now`; returns this evaluation's new log rows."""
        rows = evaluate(self.world(now))
        self.log = pl.concat([self.log, rows])
        return rows

    def world(self, now: datetime) -> World:
        """What the engine sees at `now` after the batches landed so far."""
        state = self.state()
        latest = self.log.sort("decided_at", maintain_order=True).unique(
            "trigger_id", keep="last", maintain_order=True
        )
        pending = latest.filter(pl.col("decision").is_in(PENDING_DECISIONS))
        decided = latest.filter(~pl.col("decision").is_in(PENDING_DECISIONS))["trigger_id"]
        terminal = self.log.filter(~pl.col("decision").is_in(PENDING_DECISIONS))
        renewable = renewable_rows(terminal.select("trigger_id", "decision", "decided_at", "evaluation"))
        history = self.log.filter(pl.col("decision") == "send").select(
            "user_id", "kind", "anchor", "decided_at"
        )
        viewers = self._viewers()
        profiles = derive(state, self.customers, now)
        return World(
            now=now,
            state=state,
            profiles=profiles,
            pending=pending,
            decided=decided,
            renewable=renewable,
            history=history,
            suppressed=suppressed(profiles, self.suppressions, SECRET),
            catalog=self.catalog,
            catalog_changes=self.changes,
            catalog_viewers=viewers,
            links=self.identities(),
            customers=self.customers,
            delays=self.delays,
            policy=self.policy,
            batch_id=self.batch,
        )

    def _viewers(self) -> pl.DataFrame:
        assert self.events is not None
        return (
            self.events.filter(pl.col("event_name").is_in(VIEWED))
            .group_by(principal().alias("principal"), "product_id")
            .agg(pl.col("event_ts").max().alias("last_ts"))
        )

    def decisions(self) -> set[tuple[str, str | None, str]]:
        """The terminal decisions so far: (kind, user_id, decision)."""
        final = self.log.filter(~pl.col("decision").is_in(PENDING_DECISIONS))
        return set(final.select("kind", "user_id", "decision").iter_rows())
