"""The email-provider sandbox over real HTTP: mail-send, storage, faults, inbox pages, unsubscribes."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import polars as pl
import pytest
from deltalake import write_deltalake

from resources.email import LOOKUP_FAILED, lookup
from resources.providers import SandboxProvider
from services.sandbox.app import INBOX_LIMIT, create_sandbox_app
from services.sandbox.store import MessageStore, StoredMessage
from services.server import ServerThread
from transforms.schema import SENDS_SCHEMA
from transforms.sends.message import ORIGIN_ARG, origin_mark, send_id_for, unsubscribe_token

API_KEY = "test-key"
SECRET = "test-secret"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
SEND_ID = send_id_for("trigger-1")
USER_ID = "u-42"
FORM = "application/x-www-form-urlencoded"

Payload = dict[str, Any]


def valid_mail(send_id: str = SEND_ID) -> Payload:
    return {
        "personalizations": [
            {"to": [{"email": "shopper@example.com", "name": "Sam"}], "custom_args": {"send_id": send_id}}
        ],
        "from": {"email": "shop@example.com", "name": "Shop"},
        "subject": "Your cart misses you",
        "content": [{"type": "text/plain", "value": "Hello"}, {"type": "text/html", "value": "<p>Hello</p>"}],
        "headers": {"List-Unsubscribe-Post": "List-Unsubscribe=One-Click"},
        "custom_args": {"kind": "abandoned_cart", "variant": "b", "send_id": "overridden"},
        "categories": ["abandoned_cart"],
    }


def make_app(tmp_path: Path) -> Any:
    return create_sandbox_app(
        tmp_path / "store",
        API_KEY,
        lake_uri=str(tmp_path / "lake"),
        landing_uri=str(tmp_path / "landing"),
        secret=SECRET,
    )


@pytest.fixture
def client(tmp_path: Path) -> Iterator[httpx.Client]:
    with (
        ServerThread(make_app(tmp_path)) as server,
        httpx.Client(base_url=server.url, timeout=5, headers=AUTH) as http,
    ):
        yield http


@pytest.fixture(scope="module")
def shared_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    """One server for the many requests that must store nothing (a restart per case costs 0.2 s)."""
    with (
        ServerThread(make_app(tmp_path_factory.mktemp("shared"))) as server,
        httpx.Client(base_url=server.url, timeout=5, headers=AUTH) as http,
    ):
        yield http


def send(client: httpx.Client, payload: Payload | bytes, **options: Any) -> httpx.Response:
    """A mail-send request with `headers` (default: the key) and no other (the client's key included)."""
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    headers = {"Content-Type": "application/json", **options.pop("headers", AUTH)}
    request = client.build_request("POST", "/v3/mail/send", content=body, headers=headers, **options)
    if "Authorization" not in headers:
        del request.headers["Authorization"]
    return client.send(request)


def messages(client: httpx.Client, **params: str) -> list[dict[str, Any]]:
    response = client.get("/api/messages", params=params)
    assert response.status_code == 200
    return list(response.json())


def by_status(client: httpx.Client) -> dict[str, int]:
    return dict(client.get("/api/stats").json()["mail_send"]["by_status"])


def assert_error_shape(response: httpx.Response) -> list[dict[str, Any]]:
    errors = response.json()["errors"]
    assert errors and all(set(error) == {"message", "field", "help"} for error in errors)
    return list(errors)


# --- mail send ---------------------------------------------------------------------------------------


def test_accepted_message_is_listed_with_every_field(client: httpx.Client) -> None:
    before = datetime.now(UTC)
    response = send(client, valid_mail())
    assert (response.status_code, response.content) == (202, b"")
    message_id = response.headers["X-Message-Id"]
    [listed] = messages(client)
    assert listed == {
        "id": message_id,
        "to": "shopper@example.com",
        "subject": "Your cart misses you",
        "html": "<p>Hello</p>",
        "text": "Hello",
        "headers": {"List-Unsubscribe-Post": "List-Unsubscribe=One-Click"},
        "received_at": listed["received_at"],
        # top level merged with the personalization's, the personalization winning
        "custom_args": {"kind": "abandoned_cart", "variant": "b", "send_id": SEND_ID},
    }
    received = datetime.fromisoformat(listed["received_at"])
    assert listed["received_at"].endswith("Z")
    assert before - timedelta(seconds=1) <= received <= datetime.now(UTC)
    one = client.get(f"/api/messages/{message_id}").json()
    assert {k: v for k, v in one.items() if k != "payload"} == listed
    assert one["payload"]["categories"] == ["abandoned_cart"]
    assert client.get("/api/messages/nope").status_code == 404


def test_messages_are_newest_first_and_filter_by_send_id(client: httpx.Client) -> None:
    first = send(client, valid_mail("s-first")).headers["X-Message-Id"]
    second = send(client, valid_mail("s-second")).headers["X-Message-Id"]
    assert first != second
    assert [m["id"] for m in messages(client)] == [second, first]
    assert [m["id"] for m in messages(client, send_id="s-first")] == [first]
    assert messages(client, send_id="s-none") == []
    assert [m["id"] for m in messages(client, limit="1")] == [second]


def test_each_personalization_is_one_message(client: httpx.Client) -> None:
    payload = valid_mail()
    payload["personalizations"].append({"to": [{"email": "b@example.com"}], "subject": "Own subject"})
    message_id = send(client, payload).headers["X-Message-Id"]
    listed = {m["id"]: (m["to"], m["subject"]) for m in messages(client)}
    assert listed == {
        message_id: ("shopper@example.com", "Your cart misses you"),
        f"{message_id}.1": ("b@example.com", "Own subject"),
    }


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"Basic {API_KEY}"},
        {"Authorization": "Bearer"},
    ],
    ids=["missing", "wrong-key", "wrong-scheme", "empty"],
)
def test_missing_or_wrong_key_is_401(client: httpx.Client, headers: dict[str, str]) -> None:
    response = send(client, valid_mail(), headers=headers)
    assert response.status_code == 401
    assert assert_error_shape(response)[0]["field"] is None
    assert messages(client) == []
    assert by_status(client) == {"401": 1}


def _set(path: str, value: object) -> Callable[[Payload], None]:
    """A mutation setting (or, with value DROP, deleting) one dotted path of the payload."""

    def mutate(payload: Payload) -> None:
        *parents, last = path.split(".")
        node: Any = payload
        for key in parents:
            node = node[int(key)] if key.isdigit() else node[key]
        if value is DROP:
            del node[last]
        elif isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value

    return mutate


DROP = object()
HTML_FIRST = [{"type": "text/html", "value": "<p>x</p>"}, {"type": "text/plain", "value": "x"}]
INVALID = {
    "no-personalizations": (_set("personalizations", DROP), "personalizations"),
    "empty-personalizations": (_set("personalizations", []), "personalizations"),
    "no-to": (_set("personalizations.0.to", DROP), "personalizations.0.to"),
    "empty-to": (_set("personalizations.0.to", []), "personalizations.0.to"),
    "bad-address": (_set("personalizations.0.to.0.email", "not-an-address"), "personalizations.0.to.0.email"),
    "address-with-crlf": (
        _set("personalizations.0.to.0.email", "a@example.com\r\nBcc: b@example.com"),
        "personalizations.0.to.0.email",
    ),
    "duplicate-recipient": (
        _set("personalizations.0.cc", [{"email": "SHOPPER@example.com"}]),
        "personalizations.0",
    ),
    "no-from": (_set("from", DROP), "from"),
    "from-without-email": (_set("from", {"name": "Shop"}), "from.email"),
    "no-subject": (_set("subject", DROP), "subject"),
    "empty-subject": (_set("subject", ""), "subject"),
    "no-content": (_set("content", DROP), "content"),
    "empty-content": (_set("content", []), "content"),
    "empty-content-value": (_set("content.0.value", ""), "content.0.value"),
    "content-type-with-semicolon": (_set("content.0.type", "text/plain; charset=x"), "content.0.type"),
    "text-plain-after-html": (_set("content", HTML_FIRST), "content"),
    "headers-not-an-object": (_set("headers", ["X-A: 1"]), "headers"),
    "header-value-not-a-string": (_set("headers", {"X-Count": 3}), "headers.X-Count"),
    "header-value-with-crlf": (_set("headers", {"X-Evil": "a\r\nBcc: x@example.com"}), "headers.X-Evil"),
    "header-value-with-lf": (_set("headers", {"X-Evil": "a\nb"}), "headers.X-Evil"),
    "reserved-header": (_set("headers", {"Subject": "other"}), "headers"),
    "custom-arg-not-a-string": (_set("custom_args", {"n": 1}), "custom_args.n"),
    "personal-custom-arg-not-a-string": (
        _set("personalizations.0.custom_args", {"n": True}),
        "personalizations.0.custom_args.n",
    ),
    "too-many-categories": (_set("categories", [f"c{i}" for i in range(11)]), "categories"),
    "categories-not-strings": (_set("categories", [1]), "categories"),
}


@pytest.mark.parametrize(("mutate", "field"), INVALID.values(), ids=INVALID.keys())
def test_invalid_payload_is_400_naming_the_field(
    shared_client: httpx.Client, mutate: Callable[[Payload], None], field: str
) -> None:
    payload = valid_mail()
    mutate(payload)
    response = send(shared_client, payload)
    assert response.status_code == 400
    assert field in [error["field"] for error in assert_error_shape(response)]
    assert messages(shared_client) == []


def test_body_that_is_not_json_is_400(shared_client: httpx.Client) -> None:
    response = send(shared_client, b"{not json")
    assert response.status_code == 400
    assert assert_error_shape(response)[0]["message"] == "Bad Request"


def test_subject_may_come_from_every_personalization(client: httpx.Client) -> None:
    payload = valid_mail()
    del payload["subject"]
    payload["personalizations"][0]["subject"] = "Per person"
    assert send(client, payload).status_code == 202
    assert [m["subject"] for m in messages(client)] == ["Per person"]


def test_messages_survive_a_restart(tmp_path: Path) -> None:
    with ServerThread(make_app(tmp_path)) as server, httpx.Client(base_url=server.url, headers=AUTH) as http:
        message_id = send(http, valid_mail()).headers["X-Message-Id"]
    with ServerThread(make_app(tmp_path)) as server, httpx.Client(base_url=server.url, headers=AUTH) as http:
        assert [m["id"] for m in messages(http)] == [message_id]
    with sqlite3.connect(tmp_path / "store" / "sandbox.sqlite3") as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def stored(message_id: str, send_id: str) -> StoredMessage:
    return StoredMessage(message_id, "a@example.com", "hi", None, "x", {}, {"send_id": send_id}, "t", {})


def test_concurrent_requests_share_commits_and_each_is_stored(tmp_path: Path) -> None:
    store = MessageStore(tmp_path / "store")
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda i: store.add([stored(f"m-{i}", f"s-{i}")]), range(40)))
    assert sorted(m.id for m in store.list_messages()) == sorted(f"m-{i}" for i in range(40))
    # A request whose rows cannot be stored hears so, and leaves nothing behind.
    with pytest.raises(sqlite3.IntegrityError):
        store.add([stored("m-new", "s-new"), stored("m-0", "s-dup")])
    assert store.get("m-new") is None and len(store.list_messages()) == 40
    store.add([stored("m-after", "s-after")])  # the store still takes requests after a failed one
    assert store.get("m-after") is not None
    # A bad request among concurrent ones fails alone, even when it shares their transaction.

    def attempt(i: int) -> bool:
        try:
            store.add([stored("m-0" if i == 5 else f"m-more-{i}", f"s-more-{i}")])
        except sqlite3.IntegrityError:
            return False
        return True

    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = list(pool.map(attempt, range(16)))
    assert outcomes == [i != 5 for i in range(16)]
    assert len(store.list_messages()) == 41 + 15


# --- faults ------------------------------------------------------------------------------------------


def add_fault(client: httpx.Client, fault: Payload | list[Payload]) -> None:
    assert client.post("/api/faults", json=fault).status_code == 201


def test_status_fault_then_accepted(client: httpx.Client) -> None:
    add_fault(client, {"kind": "status", "status": 503, "times": 3})
    assert send(client, valid_mail(), headers={}).status_code == 401  # unauthenticated: consumes nothing
    assert client.get("/api/faults").json() == [{"kind": "status", "status": 503, "times": 3}]
    statuses = [send(client, valid_mail()) for _ in range(4)]
    assert [r.status_code for r in statuses] == [503, 503, 503, 202]
    assert_error_shape(statuses[0])
    assert by_status(client) == {"202": 1, "401": 1, "503": 3}
    assert client.get("/api/stats").json()["mail_send"]["total"] == 5
    assert len(messages(client)) == 1
    assert client.get("/api/faults").json() == []
    logged = client.get("/api/stats").json()["requests"]
    assert [(r["status"], r["send_id"], r["fault"]) for r in logged[1:]] == [
        *[(503, SEND_ID, "status")] * 3,
        (202, SEND_ID, None),
    ]


def test_rate_limit_fault_says_when_to_come_back(client: httpx.Client) -> None:
    add_fault(client, {"kind": "rate_limit", "reset_seconds": 2})
    sent_at = time.time()
    response = send(client, valid_mail())
    assert response.status_code == 429
    assert_error_shape(response)
    reset, retry_after = int(response.headers["X-RateLimit-Reset"]), int(response.headers["Retry-After"])
    assert sent_at + 2 <= reset <= time.time() + 3
    assert 2 <= retry_after <= 3
    assert messages(client) == []
    assert send(client, valid_mail()).status_code == 202


def test_slow_fault_delays_then_accepts(client: httpx.Client) -> None:
    add_fault(client, {"kind": "slow", "seconds": 0.5})
    started = time.perf_counter()
    assert send(client, valid_mail()).status_code == 202
    assert time.perf_counter() - started >= 0.5
    assert len(messages(client)) == 1


def test_accept_then_hang_stores_once_and_stays_responsive(client: httpx.Client) -> None:
    add_fault(client, {"kind": "accept_then_hang", "seconds": 5})
    started = time.perf_counter()
    with pytest.raises(httpx.ReadTimeout):
        send(client, valid_mail(), timeout=httpx.Timeout(5, read=0.5))
    assert [m["custom_args"]["send_id"] for m in messages(client)] == [SEND_ID]
    assert time.perf_counter() - started < 2  # the other request was answered while the first hangs
    assert by_status(client) == {"202": 1}
    assert client.get("/api/faults").json() == []


def test_accept_then_hang_waits_for_a_valid_payload(client: httpx.Client) -> None:
    add_fault(client, {"kind": "accept_then_hang", "seconds": 5})
    assert send(client, {"subject": "invalid"}).status_code == 400
    assert client.get("/api/faults").json() == [{"kind": "accept_then_hang", "times": 1, "seconds": 5.0}]


def test_faults_can_be_cleared(client: httpx.Client) -> None:
    add_fault(client, {"kind": "status", "status": 500})
    add_fault(client, [{"kind": "slow", "seconds": 3}])
    assert len(client.get("/api/faults").json()) == 2
    assert client.delete("/api/faults").json() == {"cleared": 2}
    assert client.get("/api/faults").json() == []
    assert send(client, valid_mail()).status_code == 202


@pytest.mark.parametrize(
    "fault",
    [
        {"kind": "explode"},
        {"kind": "status", "status": 200},
        {"kind": "status", "status": 503, "times": 0},
        {"kind": "slow", "seconds": -1},
        {"kind": "rate_limit", "reset_seconds": "soon"},
        [],
    ],
)
def test_invalid_fault_is_400(shared_client: httpx.Client, fault: object) -> None:
    response = shared_client.post("/api/faults", json=fault)
    assert response.status_code == 400
    assert_error_shape(response)
    assert shared_client.get("/api/faults").json() == []


# --- its own API (#13, point 12) ---------------------------------------------------------------------

API_ROUTES = [
    ("GET", "/api/messages"),
    ("GET", "/api/messages/some-id"),
    ("GET", "/api/stats"),
    ("DELETE", "/api/stats"),
    ("GET", "/api/faults"),
    ("POST", "/api/faults"),
    ("DELETE", "/api/faults"),
]


@pytest.mark.parametrize(("method", "path"), API_ROUTES)
@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {API_KEY}"}]
)
def test_the_api_takes_the_sandbox_key_only(
    shared_client: httpx.Client, method: str, path: str, headers: dict[str, str]
) -> None:
    fault = {"kind": "status", "status": 503}
    response = httpx.request(method, f"{shared_client.base_url}{path}", headers=headers, json=fault)
    assert response.status_code == 401
    assert_error_shape(response)
    assert shared_client.get("/api/faults").json() == []


def test_faults_are_json_only_so_a_web_page_cannot_post_one(shared_client: httpx.Client) -> None:
    fault = json.dumps({"kind": "status", "status": 503, "times": 3})
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; b=x", None):
        headers = {"Content-Type": content_type} if content_type else {}
        response = shared_client.post("/api/faults", content=fault, headers=headers)
        assert response.status_code == 415, content_type
        assert assert_error_shape(response)[0]["field"] == "content-type"
    assert shared_client.get("/api/faults").json() == []
    typed = {"Content-Type": "application/json; charset=utf-8"}
    assert shared_client.post("/api/faults", content=fault, headers=typed).status_code == 201
    assert shared_client.delete("/api/faults").json() == {"cleared": 1}


def test_a_message_stored_under_a_send_id_by_someone_else_settles_nothing(client: httpx.Client) -> None:
    """Anyone on the host may send with the default key under a real send_id; only this home's mark
    on a message makes the outbox's look-up settle the send as sent."""
    provider = SandboxProvider(api_key=API_KEY, base_url=str(client.base_url))
    assert send(client, valid_mail(SEND_ID)).status_code == 202  # custom_args send_id, no mark
    assert lookup(provider, SEND_ID, client, secret=SECRET) is None
    ours = valid_mail(SEND_ID)
    ours["custom_args"][ORIGIN_ARG] = origin_mark(SEND_ID, SECRET)
    genuine = send(client, ours).headers["X-Message-Id"]
    assert lookup(provider, SEND_ID, client, secret=SECRET) == genuine
    assert lookup(provider, SEND_ID, client, secret="another-home") is None


def our_mail(send_id: str = SEND_ID) -> Payload:
    """A mail-send payload as this home's outbox sends it: its mark on the send."""
    ours = valid_mail(send_id)
    ours["custom_args"][ORIGIN_ARG] = origin_mark(send_id, SECRET)
    return ours


def test_a_send_still_in_flight_is_found_by_the_look_up_and_never_stored_twice(client: httpx.Client) -> None:
    """A `slow` answer past the outbox's read timeout: the look-up said "not taken" while the request
    was still in flight, so the next run sent it again and the shopper got two emails (review 23b)."""
    provider = SandboxProvider(api_key=API_KEY, base_url=str(client.base_url))
    add_fault(client, {"kind": "slow", "seconds": 1})
    with pytest.raises(httpx.ReadTimeout):
        send(client, our_mail(), timeout=httpx.Timeout(5, read=0.2))
    found = lookup(provider, SEND_ID, client, secret=SECRET)  # waits for the request in flight
    assert found is not None
    again = send(client, our_mail())  # the same send asked again: answered with it, nothing stored
    assert (again.status_code, again.headers["X-Message-Id"]) == (202, found)
    assert [m["id"] for m in messages(client, send_id=SEND_ID)] == [found]
    stats = client.get("/api/stats").json()
    assert (stats["mail_send"]["replayed"], [r["replayed"] for r in stats["requests"]]) == (1, [False, True])
    # Anyone else's message under the same send_id is not this send: stored, and settles nothing.
    stranger = send(client, valid_mail(SEND_ID)).headers["X-Message-Id"]
    assert [m["id"] for m in messages(client, send_id=SEND_ID)] == [stranger, found]


def test_a_look_up_that_cannot_wait_for_the_send_in_flight_cannot_say(tmp_path: Path) -> None:
    """The look-up waits for a send's request in flight only so long: then 503 (`lookup_failed`: the
    outbox asks again later), never "not taken"; a resend meanwhile waits for the first request."""
    app = create_sandbox_app(
        tmp_path / "store", API_KEY, lake_uri="", landing_uri="", secret=SECRET, lookup_wait_s=0.1
    )
    with ServerThread(app) as server, httpx.Client(base_url=server.url, timeout=5, headers=AUTH) as http:
        provider = SandboxProvider(api_key=API_KEY, base_url=server.url)
        add_fault(http, {"kind": "slow", "seconds": 1})
        with ThreadPoolExecutor(max_workers=2) as pool:
            first = pool.submit(send, http, our_mail())
            while http.get("/api/faults").json():  # until the first request has taken the fault
                pass
            assert lookup(provider, SEND_ID, http, secret=SECRET) == LOOKUP_FAILED
            second = pool.submit(send, http, our_mail())
            stored = first.result().headers["X-Message-Id"]
            assert (second.result().status_code, second.result().headers["X-Message-Id"]) == (202, stored)
        assert [m["id"] for m in messages(http, send_id=SEND_ID)] == [stored]
        assert lookup(provider, SEND_ID, http, secret=SECRET) == stored


# --- pages -------------------------------------------------------------------------------------------


class Tags(HTMLParser):
    """Every start tag of a page with its attributes (values unescaped, as a browser sees them)."""

    def __init__(self, page: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.feed(page)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


EMAIL_HTML = '<p onclick="steal()">Hi "you" & \'co\'</p><script>alert("html")</script>'


def test_inbox_lists_messages_and_escapes_them(client: httpx.Client) -> None:
    payload = valid_mail()
    payload["subject"] = "<script>alert('subject')</script> Deals"
    message_id = send(client, payload).headers["X-Message-Id"]
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "script-src" not in page.headers["content-security-policy"]  # default-src 'none' covers it
    assert "&lt;script&gt;alert(&#39;subject&#39;)&lt;/script&gt; Deals" in page.text
    tags = Tags(page.text).tags
    assert "script" not in [tag for tag, _ in tags]
    assert ("a", {"href": f"/messages/{message_id}"}) in tags
    assert ">abandoned_cart<" in page.text and "<td>b</td>" in page.text
    assert ("meta", {"http-equiv": "refresh", "content": "3"}) in tags


def test_inbox_says_how_many_are_stored_and_that_it_shows_the_latest(tmp_path: Path) -> None:
    """It said "200 message(s)" when 876 were stored (#13, point 18)."""
    store = MessageStore(tmp_path / "store")
    store.add([stored(f"m-{i}", f"s-{i}") for i in range(INBOX_LIMIT + 5)])
    with ServerThread(make_app(tmp_path)) as server:
        page = httpx.get(f"{server.url}/").text
    shown = f"{INBOX_LIMIT + 5} message(s) stored;\nthe latest {INBOX_LIMIT} shown, newest first"
    assert shown in page
    assert page.count('href="/messages/') == INBOX_LIMIT and 'href="/messages/m-204"' in page


def test_message_page_shows_html_only_in_a_sandboxed_srcdoc(client: httpx.Client) -> None:
    payload = valid_mail()
    payload["content"] = [
        {"type": "text/plain", "value": "Plain <script>alert('text')</script>"},
        {"type": "text/html", "value": EMAIL_HTML},
    ]
    message_id = send(client, payload).headers["X-Message-Id"]
    page = client.get(f"/messages/{message_id}")
    assert page.status_code == 200
    tags = Tags(page.text).tags
    assert [tag for tag, _ in tags if tag in ("script", "p")] == []  # nothing of the email is live markup
    [frame] = [attrs for tag, attrs in tags if tag == "iframe"]
    assert frame["srcdoc"] == EMAIL_HTML
    allowed = (frame["sandbox"] or "").split()
    assert "allow-scripts" not in allowed and "allow-same-origin" not in allowed
    assert "<pre>Plain &lt;script&gt;alert(&#39;text&#39;)&lt;/script&gt;</pre>" in page.text
    assert "List-Unsubscribe-Post" in page.text
    assert client.get("/messages/nope").status_code == 404


# --- unsubscribe -------------------------------------------------------------------------------------


def write_sends(tmp_path: Path, send_id: str = SEND_ID, user_id: str = USER_ID) -> None:
    row: dict[str, object] = {"send_id": send_id, "trigger_id": "t-1", "user_id": user_id, "status": "sent"}
    frame = pl.DataFrame({column: [row.get(column)] for column in SENDS_SCHEMA}, schema=SENDS_SCHEMA)
    write_deltalake(str(tmp_path / "lake" / "sends"), frame.to_arrow())


def landed(tmp_path: Path) -> list[Path]:
    folder = tmp_path / "landing" / "events"
    return sorted(folder.iterdir()) if folder.exists() else []


def test_unsubscribe_get_only_asks(tmp_path: Path, client: httpx.Client) -> None:
    write_sends(tmp_path)
    page = client.get(f"/unsubscribe/{unsubscribe_token(SEND_ID, SECRET)}")
    assert page.status_code == 200
    assert ("form", {"method": "post"}) in Tags(page.text).tags
    assert landed(tmp_path) == []


@pytest.mark.parametrize(
    ("body", "method"),
    [(b"List-Unsubscribe=One-Click", "one_click"), (b"confirm=yes", "page"), (b"", "page")],
    ids=["one-click", "confirmation-page", "empty"],
)
def test_unsubscribe_post_lands_one_event(
    tmp_path: Path, client: httpx.Client, caplog: pytest.LogCaptureFixture, body: bytes, method: str
) -> None:
    write_sends(tmp_path)
    token = unsubscribe_token(SEND_ID, SECRET)
    before = datetime.now(UTC)
    with caplog.at_level("DEBUG"):
        response = client.post(f"/unsubscribe/{token}", content=body, headers={"Content-Type": FORM})
    assert response.status_code == 200 and "Unsubscribed" in response.text
    [path] = landed(tmp_path)
    assert path.name.startswith("unsubscribe-") and path.name.endswith(".ndjson")
    [line] = path.read_text().splitlines()
    event = json.loads(line)
    stamp = datetime.fromisoformat(event.pop("timestamp"))
    assert before - timedelta(seconds=1) <= stamp <= datetime.now(UTC) and line.count('Z"') == 1
    assert event == {
        "type": "track",
        "event": "Unsubscribed",
        "userId": USER_ID,
        "messageId": f"unsubscribe-{SEND_ID}",
        "properties": {"send_id": SEND_ID, "method": method},
    }
    server_log = [r.getMessage() for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))]
    assert any("unsubscribe landed" in line for line in server_log)
    assert not [line for line in server_log if USER_ID in line or token in line or SEND_ID in line]


def test_second_unsubscribe_repeats_the_message_id(tmp_path: Path, client: httpx.Client) -> None:
    write_sends(tmp_path)
    for _ in range(2):
        assert client.post(f"/unsubscribe/{unsubscribe_token(SEND_ID, SECRET)}").status_code == 200
    ids = {json.loads(path.read_text())["messageId"] for path in landed(tmp_path)}
    assert (len(landed(tmp_path)), ids) == (2, {f"unsubscribe-{SEND_ID}"})


@pytest.mark.parametrize(
    "token",
    [
        "garbage",
        unsubscribe_token(SEND_ID, "another-secret"),
        unsubscribe_token(SEND_ID, SECRET)[:-2] + "AA",
        unsubscribe_token("x-not-a-send", SECRET),
    ],
    ids=["garbage", "other-secret", "tampered", "not-a-send-id"],
)
def test_invalid_token_is_400_and_lands_nothing(tmp_path: Path, client: httpx.Client, token: str) -> None:
    write_sends(tmp_path)
    assert client.get(f"/unsubscribe/{token}").status_code == 400
    assert client.post(f"/unsubscribe/{token}", content=b"List-Unsubscribe=One-Click").status_code == 400
    assert landed(tmp_path) == []


@pytest.mark.parametrize("with_table", [True, False], ids=["unknown-send", "no-sends-table"])
def test_unknown_send_is_404(tmp_path: Path, client: httpx.Client, with_table: bool) -> None:
    if with_table:
        write_sends(tmp_path)
    token = unsubscribe_token(send_id_for("another-trigger"), SECRET)
    assert client.post(f"/unsubscribe/{token}", content=b"List-Unsubscribe=One-Click").status_code == 404
    assert landed(tmp_path) == []


# --- servers -----------------------------------------------------------------------------------------


def test_server_thread_refuses_a_taken_port(tmp_path: Path) -> None:
    with ServerThread(make_app(tmp_path)) as server:
        port = int(server.url.rsplit(":", 1)[1])
        with pytest.raises(OSError):
            ServerThread(make_app(tmp_path), port=port)


SERVE = """
import sys
from pathlib import Path
from resources.email import LOOKUP_FAILED, lookup
from resources.providers import SandboxProvider
from services.sandbox.app import INBOX_LIMIT, create_sandbox_app
from services.server import serve_forever
root = Path(sys.argv[1])
app = create_sandbox_app(root / "s", "k", lake_uri=str(root / "z"), landing_uri=str(root / "l"), secret="s")
serve_forever(app, "127.0.0.1", 0)
"""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_serve_forever_logs_its_url_and_stops_cleanly_on_a_signal(tmp_path: Path, sig: int) -> None:
    with subprocess.Popen(
        [sys.executable, "-c", SERVE, str(tmp_path)],
        stderr=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
        env={**os.environ, "PYTHONWARNINGS": "error"},
    ) as process:
        try:
            assert process.stderr is not None
            lines = iter(process.stderr.readline, "")
            url = next(line for line in lines if "serving on " in line).split("serving on ")[1].strip()
            assert httpx.get(f"{url}/api/faults", headers={"Authorization": "Bearer k"}).json() == []
            process.send_signal(sig)
            assert process.wait(timeout=10) == 0
            assert "Traceback" not in process.stderr.read()
        finally:
            process.kill()


def test_demo_shop_images_are_served_locally_in_the_preview(client: httpx.Client) -> None:
    payload = valid_mail()
    html_part = '<p><img src="https://shop.example/img/p-0042.jpg" alt=""></p><script>x</script>'
    payload["content"] = [{"type": "text/plain", "value": "Hi"}, {"type": "text/html", "value": html_part}]
    assert send(client, payload).status_code == 202
    [stored] = messages(client)
    assert stored["html"] == html_part  # the stored message is untouched
    page = client.get(f"/messages/{stored['id']}").text
    assert "/demo/img/p-0042.jpg" in page and "https://shop.example/img/" not in page
    assert "<script>" not in page  # still escaped into srcdoc
    image = client.get("/demo/img/p-0042.jpg")
    assert image.headers["content-type"].startswith("image/svg+xml")
    assert "p-0042" in image.text
    hostile = client.get("/demo/img/%3Cscript%3E.jpg").text
    assert "<script>" not in hostile and "&lt;script&gt;" in hostile
