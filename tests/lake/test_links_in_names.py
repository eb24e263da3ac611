"""A name from an event never carries a link into the shop's email (found by review). The write key is
public (it is in every shop page), so anyone could identify a stranger's address with marketing consent
and a first name such as `Claim your prize at evil.example/win`: the welcome went out at once, from
the shop, with that text in its subject and greeting, and mail clients make a link of it (the same for
the name of a carted product the catalog lacks). PRODUCT.md section 5: only `https:` links survive, and
links are the shop's own. Real path: ingest, engine, send stage, the real sandbox on 127.0.0.1."""

from __future__ import annotations

from pathlib import Path

import httpx
import polars as pl

from tests.lake.test_sandbox_lookup_send import AUTH, home_sandbox, send_run
from tests.lake.test_unsubscribe_anonymous import Home
from tests.story import at, message
from transforms.schema import SENDS_SCHEMA

BAIT = "Claim your prize at evil.example/win"


def test_a_first_name_holding_a_link_is_not_mailed(tmp_path: Path) -> None:
    home = Home(tmp_path / "home")
    identify = message(
        "identify",
        at(0),
        user="u-bait",
        first_name=BAIT,
        email="stranger@example.com",
        marketing_consent=True,
        timezone="Europe/London",
    )
    home.batch("0", at(0), identify)
    home.engine(at(1))
    with home_sandbox(home, tmp_path / "sandbox") as url:
        row = send_run(home, url, at(1))
        [mail] = httpx.get(f"{url}/api/messages", headers=AUTH).json()
    assert row["status"] == "sent"
    shown = " ".join([mail["subject"], mail["text"], mail["html"]])
    assert "evil" not in shown and "prize" not in shown
    assert "Hello," in mail["text"]  # the neutral greeting
    fallbacks = pl.read_delta(f"{home.lake.uri}/sends").select(list(SENDS_SCHEMA))["fallbacks"][0]
    assert '"reason": "link_in_first_name"' in fallbacks
