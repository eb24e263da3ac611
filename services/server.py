"""Run an ASGI app with uvicorn on a real socket: in a background thread (tests) or in the foreground (CLI).

The socket is bound here, before uvicorn starts, so the URL is known even for port 0. Uvicorn's access
log stays off: request lines would carry unsubscribe tokens and, on errors, bodies with addresses.
"""

from __future__ import annotations

import logging
import signal
import socket
import threading
import time
from types import TracebackType
from typing import Any

import uvicorn


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


def _config(app: Any, host: str, port: int, **options: Any) -> uvicorn.Config:
    # ws="none": no websocket routes here, and it keeps websockets' deprecation warnings out of tests
    config = uvicorn.Config(app, host=host, port=port, access_log=False, ws="none", **options)
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
    still hanging is cancelled), and the thread is joined.
    """

    def __init__(
        self,
        app: Any,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        grace_seconds: int = 1,
        timeout: float = 10.0,
    ) -> None:
        self._sock = _bind(host, port)
        self.url = _url(host, self._sock)
        # log_config=None: leave the process' logging (and pytest's capture) as it is
        config = _config(app, host, port, log_config=None, timeout_graceful_shutdown=grace_seconds)
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
    server = uvicorn.Server(_config(app, host, port, timeout_graceful_shutdown=5))  # configures its logging
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
