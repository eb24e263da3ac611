"""Erasure requests under names that say nothing: an operator may name a request file after the person
(`erasure/jane.doe@example.com.json`), and Dagster stores what it runs on (run key, run config, tags,
logs, metadata). So a request is renamed in place, atomically, to `erasure/req-<random>.json` before a
run is launched or it is carried out, and only that name goes further. The old name is kept nowhere.

A rename happens once: a renamed request (or one `lakemail erase` landed, `cli-<random>.json`) already
has such a name, and of two that race to rename a file one finds it gone.
"""

from __future__ import annotations

import logging
import os
import re
import uuid

from resources.landing import LandedFile, LandingResource
from stores.erasure.requests import REQUESTS, pending_requests

log = logging.getLogger(__name__)
OPAQUE_NAME = re.compile(r"(?:req|cli)-[0-9a-f]{32}\.json")


def opaque_path(path: str) -> str:
    """The name `path` is carried out under: itself when it says nothing (or is no request file name, which
    the erasure rejects as it is), else a new `erasure/req-<random>.json`."""
    name = path.removeprefix(f"{REQUESTS}/")
    if name == path or "/" in name or not name.endswith(".json") or OPAQUE_NAME.fullmatch(name):
        return path
    return f"{REQUESTS}/req-{uuid.uuid4().hex}.json"


def take_request(landing: LandingResource, path: str, opaque: str) -> None:
    """Rename the request at `path` to `opaque` (the entry itself, a link or FIFO too); nothing when it
    is gone (another run or the sensor took it). Any other failure raises an OSError naming neither."""
    if path == opaque:
        return
    failed: OSError | None = None
    try:
        os.rename(landing.root / path, landing.root / opaque)
    except FileNotFoundError:
        return
    except OSError as error:  # its message holds both names: raised anew, outside, so none is chained
        failed = OSError(
            error.errno, f"{error.strerror}: an erasure request cannot be renamed in {REQUESTS}/"
        )
    if failed is not None:
        raise failed


def take_pending(landing: LandingResource) -> list[LandedFile]:
    """The requests waiting in `erasure/`, each under an opaque name (renamed here first, once)."""
    taken: list[LandedFile] = []
    for landed in pending_requests(landing):
        opaque = opaque_path(landed.path)
        if opaque != landed.path:
            try:
                take_request(landing, landed.path, opaque)
            except OSError as error:
                log.warning("an erasure request waits under its own name in %s/: %s", REQUESTS, error)
                continue
        renamed = landed if opaque == landed.path else landing.stat(opaque)
        if renamed is not None:
            taken.append(renamed)
    return sorted(taken, key=lambda f: f.path)
