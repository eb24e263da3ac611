"""Hostile landed lines (lakemail #13, points 7, 8 and 10), each with the verdict ingest owes it.

`HOSTILE_LINES`: valid Segment messages with adversarial values (huge and tiny numbers, big integers,
lone surrogate escapes, control characters, backslashes and quotes in keys, deep nesting, non-BMP
characters, escaped NULs). Each
has its own `messageId`, so none can be taken for another's duplicate; `reason` is None for a line
kept as an event, else its quarantine reason. Any tier may import them (`tests/unit/test_hostile_lines.py`
pins the verdicts); their event time is in the past of any `landed_at` after mid-2025.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

TIMESTAMP = "2025-06-01T10:00:00.000Z"
_RAW = "@raw@"  # a JSON value orjson would not write: replaced, quotes and all, by `raw` bytes


@dataclass(frozen=True)
class HostileLine:
    name: str
    line: bytes
    reason: str | None  # the quarantine reason; None: kept as an event
    message_id: str  # the event's `event_id` when kept (escapes decoded)


def _line(name: str, reason: str | None, raw: bytes = b"", **fields: object) -> HostileLine:
    """A valid track message of id `hostile-<name>` (`fields` override; None drops one), `_RAW` in it
    replaced by `raw` as it is."""
    message: dict[str, object] = {
        "messageId": f"hostile-{name}",
        "type": "track",
        "event": "Product Viewed",
        "userId": "u-hostile",
        "timestamp": TIMESTAMP,
        "properties": {"product_id": "p-1"},
    }
    message.update(fields)
    message = {k: v for k, v in message.items() if v is not None}
    line = orjson.dumps(message).replace(f'"{_RAW}"'.encode(), raw)
    message_id = message["messageId"]
    if message_id == _RAW and reason is None:
        message_id = orjson.loads(raw)
    return HostileLine(name, line, reason, str(message_id))


def _id(name: str, escaped: bytes) -> bytes:
    """A messageId JSON string: `hostile-<name>-` and `escaped` as it is (escapes undecoded)."""
    return b'"hostile-' + name.encode() + b"-" + escaped + b'"'


def _nested(depth: int, leaf: bytes = b"0") -> bytes:
    return b"[" * depth + leaf + b"]" * depth


BIG_INT = b"1" + b"0" * 100  # 1e100 as an integer literal (beyond 2**128: Polars' reader rejects it)
INVALID_JSON, OUT_OF_RANGE = "invalid_json", "number_out_of_range"

KEPT = [
    _line("float-1e50-in-properties", None, properties={"product_id": "p-1", "score": 1e50}),
    _line("float-1e300-in-context", None, context={"ip": "203.0.113.7", "score": 1e300}),
    _line("float-max-in-traits", None, type="identify", event=None, traits={"score": 1.7976931348623157e308}),
    _line("float-min-in-properties", None, properties={"score": -1.7976931348623157e308}),
    _line("float-tiny-in-properties", None, properties={"score": 5e-324, "other": -1.5e-300}),
    _line("int-1e100-in-properties", None, BIG_INT, properties={"score": _RAW}),
    _line("int-39-digits-in-context", None, b"-" + b"9" * 39, context={"score": _RAW}),
    _line("int-1e100-in-a-deep-list", None, _nested(300, BIG_INT), properties={"deep": _RAW}),
    _line("int-2-to-the-70-in-properties", None, b"%d" % 2**70, properties={"score": _RAW}),
    _line("float-1e50-in-products", None, properties={"products": [{"product_id": "p-1", "price": 1e50}]}),
    _line("float-1e50-deep", None, _nested(600, b"1e50"), properties={"deep": _RAW}),
    _line("typed-floats-huge-and-tiny", None, properties={"total": 1e50, "revenue": 1e300, "price": 1e-300}),
    # Polars writes these doubles as integers that are not them (37473856928378180; numbers.py).
    _line("rounded-in-properties", None, properties={"score": 3.747385692837818e16, "n": [-1.8e17, 1e19]}),
    _line("rounded-in-traits", None, type="identify", event=None, traits={"v": 1.2345678901234567e18}),
    _line("rounded-in-context", None, context={"score": 3.747385692837818e16}),
    _line("rounded-in-products", None, properties={"products": [{"price": 3.747385692837818e16}]}),
    _line("int-above-2-to-the-54", None, properties={"score": 37473856928378181, "n": [2**64 - 1]}),
    _line("quantity-int64-max", None, properties={"quantity": 2**63 - 1}),
    _line("quantity-whole-double", None, b"2.0", properties={"quantity": _RAW}),  # a whole number: 2
    _line("quantity-whole-exponent", None, b"2e3", properties={"quantity": _RAW}),
    _line("quantity-int64-min", None, properties={"quantity": -(2**63)}),
    _line("escaped-surrogate-pair", None, _id("pair", b"\\ud83d\\ude00"), messageId=_RAW),
    _line("escaped-surrogate-pair-upper", None, _id("pair-upper", b"\\uD83D\\uDE00"), messageId=_RAW),
    _line("non-bmp-characters", None, messageId="hostile-non-bmp-\U0001f600\U00010348"),
    _line("escaped-nul-1", None, _id("nul", b"\\u0000"), messageId=_RAW),
    _line("escaped-nul-2", None, _id("nul", b"\\u0000\\u0000"), messageId=_RAW),
    _line("escaped-control-chars", None, _id("ctl", b"\\u0001\\u001f\\t\\n"), messageId=_RAW),
    _line("escaped-backslash-u-d800", None, _id("bs", b"\\\\ud800"), messageId=_RAW),  # text, no escape
    _line("deep-nesting-1000", None, _nested(1000), properties={"deep": _RAW}),
    # Polars writes these characters back unescaped in an object's text (objects.py).
    _line("backslash-in-properties", None, properties={"path": "C:\\Users\\shop", "pattern": "a\\d+\\"}),
    _line("controls-in-properties", None, properties={"name": "a\tb\x01\x1f\x7f\b\f", "note": "1\n2\r"}),
    _line("quote-backslash-tab-in-keys", None, properties={'say "hi"': 1, "back\\slash": 2, "tab\tkey": 3}),
    _line("backslash-in-products", None, properties={"products": [{"product_id": "p-\\1", "name": "a\tb"}]}),
    _line("backslash-in-traits", None, type="identify", event=None, traits={"note": "a\\b", 'k"': 1}),
    _line("newline-and-cr-in-keys", None, properties={"line\nbreak": 1, "carriage\rreturn": 2}),
    _line("quote-newline-in-value", None, properties={"products": [{"product_id": "p-2", "name": '32"\n'}]}),
    _line("backslash-in-context", None, context={"ip": "203.0.113.7", "userAgent": "Mozilla\\5.0\t"}),
]
QUARANTINED = [
    _line("lone-high-surrogate-id", INVALID_JSON, _id("lone", b"\\ud800"), messageId=_RAW),
    _line("lone-high-surrogate-id-2", INVALID_JSON, _id("lone", b"\\udbff"), messageId=_RAW),
    _line("lone-high-surrogate-then-char", INVALID_JSON, _id("lone", b"\\ud800x"), messageId=_RAW),
    _line("lone-high-surrogate-twice", INVALID_JSON, _id("lone", b"\\ud800\\ud800"), messageId=_RAW),
    _line("lone-low-surrogate-id", INVALID_JSON, _id("lone", b"\\udc00"), messageId=_RAW),
    _line("lone-surrogate-after-backslash", INVALID_JSON, _id("lone", b"\\\\\\ud800"), messageId=_RAW),
    _line("lone-surrogate-in-properties", INVALID_JSON, b'{"name": "\\ud800"}', properties=_RAW),
    _line("lone-surrogate-in-a-key", INVALID_JSON, b'{"\\ud800": 1}', context=_RAW),
    _line("raw-control-char", INVALID_JSON, b'"hostile-raw-\x01"', messageId=_RAW),
    _line("float-1e400", INVALID_JSON, b"1e400", properties={"score": _RAW}),
    _line("nesting-too-deep", INVALID_JSON, _nested(2000), properties={"deep": _RAW}),
    _line("quantity-2-to-the-70", OUT_OF_RANGE, b"%d" % 2**70, properties={"quantity": _RAW}),
    _line("quantity-minus-2-to-the-70", OUT_OF_RANGE, b"%d" % -(2**70), properties={"quantity": _RAW}),
    _line("quantity-2-to-the-63", OUT_OF_RANGE, properties={"quantity": 2**63}),
    _line("quantity-1e19", OUT_OF_RANGE, properties={"quantity": 1e19}),
    _line("quantity-1e100-literal", OUT_OF_RANGE, BIG_INT, properties={"quantity": _RAW}),
    _line("quantity-text-1e30", OUT_OF_RANGE, properties={"quantity": "1e30"}),
    # Not whole: they were kept rounded toward zero (1.5 -> 1, 0.999 -> 0; found by QA, 2026-12-05).
    _line("quantity-one-and-a-half", OUT_OF_RANGE, properties={"quantity": 1.5}),
    _line("quantity-just-below-one", OUT_OF_RANGE, properties={"quantity": 0.999}),
    _line("quantity-minus-a-half", OUT_OF_RANGE, properties={"quantity": -0.5}),
    _line("quantity-text-2.7", OUT_OF_RANGE, properties={"quantity": "2.7"}),
    _line("price-text-nan", OUT_OF_RANGE, properties={"price": "NaN"}),
    _line("price-text-infinity", OUT_OF_RANGE, properties={"price": "Infinity"}),
    _line("total-text-1e400", OUT_OF_RANGE, properties={"total": "1e400"}),
    _line("revenue-text-minus-inf", OUT_OF_RANGE, properties={"revenue": "-inf"}),
]
HOSTILE_LINES = [*KEPT, *QUARANTINED]
