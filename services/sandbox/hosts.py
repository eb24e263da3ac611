"""Only requests addressed to loopback: the sandbox's answer to DNS rebinding.

The sandbox listens on 127.0.0.1 only, yet a page of another site open in the shopper's browser can
point its own name at 127.0.0.1 (DNS rebinding) and then read the inbox as a same-origin page: every
email, address and name in it, and `/api/*` with the default key. Such a request still names that site
in its `Host` header, so every request must name a loopback host (`127.0.0.1` or another 127/8 address,
`localhost`, `[::1]`) and the port the server listens on; any other is refused with 421 before a route
sees it. `make run`'s inbox link, `LAKEMAIL_ESP_URL` and the default `LAKEMAIL_PUBLIC_URL` are all
`http://127.0.0.1:<port>`.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send

MISDIRECTED = 421  # "not a host this server answers for" (RFC 9110)


def loopback_host(host: str, port: int | None) -> bool:
    """Whether a `Host` header value names a loopback host and `port` (no port in it: 80)."""
    name, given = _split(host.strip().lower())
    if port is not None and given != str(port):
        return False
    if name == "localhost":
        return True
    bracketed = name.startswith("[") and name.endswith("]")
    try:
        address = ipaddress.ip_address(name[1:-1] if bracketed else name)
    except ValueError:  # a name: what a rebinding page sends
        return False
    return address.is_loopback and bracketed == (address.version == 6)


def _split(host: str) -> tuple[str, str]:
    """(name, port) of a `Host` value; the port is "80" when it names none."""
    if host.endswith("]") or ":" not in host:
        return host, "80"
    name, _, port = host.rpartition(":")
    return name, port


class LoopbackHostsOnly:
    """ASGI middleware: HTTP requests whose `Host` is not loopback at the server's port get 421."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not loopback_host(_host(scope), _port(scope)):
            refused = PlainTextResponse(
                "This sandbox answers requests for 127.0.0.1, localhost or [::1] at its own port only.\n",
                status_code=MISDIRECTED,
            )
            await refused(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _host(scope: Scope) -> str:
    hosts = [value for key, value in scope["headers"] if key == b"host"]
    return hosts[0].decode("latin-1") if len(hosts) == 1 else ""  # none, or two: refused


def _port(scope: Scope) -> int | None:
    server: Any = scope.get("server")
    return int(server[1]) if server and server[1] is not None else None
