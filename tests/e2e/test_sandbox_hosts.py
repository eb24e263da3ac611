"""DNS rebinding: a page whose name now points at 127.0.0.1 still sends its own name as `Host`, so the
sandbox (over real HTTP, as `lakemail up` serves it) answers none of its routes to it."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest

from orchestration.supervisor import Plan
from services.sandbox.hosts import loopback_host
from services.server import ServerThread
from tests.e2e.test_sandbox import AUTH, make_app, send, valid_mail

REBOUND = "rebind.attacker.example"


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """(the server's URL, the id of the one message it holds)."""
    with (
        ServerThread(make_app(tmp_path_factory.mktemp("hosts"))) as server,
        httpx.Client(base_url=server.url, timeout=5, headers=AUTH) as http,
    ):
        yield server.url, send(http, valid_mail()).headers["X-Message-Id"]


def get(url: str, path: str, host: str) -> httpx.Response:
    return httpx.get(f"{url}{path}", headers={**AUTH, "Host": host}, timeout=5)


def port_of(url: str) -> int:
    port = urlsplit(url).port
    assert port is not None
    return port


@pytest.mark.parametrize("path", ["/", "/messages/{id}", "/api/messages", "/api/stats", "/metrics"])
@pytest.mark.parametrize("name", [REBOUND, "localhost.attacker.example", "127.0.0.1.nip.io", "0.0.0.0"])
def test_a_page_of_another_name_reads_nothing(sandbox: tuple[str, str], path: str, name: str) -> None:
    url, message_id = sandbox
    response = get(url, path.format(id=message_id), f"{name}:{port_of(url)}")
    assert response.status_code == 421
    assert "shopper@example.com" not in response.text and "Your cart misses you" not in response.text


def test_nor_can_it_send_or_unsubscribe(sandbox: tuple[str, str]) -> None:
    url, message_id = sandbox
    host = {"Host": f"{REBOUND}:{port_of(url)}"}
    with httpx.Client(base_url=url, timeout=5, headers={**AUTH, **host}) as rebound:
        assert send(rebound, valid_mail(), headers={**AUTH, **host}).status_code == 421
        assert rebound.post("/unsubscribe/x", content=b"List-Unsubscribe=One-Click").status_code == 421
    stored = get(url, "/api/messages", f"127.0.0.1:{port_of(url)}").json()
    assert [m["id"] for m in stored] == [message_id]


@pytest.mark.parametrize("name", ["127.0.0.1", "localhost", "LocalHost", "[::1]", "127.0.0.2"])
def test_loopback_names_at_the_servers_port_read_the_inbox(sandbox: tuple[str, str], name: str) -> None:
    url, message_id = sandbox
    host = f"{name}:{port_of(url)}"
    assert "Your cart misses you" in get(url, "/", host).text
    assert get(url, f"/messages/{message_id}", host).status_code == 200
    assert message_id in [m["id"] for m in get(url, "/api/messages", host).json()]


def test_another_port_is_refused(sandbox: tuple[str, str]) -> None:
    url, _ = sandbox
    assert get(url, "/", f"127.0.0.1:{port_of(url) + 1}").status_code == 421
    assert get(url, "/", "127.0.0.1").status_code == 421  # no port: 80


@pytest.mark.parametrize(
    ("host", "port", "expected"),
    [
        ("127.0.0.1:8025", 8025, True),
        ("[::1]:8025", 8025, True),
        ("localhost", 80, True),
        ("[::1]", 80, True),
        ("::1", 80, False),  # an IPv6 host must be bracketed
        ("[127.0.0.1]:8025", 8025, False),
        ("localhost:8025:8025", 8025, False),
        ("localhost:", 8025, False),
        ("", 8025, False),
        ("169.254.0.1:8025", 8025, False),
    ],
)
def test_loopback_host(host: str, port: int, expected: bool) -> None:
    assert loopback_host(host, port) is expected


def test_make_run_points_everything_at_an_inbox_the_sandbox_answers() -> None:
    """`make run` (`lakemail up`) prints this inbox link, sends through it (LAKEMAIL_ESP_URL), links
    unsubscribes to it (LAKEMAIL_PUBLIC_URL) and has the simulator's shoppers read it (`--inbox`)."""
    for port in (8025, 18025):
        plan = Plan(3000, 200, 20.0, True, port, True, True, True)
        assert loopback_host(urlsplit(plan.inbox).netloc, port)
