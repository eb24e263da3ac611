"""Run an ASGI app with uvicorn on a real socket: in a background thread (tests) or in the foreground (CLI).

The socket is bound here, before uvicorn starts, so the URL is known even for port 0. Uvicorn's access
log stays off: request lines would carry unsubscribe tokens and, on errors, bodies with addresses.

What a client owes before the app sees its request is bounded here: HTTP is h11's, whose request head
may not pass MAX_HEAD_BYTES (400, connection closed; httptools, uvicorn's pick when it is installed,
buffers a head that never ends without limit), and a connection that has not sent a request head within
`head_seconds` of opening or of its last answer is closed (uvicorn has no such deadline: its keep-alive
timer stops at the first byte). Bodies the app reads under deadlines of its own (services.reading).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import threading
import time
from types import TracebackType
from typing import Any

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

MAX_HEAD_BYTES = 16 * 1024  # a request line and headers (h11's default); Segment's clients send < 1 KB
HEAD_SECONDS = 10.0  # to send a request's head, from the connection's opening or its last answer
KEEP_ALIVE_SECONDS = 5  # an idle connection between requests (uvicorn's default)


class BindError(OSError):
    """The socket could not be bound (port taken, not allowed); its strerror names host:port, so a
    command can say so in one line instead of a traceback."""


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # restart on a port in TIME_WAIT
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        raise BindError(error.errno, f"cannot listen on {host}:{port}: {error.strerror}") from error
    return sock


def _url(host: str, sock: socket.socket) -> str:
    port = sock.getsockname()[1]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _drop(record: logging.LogRecord) -> bool:
    return False


class _HeadDeadline(H11Protocol):
    """Uvicorn's h11 protocol, closing a connection that owes its request head past `seconds`."""

    seconds = HEAD_SECONDS
    _deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[arg-type]
        self._arm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm()  # the next request's head (or the rest of a body answered early) is owed

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        if not self.transport.is_closing():
            self._deadline = self.loop.call_later(self.seconds, self._expire)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expire(self) -> None:
        self._deadline = None
        if self.cycle is None or self.cycle.response_complete:  # not a request the app is answering
            self.transport.close()


def _protocol(head_seconds: float) -> type[H11Protocol]:
    return type("HeadDeadline", (_HeadDeadline,), {"seconds": head_seconds})


def _config(app: Any, host: str, port: int, head_seconds: float, **options: Any) -> uvicorn.Config:
    # ws="none": no websocket routes here, and it keeps websockets' deprecation warnings out of tests
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        access_log=False,
        ws="none",
        http=_protocol(head_seconds),
        h11_max_incomplete_event_size=MAX_HEAD_BYTES,
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
        **options,
    )
    # access_log=False only strips the access logger's handlers; uvicorn still writes request lines
    # whenever that logger has one (pytest's capture adds one), so they are dropped at the logger too.
    access = logging.getLogger("uvicorn.access")
    if _drop not in access.filters:
        access.addFilter(_drop)
    return config


class ServerThread:
    """Uvicorn serving `app` on `host:port` (0 = any free port) in a daemon thread; a context manager.

    The socket is bound on construction (a taken port raises BindError, an OSError, there), so `url` is
    known at once. On exit the server stops accepting, in-flight requests get `grace_seconds` to finish (one
    still hanging is cancelled), and the thread is joined. `head_seconds`: see the module's docstring.
    """

    def __init__(
        self,
        app: Any,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        grace_seconds: int = 1,
        timeout: float = 10.0,
        head_seconds: float = HEAD_SECONDS,
    ) -> None:
        self._sock = _bind(host, port)
        self.url = _url(host, self._sock)
        # log_config=None: leave the process' logging (and pytest's capture) as it is
        options = {"log_config": None, "timeout_graceful_shutdown": grace_seconds}
        config = _config(app, host, port, head_seconds, **options)
        self._server = uvicorn.Server(config)
        self._timeout = timeout
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, name=f"uvicorn {self.url}", daemon=True
        )

    def start(self) -> ServerThread:
        """Start serving and wait until the socket accepts connections."""
        self._thread.start()
        deadline = time.monotonic() + self._timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"server on {self.url} did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        """Stop the server and join its thread (forcing the exit when the grace period is not enough)."""
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(self._timeout)
        if self._thread.is_alive():
            self._server.force_exit = True
            self._thread.join(self._timeout)
        self._sock.close()

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()


def serve_forever(app: Any, host: str, port: int) -> None:
    """Serve `app` in the foreground (main thread) until SIGINT or SIGTERM, then stop gracefully."""
    sock = _bind(host, port)
    config = _config(app, host, port, HEAD_SECONDS, timeout_graceful_shutdown=5)
    server = uvicorn.Server(config)  # configures its logging
    # Listen before the URL is logged: uvicorn only listens after its startup, and a client that connects
    # as soon as it reads the URL would be refused until then (it now waits in the backlog instead).
    sock.listen(server.config.backlog)
    logging.getLogger("uvicorn.error").info("serving on %s", _url(host, sock))
    # Uvicorn handles both signals while it runs, then raises the one it got again under the handler
    # found before; for SIGTERM that would kill the process, so this one just asks it to stop (and
    # covers a SIGTERM that lands before uvicorn has installed its own).
    previous = signal.signal(signal.SIGTERM, lambda *_: setattr(server, "should_exit", True))
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:  # the Ctrl-C it already handled
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        sock.close()
