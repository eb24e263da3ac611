"""Controlled dirt: the rates of imperfect lines and events, and how each kind of imperfection is made.

Duplicates and malformed lines replace ok lines (`ShopperSimulator.step` picks which); late and skewed
events are ok events whose timestamps say so (`stamp`). A malformed line is bad in exactly one way,
for one of MALFORMED_REASONS (`mangle`).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

import orjson

from simulator.segment import MILLIS, Message, iso_ms, iso_second

MALFORMED_REASONS: tuple[str, ...] = (
    "invalid_json",
    "invalid_utf8",
    "missing_field",
    "wrong_type",
    "unknown_type",
    "timestamp_out_of_range",
    "line_too_long",
)
NO_SENT_AT_RATE = 0.02  # valid events without sentAt / receivedAt (both are optional)


@dataclass(frozen=True)
class Dirt:
    """Rates of injected imperfections: duplicates and malformed per line, late and skew per ok event."""

    duplicate_rate: float = 0.005
    malformed_rate: float = 0.002
    late_rate: float = 0.01
    skew_rate: float = 0.05

    def __post_init__(self) -> None:
        """Reject rates that are not fractions, or pairs that cannot both happen."""
        for name in ("duplicate_rate", "malformed_rate", "late_rate", "skew_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1")
        if self.duplicate_rate + self.malformed_rate > 1 or self.late_rate + self.skew_rate > 1:
            raise ValueError("duplicate+malformed and late+skew rates must each sum to at most 1")

    @classmethod
    def none(cls) -> Dirt:
        """Perfectly clean output."""
        return cls(duplicate_rate=0.0, malformed_rate=0.0, late_rate=0.0, skew_rate=0.0)


def stamp(
    message: Message, t: int, now_ms: int, rnd: Callable[[], float], dirt: Dirt, processed: bool = False
) -> None:
    """timestamp / sentAt / receivedAt of an event that happened at `t`, late or skewed by the dirt.

    `processed`: as a Segment export has it, `originalTimestamp` the device's time and `timestamp`
    already corrected for the device's clock (`receivedAt - (sentAt - originalTimestamp)`).
    """
    iso = iso_second
    r, sent = rnd(), min(t + int(rnd() * 1_500), now_ms)
    if r < dirt.late_rate:  # buffered on the device: happened up to 10 min ago, sent now
        device_ts, device_sent, received = t - 1_000 - int(rnd() * 599_000), t, t
    elif r < dirt.late_rate + dirt.skew_rate:  # client clock off: receivedAt right, the rest shifted
        skew = (1_000 + int(rnd() * 299_000)) * (1 if rnd() < 0.5 else -1)
        device_ts, device_sent, received = t + skew, sent + skew, sent
    elif r > 1.0 - NO_SENT_AT_RATE and not processed:
        message["timestamp"] = iso_ms(t)
        return
    elif not processed:  # the common case, with iso_ms inlined
        message["timestamp"] = iso(t // 1000) + MILLIS[t % 1000]
        message["sentAt"] = message["receivedAt"] = iso(sent // 1000) + MILLIS[sent % 1000]
        return
    else:
        device_ts, device_sent, received = t, sent, sent
    if processed:
        message["timestamp"] = iso_ms(received - (device_sent - device_ts))
        message["originalTimestamp"] = iso_ms(device_ts)
    else:
        message["timestamp"] = iso_ms(device_ts)
    message["sentAt"], message["receivedAt"] = iso_ms(device_sent), iso_ms(received)


def mangle(reason: str, message: Message, rng: random.Random, t: int) -> bytes:
    """`message` (a valid event at `t`) as a line that is bad for `reason` alone."""
    return _MANGLERS[reason](message, rng, t)


def _truncated(message: Message, rng: random.Random, t: int) -> bytes:
    data = orjson.dumps(message)
    cut = rng.randrange(1, len(data) - 1)
    while data[cut] & 0xC0 == 0x80:  # never split a UTF-8 sequence: the line stays valid UTF-8
        cut -= 1
    return data[:cut]


def _bad_utf8(message: Message, rng: random.Random, t: int) -> bytes:
    data = orjson.dumps(message)
    at = data.index(b'"userAgent":"') + len(b'"userAgent":"')
    return data[:at] + b"\xff\xfe" + data[at:]


def _missing_field(message: Message, rng: random.Random, t: int) -> bytes:
    if rng.random() < 0.5:
        del message["messageId"]
    else:
        message.pop("userId", None)
        del message["anonymousId"]
    return orjson.dumps(message)


def _wrong_type(message: Message, rng: random.Random, t: int) -> bytes:
    message["properties"] = "colour=navy;size=M" if rng.random() < 0.5 else [message["properties"]]
    return orjson.dumps(message)


def _unknown_type(message: Message, rng: random.Random, t: int) -> bytes:
    message["type"] = "bogus"
    return orjson.dumps(message)


def _future(message: Message, rng: random.Random, t: int) -> bytes:
    # sentAt and receivedAt stay true, so the skew-corrected event time is 3 days ahead as well.
    message["timestamp"] = iso_ms(t + 3 * 86_400_000 + rng.randrange(3_600_000))
    return orjson.dumps(message)


def _too_long(message: Message, rng: random.Random, t: int) -> bytes:
    message["properties"]["description"] = "lorem ipsum " * (2_800 + rng.randrange(400))
    return orjson.dumps(message)


_MANGLERS: dict[str, Callable[[Message, random.Random, int], bytes]] = {
    "invalid_json": _truncated,
    "invalid_utf8": _bad_utf8,
    "missing_field": _missing_field,
    "wrong_type": _wrong_type,
    "unknown_type": _unknown_type,
    "timestamp_out_of_range": _future,
    "line_too_long": _too_long,
}
