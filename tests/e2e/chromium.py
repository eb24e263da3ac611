"""A real headless Chromium (Debian's chromium + chromium-driver; `make browser` installs them) against a
real collector serving the demo shop and `/lakemail.js` on 127.0.0.1, for the snippet's tests.

`--host-resolver-rules` sends every `*.shop.example` name to 127.0.0.1: pages on two subdomains of one
site (`www.`, `checkout.`) reach the same collector, as a shop's do. `Backlog` is what the collector's
probe reports: `Refusing.on` puts it over its bound, so the real collector answers 503 with Retry-After.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

from services.collector.app import CollectorConfig, create_collector_app
from services.collector.backlog import Backlog
from services.server import ServerThread
from simulator.shop import make_catalog

KEY = "wk-browser"
SITE = "shop.example"  # resolved to 127.0.0.1 by the browser: www.shop.example, checkout.shop.example
Messages = list[dict[str, Any]]


@contextmanager
def chromium(folder: Path, prefs: dict[str, Any] | None = None) -> Iterator[webdriver.Chrome]:
    """A headless Chromium with its own profile in `folder` (`prefs`: Chrome preferences)."""
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(argument)
    options.add_argument(f"--host-resolver-rules=MAP *.{SITE} 127.0.0.1")
    options.add_argument(f"--user-data-dir={folder / 'chromium'}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    if prefs:
        options.add_experimental_option("prefs", prefs)
    driver = webdriver.Chrome(options=options, service=Service("/usr/bin/chromedriver"))
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


@dataclass
class Refusing:
    """The collector's backlog probe: over the bound (so every tracking request gets 503) while `on`."""

    on: bool = False

    def __call__(self) -> Backlog:
        return Backlog(files=10**9 if self.on else 0, bytes=0, free_bytes=1 << 62)


@contextmanager
def collector(folder: Path, refusing: Refusing | None = None) -> Iterator[str]:
    """A collector with the demo shop on 127.0.0.1 landing into `folder / "landing"`; its URL."""
    config = CollectorConfig(
        landing=folder / "landing",
        write_keys=(KEY,),
        linger=0.05,
        shop_catalog=make_catalog(seed=0),
        probe=refusing or Refusing(),
        probe_seconds=0.1,
    )
    with ServerThread(create_collector_app(config)) as server:
        yield server.url


def landed(folder: Path) -> Messages:
    """Every message landed under `folder / "landing"` so far."""
    files = sorted(f for f in (folder / "landing" / "events").glob("*.ndjson") if not f.name.startswith("."))
    return [orjson.loads(line) for f in files for line in f.read_bytes().splitlines()]


def landed_when(folder: Path, done: Callable[[Messages], object], seconds: float = 15) -> Messages:
    """What has landed once `done` holds of it, or after `seconds` (the caller's assertion says what not)."""
    deadline = time.monotonic() + seconds
    while not done(messages := landed(folder)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return messages


def events(messages: Messages, name: str) -> Messages:
    return [m for m in messages if m.get("event") == name]


def console(driver: webdriver.Chrome) -> list[str]:
    """The page's console lines since the last call (warnings and uncaught errors among them)."""
    return [str(entry["message"]) for entry in driver.get_log("browser")]


def watch_posts(driver: webdriver.Chrome) -> None:
    """Record in the page when the snippet posts (window.__posts, epoch ms): it calls window.fetch."""
    driver.execute_script(
        "window.__posts = []; var send = window.fetch; window.fetch = function () {"
        " window.__posts.push(Date.now()); return send.apply(this, arguments); };"
    )
