"""The profile API (send-time content): `GET /v1/profiles/{user_id}` and `GET /v1/profiles/{user_id}/content`.

Served from the state store (services.collector.profile_store), so it reflects the last committed batch.
Bearer `LAKEMAIL_API_KEY`, compared in constant time: 401 without it or with another; 503 with a message
while the key is unset (the API is off: person data never goes out unauthenticated, and tracking keeps
working). 404 for an unknown, anonymous-only or erased user. `/content` is what an email of `kind`
(default: `abandoned_cart` when the shopper has a cart, else `welcome`) would say right now: the send
stage's own `build_content` over the store's profile and catalog, with the fallbacks it used; a
`post_purchase` one is the email of the shopper's latest order, with the facts its decision carries.
A user id is one path segment, percent-encoded (`/` as `%2F`), routed as sent (_NotedRoute).

Nothing here logs a user id (uvicorn's access log is off, services.server); the metrics' labels are
the route templates and outcomes, never an id.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, Generic, TypeVar
from urllib.parse import unquote

import orjson
from fastapi import FastAPI, Request, Response
from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.concurrency import run_in_threadpool
from starlette.routing import Match, Route
from starlette.types import Scope

from resources.state import StateReader
from services.collector.profile_store import NoStore, Profile, ProfileStore
from transforms.sends.content import CART_KINDS, KINDS, PRODUCT_KINDS, Content, Shop, build_content
from transforms.sends.rows import trigger_facts
from transforms.triggers.rules.lifecycle import order_detail

log = logging.getLogger(__name__)
T = TypeVar("T")
PROFILE_ROUTE = "/v1/profiles/{user_id}"
CONTENT_ROUTE = "/v1/profiles/{user_id}/content"
LOOKUP_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
BESTSELLERS_SECONDS = 300.0  # bestsellers are read from the lake at most this often
REFLECTED_SECONDS = 5.0  # the landing zone is listed for a profile's freshness at most this often
HEADERS = {"Cache-Control": "no-store"}


@dataclass(frozen=True)
class ProfileApi:
    """What the profile API serves from and how content is made (see `lakemail serve collector`)."""

    store: ProfileStore
    api_key: str | None  # None: the API is off (503 with a message)
    shop: Shop
    staleness: timedelta = timedelta(hours=72)
    bestsellers: Callable[[datetime], list[str]] | None = None  # the send stage's ranking (reads the lake)
    # The moment the store reflects every landed line up to (`stores.ingest.reflected_as_of`): a stalled
    # ingest makes the profile stale and its content generic, as at send time.
    reflected: Callable[[StateReader, datetime], datetime] | None = None


@dataclass
class _Kept(Generic[T]):
    """A value read when first needed and kept `seconds` (a failed read keeps the last one, or `value`)."""

    read: Callable[..., T] | None
    seconds: float
    value: T
    what: str
    lock: threading.Lock = field(default_factory=threading.Lock)
    read_at: float = float("-inf")

    def get(self, *args: Any) -> T:
        with self.lock:
            if self.read is not None and time.monotonic() - self.read_at > self.seconds:
                try:
                    self.value = self.read(*args)
                except Exception as error:  # the email still has its fallback recorded
                    log.warning("%s could not be read: %s", self.what, type(error).__name__)
                self.read_at = time.monotonic()
            return self.value


def _authorized(expected: str, header: str | None) -> bool:
    scheme, _, given = (header or "").partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        return False
    # Digests of both: equal lengths, so the comparison says nothing about the key's length either.
    mine, theirs = (hashlib.sha256(k.encode()).digest() for k in (expected, given.strip()))
    return hmac.compare_digest(mine, theirs)


def _json(body: dict[str, Any], status: int = 200, **headers: str) -> Response:
    return Response(
        orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS),
        status_code=status,
        media_type="application/json",
        headers={**HEADERS, **headers},
    )


def _error(status: int, code: str, message: str, **headers: str) -> Response:
    return _json({"success": False, "code": code, "message": message}, status, **headers)


def _profile_body(profile: Profile) -> dict[str, Any]:
    return {**profile.row, "batch": profile.stamps.get("ingest"), "stamps": dict(profile.stamps)}


def _email_of(profile: Profile, kind: str | None, product_id: str | None) -> Any:
    """(kind, trigger facts) of the email asked for, or a 400 saying why there is none."""
    row = profile.row
    kind = kind or ("abandoned_cart" if row.get("cart_items") else "welcome")
    if kind not in KINDS:
        return _error(400, "unknown_kind", f"kind is one of {', '.join(KINDS)}")
    if kind in PRODUCT_KINDS and not product_id:
        return _error(400, "product_id_required", f"a {kind} email is about a product: give ?product_id=")
    if kind == "post_purchase":
        return kind, trigger_facts(_latest_order(profile.state))
    anchor = row.get("cart_id") if kind in CART_KINDS else product_id
    return kind, trigger_facts({"anchor": anchor})


def _latest_order(state: bytes) -> dict[str, Any]:
    """The post_purchase decision of the shopper's latest order (ties: the greatest order id), as the
    rule writes it (`order_detail`): anchor and detail; none when the shopper has not ordered."""
    orders = [o for o in (orjson.loads(state).get("orders") or ()) if o] if state else []
    if not orders:
        return {"anchor": None}
    latest = max(orders, key=lambda o: (o.get("ordered_at") or 0, o.get("order_id") or ""))
    return {"anchor": latest.get("order_id"), "detail": order_detail(latest.get("products"))}


class _Routes:
    """The two routes' work. A profile is looked up on the event loop: an LMDB read of the mapped file
    and a plain-Python derivation take tens of microseconds, less than handing the lookup to a thread
    (and taking it back) costs. Content is built in the thread pool (it reads the catalog, renders)."""

    def __init__(self, api: ProfileApi, registry: CollectorRegistry) -> None:
        self.api = api
        self.bestsellers: _Kept[Sequence[str]] = _Kept(
            api.bestsellers, BESTSELLERS_SECONDS, (), "bestsellers"
        )
        self.reflected: _Kept[datetime | None] = _Kept(api.reflected, REFLECTED_SECONDS, None, "landing zone")
        self.lookups = Counter(
            "lakemail_profile_lookups_total",
            "Profile API requests by route template and outcome (found, not_found, unauthorized, ...).",
            ["route", "outcome"],
            registry=registry,
        )
        self.seconds = Histogram(
            "lakemail_profile_lookup_seconds",
            "Time to answer a profile API request that reached the store, by route template.",
            ["route"],
            buckets=LOOKUP_BUCKETS,
            registry=registry,
        )

    async def guarded(
        self, route: str, request: Request, answer: Callable[[], Awaitable[Response]]
    ) -> Response:
        """`answer()` for an authorized request; the refusals otherwise, every outcome counted."""
        count = self.lookups.labels
        if self.api.api_key is None:
            count(route=route, outcome="disabled").inc()
            return _error(503, "profile_api_disabled", "the profile API is off: set LAKEMAIL_API_KEY")
        if not _authorized(self.api.api_key, request.headers.get("authorization")):
            count(route=route, outcome="unauthorized").inc()
            challenge = {"WWW-Authenticate": "Bearer"}
            return _error(401, "invalid_api_key", "missing or wrong bearer key", **challenge)
        started = time.perf_counter()
        try:
            response = await answer()
        except NoStore as missing:
            count(route=route, outcome="no_store").inc()
            return _error(503, "no_state_store", str(missing), **{"Retry-After": "5"})
        except Exception as error:  # the type only: a message could hold what was looked up
            log.error("profile API %s failed: %s", route, type(error).__name__)
            count(route=route, outcome="error").inc()
            return _error(500, "internal_error", "the profile could not be read")
        self.seconds.labels(route=route).observe(time.perf_counter() - started)
        outcome = {200: "found", 404: "not_found"}.get(response.status_code, "bad_request")
        count(route=route, outcome=outcome).inc()
        return response

    async def profile(self, user_id: str) -> Response:
        profile = self.api.store.profile(user_id)
        return _not_found() if profile is None else _json(_profile_body(profile))

    def content(self, user_id: str, kind: str | None, product_id: str | None) -> Response:
        api = self.api
        profile = api.store.profile(user_id)
        if profile is None:
            return _not_found()
        asked = _email_of(profile, kind, product_id)
        if isinstance(asked, Response):
            return asked
        now = datetime.now(UTC)
        with api.store.reading() as snap:
            catalog = api.store.catalog(snap)
            reflected = self.reflected.get(snap.store, now)
        row = profile.row if reflected is None else {**profile.row, "as_of": min(reflected, now)}

        def build(ranked: Sequence[str]) -> Content:
            return build_content(
                asked[0], profile=row, trigger=asked[1], catalog=catalog, bestsellers=ranked,
                now=now, shop=api.shop, staleness=api.staleness,
            )  # fmt: skip

        content = build(())
        if content.context.get("recommendations_source") == "bestsellers":  # as the send stage does
            content = build(self.bestsellers.get(now))
        context = {k: v for k, v in content.context.items() if k != "shop"}
        body = {"kind": asked[0], "aborted": content.aborted, "fallbacks": content.fallbacks, **context}
        return _json({**body, "as_of": row["as_of"], "batch": profile.stamps.get("ingest")})


def _not_found() -> Response:
    return _error(404, "profile_not_found", "no profile for this user id")


def add_profile_routes(app: FastAPI, api: ProfileApi, registry: CollectorRegistry) -> None:
    """Serve the profile API on `app`, counting lookups by route and outcome in `registry`.

    Plain Starlette routes (`app.add_route`): the path and query are read off the request, without
    FastAPI's per-request parameter machinery (a good share of a lookup's cost on the hot path)."""
    routes = _Routes(api, registry)

    async def profile_route(request: Request) -> Response:
        user_id = request.path_params["user_id"]
        return await routes.guarded(PROFILE_ROUTE, request, partial(routes.profile, user_id))

    async def content_route(request: Request) -> Response:
        user_id, query = request.path_params["user_id"], request.query_params
        work = partial(routes.content, user_id, query.get("kind"), query.get("product_id"))
        return await routes.guarded(CONTENT_ROUTE, request, partial(run_in_threadpool, work))

    for path, endpoint in ((PROFILE_ROUTE, profile_route), (CONTENT_ROUTE, content_route)):
        app.router.routes.append(_NotedRoute(path, endpoint, methods=["GET"], include_in_schema=False))


class _NotedRoute(Route):
    """A Starlette route that notes itself in the scope as FastAPI's do (the metrics' route label), and
    matches the path as sent: a user id may hold `/` (`%2F`), and the server's decoded path would make
    `/v1/profiles/a%2Fcontent` the content of `a`, not the profile of `a/content`."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        raw = _raw_route_path(scope)
        match, child = super().matches(scope if raw is None else {**scope, "path": raw, "root_path": ""})
        if match == Match.NONE:
            return match, child
        if raw is not None:  # the segments matched, still percent-encoded, decoded as the server would
            params = child["path_params"]
            child["path_params"] = params | {name: unquote(params[name]) for name in self.param_convertors}
        return match, {**child, "route": self}


def _raw_route_path(scope: Scope) -> str | None:
    """The path within the app as the client sent it (`raw_path`, still percent-encoded); None when the
    decoded path is that path (nothing escaped), or the server gives none or one that does not spell the
    decoded path (a proxy's rewrite): the decoded path is matched then."""
    raw, path, root = scope.get("raw_path"), scope["path"], scope.get("root_path", "")
    if not isinstance(raw, bytes) or b"%" not in raw:
        return None
    sent = raw.decode("latin-1").removeprefix(root)
    return sent if unquote(sent) == path.removeprefix(root) else None
