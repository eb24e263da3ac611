"""`lakemail simulate --via-collector`: the simulator's events posted as Segment's clients post them."""

from __future__ import annotations

import base64
from pathlib import Path

import httpx
import orjson

from simulator.collector import BATCH_MESSAGES, CollectorLander, batches
from simulator.segment import SimLine


def lines(n: int) -> list[SimLine]:
    return [
        SimLine(orjson.dumps({"type": "page", "anonymousId": f"a-{i}", "messageId": f"m-{i}"}), "ok")
        for i in range(n)
    ]


def test_batches_hold_at_most_100_messages_and_skip_lines_that_are_not_json() -> None:
    found = batches([*lines(250), SimLine(b'{"type": "pa', "malformed", "invalid_json")])
    assert [len(b) for b in found] == [BATCH_MESSAGES, BATCH_MESSAGES, 50]


def test_a_refused_batch_is_sent_again_with_the_same_messages_until_it_is_kept(tmp_path: Path) -> None:
    seen: list[httpx.Request] = []

    def collector(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if len(seen) == 1:
            return httpx.Response(503, headers={"Retry-After": "0"}, json={"code": "backlog_full"})
        return httpx.Response(200, json={"success": True})

    client = httpx.Client(
        base_url="http://collector", auth=("wk", ""), transport=httpx.MockTransport(collector)
    )
    lander = CollectorLander(tmp_path, 0, None, url="http://collector", write_key="wk", client=client)
    pending = lines(3)
    lander.land(pending)
    lander.close()
    assert pending == [] and lander.report.posted == {"batches": 1, "messages": 3, "refused": 0}
    assert [r.headers.get("X-Retry-Count") for r in seen] == [None, "1"]
    assert seen[0].content == seen[1].content  # the same messageIds: the lake counts them once
    assert seen[0].headers["Authorization"] == "Basic " + base64.b64encode(b"wk:").decode()
    assert [m["messageId"] for m in orjson.loads(seen[1].content)["batch"]] == ["m-0", "m-1", "m-2"]
    assert lander.report.lines["ok"] == 3 and lander.report.files == []
