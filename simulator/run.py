"""The shopper simulator's runner (`lakemail simulate`): paces `ShopperSimulator` by the wall clock or a
simulated one, and lands its events and reference files as they fall due."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from simulator.collector import CollectorLander
from simulator.dirt import Dirt
from simulator.inbox import InboxReader
from simulator.landing import Lander, SimulationReport
from simulator.segment import SimLine
from simulator.shoppers import ShopperSimulator

log = logging.getLogger(__name__)

TICK_SECONDS = 0.05  # how often realtime mode catches up with the wall clock


def run_simulation(
    landing: Path,
    *,
    users: int,
    rate: float,
    duration: float,
    seed: int = 0,
    rotate_seconds: float = 1.0,
    rotate_events: int = 5000,
    realtime: bool = True,
    start: datetime | None = None,
    dirt: Dirt | None = None,
    cart_ids: bool = False,
    stop: threading.Event | None = None,
    on_file: Callable[[Path, int], None] | None = None,
    collector: tuple[str, str] | None = None,
    inbox: tuple[str, str] | None = None,
    stream: str | None = None,  # the event stream's seed besides `seed` (ShopperSimulator)
) -> SimulationReport:
    """Land `rate * duration` simulated shopper lines in `landing/events/`, paced by the wall clock or not.

    The catalog and the CRM members land first (`catalog/`, `customers/`), then catalog updates and CRM
    changes whenever they fall due on the simulated clock, before the events that see them. Checkouts and
    orders are spec-shaped (no `cart_id`) unless `cart_ids`. With `collector` (URL, write key) the events are
    posted to the collector instead (simulator.collector; realtime only: the collector stamps `receivedAt`
    with its own clock). With `inbox` (the sandbox's URL, its key) the shoppers read the emails delivered
    there and respond to them: open, click, buy (simulator.inbox; realtime only).
    """
    if rate <= 0 or duration < 0 or rotate_seconds <= 0 or rotate_events < 1:
        raise ValueError("rate and rotate_seconds must be > 0, duration >= 0, rotate_events >= 1")
    if realtime and start is not None:
        raise ValueError("start applies to realtime=False only: realtime timestamps are the wall clock")
    if (collector is not None or inbox is not None) and not realtime:
        raise ValueError("through the collector or the inbox the simulation runs in real time")
    begin = start if start is not None else datetime.now(UTC)
    sim = ShopperSimulator(users=users, seed=seed, start=begin, dirt=dirt, cart_ids=cart_ids, stream=stream)
    if collector is None:
        lander = Lander(landing, seed, on_file)
    else:
        lander = CollectorLander(landing, seed, on_file, url=collector[0], write_key=collector[1])
    lander.land_reference(sim.reference_files())
    total, stop = round(rate * duration), stop if stop is not None else threading.Event()
    try:
        with _reading(inbox, seed, begin) as reader:
            if realtime:
                rotate = (rotate_seconds, rotate_events)
                _run_realtime(
                    sim, lander, total=total, rate=rate, begin=begin, stop=stop, rotate=rotate, reader=reader
                )
            else:
                per_file = max(1, min(rotate_events, round(rate * rotate_seconds)))
                _run_simulated(sim, lander, total=total, rate=rate, begin=begin, stop=stop, per_file=per_file)
    except KeyboardInterrupt:
        lander.report.interrupted = True
    finally:
        lander.close()
    report = lander.report
    report.interrupted = report.interrupted or report.total_lines < total
    log.info("simulation landed %s files, lines by kind %s", len(report.files), report.lines)
    return report


@contextmanager
def _reading(inbox: tuple[str, str] | None, seed: int, since: datetime) -> Iterator[InboxReader | None]:
    """The shoppers' inbox reader on its own thread while the simulation runs (None: no inbox)."""
    if inbox is None:
        yield None
        return
    reader, done = InboxReader(*inbox, seed, since=since), threading.Event()
    thread = threading.Thread(target=reader.run, args=(done,), name="inbox", daemon=True)
    thread.start()
    try:
        yield reader
    finally:
        done.set()
        thread.join(timeout=15)
        reader.close()
        log.info("the shoppers' inbox: %s", dict(reader.counts))


def _run_simulated(
    sim: ShopperSimulator,
    lander: Lander,
    *,
    total: int,
    rate: float,
    begin: datetime,
    stop: threading.Event,
    per_file: int,
) -> None:
    """As fast as possible on a simulated clock: each file covers `per_file / rate` simulated seconds."""
    emitted = 0
    while emitted < total and not stop.is_set():
        n = min(per_file, total - emitted)
        emitted += n
        lander.land_reference(sim.reference_files())
        lander.land(sim.step(begin + timedelta(seconds=emitted / rate), n))


def _run_realtime(
    sim: ShopperSimulator,
    lander: Lander,
    *,
    total: int,
    rate: float,
    begin: datetime,
    stop: threading.Event,
    rotate: tuple[float, int],
    reader: InboxReader | None = None,
) -> None:
    """Keep up with `rate` lines per wall-clock second; a file closes every `rotate` (seconds, lines).
    The shoppers who clicked an email's link (`reader`) come to the shop before the next lines."""
    rotate_seconds, rotate_events = rotate
    started = last_file = time.monotonic()
    buffer: list[SimLine] = []
    emitted = 0
    try:
        while emitted < total and not stop.is_set():
            elapsed = time.monotonic() - started
            now = begin + timedelta(seconds=elapsed)  # monotonic, so the simulated clock never goes back
            due = min(total, int(rate * elapsed)) - emitted
            for arrival in reader.arrivals() if reader is not None and due > 0 else ():
                sim.from_email(arrival.shopper, arrival.kind, arrival.buys)
            while due > 0:
                n = min(due, rotate_events - len(buffer))
                lander.land_reference(sim.reference_files())
                buffer += sim.step(now, n)
                emitted, due = emitted + n, due - n
                if len(buffer) >= rotate_events:
                    lander.land(buffer)
                    last_file = time.monotonic()
            if buffer and time.monotonic() - last_file >= rotate_seconds:
                lander.land(buffer)
                last_file = time.monotonic()
            stop.wait(min(TICK_SECONDS, rotate_seconds))
    except KeyboardInterrupt:
        lander.report.interrupted = True
    lander.land(buffer)  # finish the current file, also on stop or Ctrl-C
