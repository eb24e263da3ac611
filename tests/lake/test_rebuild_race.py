"""Two rebuilds of one state store at once end as one, neither failing (found by review).

At an upgrade (a store of an earlier KEY_FORMAT) the ingest lane and the decide lane each rebuild the store
under their own lake lock, so two `lakemail runner`s (`lakemail up`) rebuilt it at once: the second's
`discard_staging` deleted the first's store half built, and the first's run failed at the swap
(FileNotFoundError '.state.new-...' -> 'state'). Rebuilds now take turns (`StateResource.rebuilding`).
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from resources.lake import LakeResource
from stores.state import rebuild as rebuild_module
from stores.state.namespaces import Chunks
from stores.state.rebuild import check, rebuild
from tests.lake.test_state_live import land
from tests.lake.test_state_sync import Home, batches


def test_two_rebuilds_at_once_both_succeed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = Home(tmp_path / "home")
    for n, batch in enumerate(batches()):
        land(home.landing, f"b{n}", batch)
        home.run()
    inside, go, calls = threading.Event(), threading.Event(), []
    original = rebuild_module.READERS["customers"]

    def paused(lake: LakeResource) -> Chunks:
        calls.append(1)
        if len(calls) == 1:  # the first rebuild stops half built, its store staged beside the old one
            inside.set()
            assert go.wait(30)
        yield from original(lake)

    monkeypatch.setitem(rebuild_module.READERS, "customers", paused)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            rebuild(home.lake, home.state)
        except BaseException as error:
            errors.append(error)

    first, second = threading.Thread(target=run), threading.Thread(target=run)
    first.start()
    assert inside.wait(30)
    second.start()
    second.join(1.0)  # without the lock it has discarded the first's staging and swapped in its own
    go.set()
    first.join(30)
    second.join(30)
    assert errors == [] and len(calls) == 2
    assert check(home.lake, home.state).equal
