"""`lakemail simulate --via-collector URL`: the simulator's events posted to the collector as Segment's
clients post them (`/v1/batch`, the write key as HTTP Basic user, 100 messages a batch), not landed as files.

Reference files (`catalog/`, `customers/`) still land as files: they come from other systems. A line that
is not JSON (the simulator's `invalid_json` / `invalid_utf8` dirt) cannot travel in a JSON batch and is
not sent; the other dirt is sent and lands, and the ingest quarantines it as it would from a file.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import orjson

from simulator.landing import Lander
from simulator.segment import SimLine

log = logging.getLogger(__name__)
BATCH_MESSAGES = 100  # Segment's clients' default flush size
BATCH_BYTES = 400_000  # under the collector's 500 KB, as Segment's clients keep under it
GIVE_UP_SECONDS = 120.0  # a collector that takes nothing this long stops the simulation (an error)
RETRY_STATUSES = (429, 500, 502, 503, 504)


class CollectorUnavailable(RuntimeError):
    """The collector refused or was unreachable for GIVE_UP_SECONDS."""


class WriteKeyRefused(CollectorUnavailable):
    """The collector refused the write key (401): every later batch would be refused too."""


def batches(lines: list[SimLine]) -> list[list[bytes]]:
    """The JSON messages of `lines` in batches of at most BATCH_MESSAGES and BATCH_BYTES."""
    out: list[list[bytes]] = [[]]
    size = 0
    for line in lines:
        try:
            orjson.loads(line.data)
        except orjson.JSONDecodeError:
            continue
        if len(out[-1]) >= BATCH_MESSAGES or (out[-1] and size + len(line.data) > BATCH_BYTES):
            out.append([])
            size = 0
        out[-1].append(line.data)
        size += len(line.data) + 1
    return [batch for batch in out if batch]


class CollectorLander(Lander):
    """A Lander whose event files go to the collector at `url` instead of into the landing zone."""

    def __init__(
        self,
        landing: Path,
        seed: int,
        on_file: Callable[[Path, int], None] | None,
        *,
        url: str,
        write_key: str,
        client: httpx.Client | None = None,
    ) -> None:
        super().__init__(landing, seed, on_file)
        transport = httpx.HTTPTransport(retries=2)  # connect errors; statuses are retried below
        self.client = client or httpx.Client(
            base_url=url, auth=(write_key, ""), timeout=10.0, transport=transport
        )

    def land(self, lines: list[SimLine]) -> None:
        """Post `lines` (then empty the list); each batch is retried until the collector keeps it."""
        if not lines:
            return
        sent = lines[:]
        lines.clear()
        for batch in batches(sent):
            self._post(b'{"batch":[' + b",".join(batch) + b"]}", len(batch))
        self.report.record(None, sent)

    def close(self) -> None:
        self.client.close()

    def _post(self, body: bytes, messages: int) -> None:
        deadline, delay, retry = time.monotonic() + GIVE_UP_SECONDS, 0.25, 0
        while True:
            headers = {"Content-Type": "application/json", **({"X-Retry-Count": str(retry)} if retry else {})}
            try:
                response = self.client.post("/v1/batch", content=body, headers=headers)
                status, wait = response.status_code, _retry_after(response)
            except httpx.TransportError as error:
                status, wait = 0, None
                (log.debug if retry else log.warning)("collector unreachable: %s", error)
            if 200 <= status < 300:
                self.report.posted["batches"] += 1
                self.report.posted["messages"] += messages
                return
            if status == 401:
                raise WriteKeyRefused("the collector refused the write key (401): check LAKEMAIL_WRITE_KEY")
            if status and status not in RETRY_STATUSES:  # a 4xx will not get better: counted, dropped
                log.warning("the collector refused a batch of %s messages with %s", messages, status)
                self.report.posted["refused"] += messages
                return
            if status and not retry:
                log.warning("the collector answered %s; retrying for up to %.0f s", status, GIVE_UP_SECONDS)
            if time.monotonic() > deadline:
                raise CollectorUnavailable(f"the collector took no batch for {GIVE_UP_SECONDS:.0f} s")
            time.sleep(wait if wait is not None else delay)
            delay, retry = min(delay * 2, 5.0), retry + 1


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after", "")
    return min(float(value), 30.0) if value.isdigit() else None
