"""The provider's answers and retries are counted where the calls are made (#18): by status code, by
error class when no answer came, never by address."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from prometheus_client import CollectorRegistry, generate_latest

from resources.email import deliver
from resources.provider_metrics import PROVIDER_COLLECTORS
from resources.providers import SandboxProvider
from tests.unit.test_delivery import EMAIL, KEY, FakeTime


@pytest.fixture
def registry() -> Iterator[CollectorRegistry]:
    registry = CollectorRegistry()
    for collector in PROVIDER_COLLECTORS:
        registry.register(collector)
    yield registry


def counted(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


@pytest.mark.parametrize(
    ("answers", "codes", "retries"),
    [
        ([503, 429, 202], {"503": 1, "429": 1, "202": 1}, 2),
        ([202], {"202": 1}, 0),
        ([401], {"401": 1}, 0),  # refused: the circuit opens, no retry
        ([httpx.ConnectError, 202], {"ConnectError": 1, "202": 1}, 1),
        ([httpx.ReadTimeout], {"ReadTimeout": 1}, 0),  # ambiguous: never repeated
    ],
)
def test_answers_by_code_and_retries_are_counted(
    registry: CollectorRegistry,
    answers: list[int | type[httpx.RequestError]],
    codes: dict[str, int],
    retries: int,
) -> None:
    before = {
        code: counted(registry, "lakemail_provider_responses_total", provider="sandbox", code=code)
        for code in codes
    }
    retried = counted(registry, "lakemail_provider_retries_total", provider="sandbox")
    script = iter(answers)

    def answer(request: httpx.Request) -> httpx.Response:
        step = next(script)
        if isinstance(step, int):
            headers = {"X-Message-Id": "m-1"} if step == 202 else {"Retry-After": "1"}
            return httpx.Response(step, headers=headers, json={} if step != 202 else None)
        raise step("no answer", request=request)

    time = FakeTime()
    provider = SandboxProvider(base_url="http://sandbox.test", api_key=KEY)
    with httpx.Client(transport=httpx.MockTransport(answer)) as client:
        deliver(provider, EMAIL, client, sleep=time.sleep, clock=time.clock)
    for code, n in codes.items():
        after = counted(registry, "lakemail_provider_responses_total", provider="sandbox", code=code)
        assert after - before[code] == n, code
    assert counted(registry, "lakemail_provider_retries_total", provider="sandbox") - retried == retries
    exposed = generate_latest(registry).decode()
    assert EMAIL.to not in exposed and KEY not in exposed
