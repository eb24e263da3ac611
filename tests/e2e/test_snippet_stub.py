"""lakemail.js loaded `async` by the README's inline stub, in a real headless Chromium: a shop's page on
127.0.0.1 (its own server) serves the stub, the snippet (slowly: a page calls before it arrives) and
forwards /v1/batch to a real collector, answering 408 first when told to, as a proxy on the way may."""

from __future__ import annotations

import asyncio
import re
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import orjson
from fastapi import FastAPI, Request, Response
from fastapi.responses import HTMLResponse
from selenium.webdriver.support.ui import WebDriverWait

from services.collector.shop import STATIC
from services.server import ServerThread
from tests.e2e.chromium import KEY, Messages, chromium, collector, console, events, landed_when

README = Path(__file__).resolve().parents[2] / "README.md"
README_SRC = "http://127.0.0.1:8000/lakemail.js"


def stub() -> str:
    """The README's inline stub, as a shop pastes it (its calls after the loader left out)."""
    (block,) = [b for b in re.findall(r"```html\n(.*?)```", README.read_text(), re.S) if "lm.factory" in b]
    loader = textwrap.dedent(block).split("}(window, document,")[0]
    return loader.removeprefix("<script>\n") + f'}}(window, document, "/lakemail.js", "{KEY}");\n'


@dataclass
class Shop:
    """The shop's server: `calls` run inline after the stub; the first `refuse` posts are answered 408."""

    collector: str
    calls: str = ""
    delay: float = 0.0  # before /lakemail.js is answered
    refuse: int = 0
    hold: float = 0.0  # before a refused post is answered
    posts: list[list[str]] = field(default_factory=list)  # the messageIds of every post, in order

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.get("/page")
        async def page() -> HTMLResponse:
            return HTMLResponse(f"<!doctype html><title>Shop</title><script>{stub()}{self.calls}</script>")

        @app.get("/next")
        async def next_page() -> HTMLResponse:
            return HTMLResponse(f"<!doctype html><title>Next</title><script>{stub()}</script>")

        @app.get("/lakemail.js")
        async def snippet() -> Response:
            await asyncio.sleep(self.delay)
            return Response((STATIC / "lakemail.js").read_bytes(), media_type="text/javascript")

        @app.post("/v1/batch")
        async def batch(request: Request) -> Response:
            body = await request.body()
            self.posts.append([m["messageId"] for m in orjson.loads(body)["batch"]])
            if len(self.posts) <= self.refuse:
                await asyncio.sleep(self.hold)
                return Response(status_code=408)
            async with httpx.AsyncClient() as client:
                answer = await client.post(f"{self.collector}/v1/batch", content=body)
            return Response(answer.content, status_code=answer.status_code, media_type="application/json")

        return app


@contextmanager
def shop(
    folder: Path, calls: str = "", delay: float = 0.0, refuse: int = 0, hold: float = 0.0
) -> Iterator[tuple[str, Shop]]:
    """The shop's URL and server, before a collector landing into `folder / "landing"`."""
    with collector(folder) as url:
        served = Shop(url, calls, delay, refuse, hold)
        with ServerThread(served.app()) as server:
            yield server.url, served


def stamps(messages: Messages) -> list[str]:
    return [m["timestamp"] for m in sorted(messages, key=lambda m: m["timestamp"])]


def test_calls_made_before_the_snippet_loads_land_in_order_as_of_when_they_were_made(tmp_path: Path) -> None:
    # A shop loads the snippet async and calls it inline at once: lakemail was undefined, and the call threw
    # into the shop's page. The stub queues the calls; the snippet replays them when it has loaded.
    calls = (
        "window.__called = []; lakemail.page();"
        "lakemail.identify('u-1', {plan: 'pro'});"
        "lakemail.track('Early', {n: 1}, function () { __called.push('track'); });"
        "window.__calledAt = new Date().toISOString();"
    )
    with shop(tmp_path, calls=calls, delay=1.5) as (url, _), chromium(tmp_path) as driver:
        driver.get(f"{url}/page")
        WebDriverWait(driver, 10).until(lambda d: d.execute_script("return !!window.lakemail.VERSION;"))
        called_at = driver.execute_script("lakemail.track('Late', {}); return window.__calledAt;")
        messages = landed_when(tmp_path, lambda m: events(m, "Early") and events(m, "Late") and len(m) >= 4)
        called = driver.execute_script("return window.__called;")
        lines = console(driver)
    early = [m for m in messages if m.get("event") != "Late"]
    assert [m["type"] for m in sorted(early, key=lambda m: m["timestamp"])] == ["page", "identify", "track"]
    assert all(stamp <= called_at for stamp in stamps(early)), (stamps(early), called_at)
    assert events(messages, "Early")[0]["userId"] == "u-1" and events(messages, "Early")[0]["properties"] == {
        "n": 1
    }
    assert events(messages, "Late")[0]["timestamp"] > called_at and called == ["track"]
    assert not any("Uncaught" in line for line in lines), lines


def test_a_408_is_sent_again_with_the_same_message_ids(tmp_path: Path) -> None:
    # A 408 (a proxy or load balancer timing the request out) was taken as final: the batch was dropped.
    calls = "lakemail.page(); lakemail.track('Once', {});"
    with shop(tmp_path, calls=calls, refuse=1) as (url, served), chromium(tmp_path) as driver:
        driver.get(f"{url}/page")
        messages = landed_when(tmp_path, lambda m: events(m, "Once"))
    assert len(events(messages, "Once")) == 1 and len(messages) == 2
    assert len(served.posts) == 2 and served.posts[0] == served.posts[1]


def test_a_batch_in_flight_when_the_shopper_leaves_lands_from_the_next_page(tmp_path: Path) -> None:
    # The batch was on its way when the shopper clicked on; its answer (a 408 here, or a network error) came
    # to a page that had gone, and it was lost. It is kept in lm_queue as it leaves: the next page sends it.
    calls = "lakemail.track('Going', {});"
    with shop(tmp_path, calls=calls, refuse=1, hold=1.5) as (url, served), chromium(tmp_path) as driver:
        driver.get(f"{url}/page")
        WebDriverWait(driver, 10).until(lambda d: served.posts)
        driver.get(f"{url}/next")
        messages = landed_when(tmp_path, lambda m: events(m, "Going"))
    assert len(events(messages, "Going")) == 1
    assert served.posts[0][0] in served.posts[1], served.posts  # the same messageIds
