"""One provider call within one wall-clock allowance, its answer's body included.

httpx's read timeout applies to each read: a provider (or a proxy) that drips its answer a byte at a
time, each inside the timeout, would hold the call, the run and the decide lane for as long as it
liked. `send_within` reads the answer's body against a deadline of `call_seconds` from the call's
start; past it the call ends in `httpx.ReadTimeout`, as a read that timed out does, so the caller
treats it alike (after the request left: `unknown`, never resent blindly).

A read under way when the deadline passes still ends at its own timeout, so a call takes at most
`call_seconds` plus one read timeout. The response headers are read as httpx reads them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx


def call_seconds(timeout: httpx.Timeout) -> float | None:
    """The most one call may take (None: no limit): its connect timeout, then its read timeout for
    the whole answer."""
    if timeout.read is None:
        return None
    return (timeout.connect or 0.0) + timeout.read


class _Deadline(httpx.SyncByteStream):
    """An answer's body that ends in ReadTimeout once a chunk arrives past `deadline`."""

    def __init__(
        self, body: httpx.SyncByteStream, request: httpx.Request, deadline: float, clock: Callable[[], float]
    ) -> None:
        self._body, self._request, self._deadline, self._clock = body, request, deadline, clock

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._body:
            if self._clock() > self._deadline:
                raise httpx.ReadTimeout("the answer took longer than the call may", request=self._request)
            yield chunk

    def close(self) -> None:
        self._body.close()


def send_within(client: httpx.Client, request: httpx.Request, clock: Callable[[], float]) -> httpx.Response:
    """`client.send(request)`, read whole within `call_seconds(client.timeout)` of its start by `clock`
    (monotonic seconds); raises what `client.send` raises, and ReadTimeout past the deadline."""
    allowance = call_seconds(client.timeout)
    started = clock()
    response = client.send(request, stream=True)
    try:
        if allowance is not None and isinstance(response.stream, httpx.SyncByteStream):
            response.stream = _Deadline(response.stream, request, started + allowance, clock)
        response.read()
    finally:
        response.close()
    return response
