"""Delivery policy, pure: what a provider's answer means, how long to wait, what to keep of an error."""

from __future__ import annotations

import json
import random
from email.utils import formatdate

import pytest
from hypothesis import given
from hypothesis import strategies as st

from transforms.sends.policy import (
    MAX_SERVER_WAIT,
    REDIRECT_HINT,
    RetryBudget,
    Verdict,
    classify,
    classify_response,
    describe_error,
    inactive_recipient,
    retry_delay,
    server_delay,
)

NOW = 1_700_000_000.0


VERDICTS = {
    Verdict.SENT: (200, 202, 204),
    Verdict.RETRY: (408, 429, 500, 502, 503, 504),
    Verdict.AUTH: (401, 403),
    Verdict.PERMANENT: (400, 404, 413, 422),
    Verdict.CONFIG: (301, 304, 307, 308),
    Verdict.UNKNOWN: (101, 302, 303),
}


@pytest.mark.parametrize(("status", "verdict"), [(s, v) for v, codes in VERDICTS.items() for s in codes])
def test_classify(status: int, verdict: Verdict) -> None:
    assert classify(status) is verdict


def test_a_redirect_to_another_path_may_follow_a_request_acted_on() -> None:
    """A 303 (or a 302 elsewhere) is how a post-redirect-get answers: the email may have gone."""
    assert classify(302, same_target=True) is Verdict.CONFIG  # http:// to https://, same path
    assert classify(303, same_target=True) is Verdict.UNKNOWN
    assert classify(308, same_target=False) is Verdict.CONFIG  # "send the same request there"
    assert (
        describe_error(308, b'{"message": "moved"}')
        == f"HTTP 308: redirected, not followed ({REDIRECT_HINT})"
    )


@pytest.mark.parametrize(
    ("code", "verdict"), [(300, Verdict.PERMANENT), (406, Verdict.PERMANENT), (400, Verdict.AUTH)]
)
def test_a_postmark_account_error_opens_the_circuit(code: int, verdict: Verdict) -> None:
    body = json.dumps({"ErrorCode": code, "Message": "x"}).encode()
    assert classify_response(422, body) is verdict
    assert classify_response(503, body) is Verdict.RETRY


@pytest.mark.parametrize("code", [[10], {"ErrorCode": 406}, "406", 406.0, True, None])
def test_an_error_code_that_is_no_number_is_no_postmark_code(code: object) -> None:
    """A list or an object as `ErrorCode` (a webhook's receiver, a proxy) raised TypeError out of the set
    lookup and failed the run (found by review): such an answer is the plain 4xx it is."""
    body = json.dumps({"ErrorCode": code, "Message": "no"}).encode()
    assert classify_response(422, body) is Verdict.PERMANENT
    assert classify_response(400, body) is Verdict.PERMANENT
    assert not inactive_recipient(422, body)
    assert describe_error(422, body) == "HTTP 422: no"


def test_retry_after_seconds() -> None:
    assert retry_delay(0, {"Retry-After": "7"}, now=NOW, rng=random.Random(1)) == 7.0
    assert retry_delay(3, {"retry-after": " 2 "}, now=NOW, rng=random.Random(1)) == 2.0


def test_retry_after_http_date() -> None:
    headers = {"Retry-After": formatdate(NOW + 42, usegmt=True)}
    assert retry_delay(0, headers, now=NOW, rng=random.Random(1)) == pytest.approx(42.0)
    past = {"Retry-After": formatdate(NOW - 42, usegmt=True)}
    assert retry_delay(0, past, now=NOW, rng=random.Random(1)) == 0.0


def test_rate_limit_reset_epoch_is_never_undercut() -> None:
    reset = {"X-RateLimit-Reset": str(int(NOW) + 45)}
    assert retry_delay(0, reset, now=NOW + 0.5, rng=random.Random(1)) == pytest.approx(44.5)
    # Both hints: the later one wins, so we never call before the reset.
    both = {"X-RateLimit-Reset": str(int(NOW) + 45), "Retry-After": "3"}
    assert retry_delay(0, both, now=NOW, rng=random.Random(1)) == 45.0
    # A reset beyond the cap is still honoured: the budget, not the backoff, decides whether to wait.
    assert retry_delay(0, {"X-RateLimit-Reset": str(int(NOW) + 600)}, now=NOW, rng=random.Random(1)) == 600.0


@pytest.mark.parametrize(
    "headers",
    [
        {"Retry-After": "999999999999"},
        {"Retry-After": "1e300"},
        {"Retry-After": "Fri, 31 Dec 9999 23:59:59 GMT"},
        {"X-RateLimit-Reset": "1e15"},  # an epoch in the year ~31 700
        {"X-RateLimit-Reset": "9e8"},  # below the epoch floor: 28 years in seconds
    ],
)
def test_an_absurdly_far_hint_is_held_to_a_day(headers: dict[str, str]) -> None:
    """A timedelta cannot hold 10**12 s: the run that stored the wait crashed, its emails lost."""
    assert server_delay(headers, now=NOW) == MAX_SERVER_WAIT == 24 * 3600
    assert retry_delay(0, headers, now=NOW, rng=random.Random(1)) == MAX_SERVER_WAIT


@pytest.mark.parametrize("value", ["soon", "", "nan", "inf", "-5x"])
def test_unusable_hints_fall_back_to_backoff(value: str) -> None:
    delay = retry_delay(2, {"Retry-After": value, "X-RateLimit-Reset": value}, now=NOW, rng=random.Random(1))
    assert 0.0 <= delay <= 0.5 * 2**2


@given(attempt=st.integers(0, 40), seed=st.integers(0, 2**32))
def test_backoff_is_full_jitter_within_the_cap(attempt: int, seed: int) -> None:
    delay = retry_delay(attempt, {}, now=NOW, rng=random.Random(seed), base=0.5, cap=30.0)
    assert 0.0 <= delay <= min(30.0, 0.5 * 2**attempt)


def test_backoff_spreads_over_the_window() -> None:
    rng = random.Random(3)
    delays = [retry_delay(4, {}, now=NOW, rng=rng) for _ in range(200)]
    assert min(delays) < 1.0 and max(delays) > 7.0  # window is [0, 8]: jitter, not a fixed step


def test_retry_budget() -> None:
    budget = RetryBudget(max_attempts=3, max_seconds=10.0)
    assert budget.allows(1, 0.0, 10.0) and budget.allows(2, 5.0, 5.0)
    assert not budget.allows(3, 0.0, 0.0) and not budget.allows(1, 5.0, 5.1)
    with pytest.raises(ValueError, match="max_attempts"):
        RetryBudget(max_attempts=0)


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (
            400,
            {
                "errors": [
                    {
                        "message": "The from address does not match a verified Sender Identity.",
                        "field": "from",
                    }
                ]
            },
            "HTTP 400: The from address does not match a verified Sender Identity.",
        ),
        (
            422,
            {"ErrorCode": 300, "Message": "Invalid 'To' address: 'ada@example.org'."},
            "HTTP 422: Invalid 'To' address: '<address>'. (ErrorCode 300)",
        ),
        (500, None, "HTTP 500"),
    ],
)
def test_describe_error_keeps_the_message_without_the_address(
    status: int, body: object, expected: str
) -> None:
    raw = json.dumps(body).encode() if body is not None else b"<html>oops</html>"
    assert describe_error(status, raw) == expected


def test_describe_error_is_truncated() -> None:
    body = json.dumps({"errors": [{"message": "x" * 5000}]}).encode()
    assert len(describe_error(400, body)) == 300
