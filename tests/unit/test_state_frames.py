"""The state store's bulk read as a frame (#17): `get_frame` answers what `get_many` answers, for the event-id
lookups of a backlog's dedupe and in-run check (1M ids: no Python string or dict entry per id)."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from resources.state import StateResource
from resources.state_lmdb import FOUND_SCHEMA
from stores.state.reads import seen_ids
from transforms.state import PACK_FROM, PUT_SCHEMA, StateChanges

LONG = "k" * 600  # over LMDB's key limit: kept as its hash, answered under the key as asked


@pytest.fixture
def state(tmp_path: Path) -> StateResource:
    return StateResource(uri=str(tmp_path / "state"))


def _as_dict(frame: pl.DataFrame) -> dict[str, bytes]:
    assert frame.schema == pl.Schema(FOUND_SCHEMA) and frame["key"].is_unique().all()
    return dict(zip(frame["key"].to_list(), frame["value"].to_list(), strict=True))


@pytest.mark.parametrize(
    "asked",
    [
        ["e-3", "e-1", "e-1", "", None, "e-9", "e-2"],  # duplicates, an empty and a null id, one not held
        ["e-2", LONG, "e-1"],  # a hashed key: named as asked
        [],
        ["nope"],
    ],
)
@pytest.mark.parametrize("bulk_keys", [0, 256])  # sorted by Polars and read in one getmulti, or key by key
def test_a_frame_read_answers_what_a_dict_read_answers(
    state: StateResource, asked: list[str | None], bulk_keys: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("resources.state_lmdb.BULK_KEYS", bulk_keys)
    big = b'{"views":[' + b'"p-1",' * PACK_FROM + b'"p-2"]}'  # kept zstd-compressed: read back as put
    values = {"e-1": b'{"batch_id":1}', "e-2": b'{"batch_id":2}', "e-3": big, LONG: b'{"batch_id":4}'}
    changes = StateChanges()
    changes.put_many("event_ids", pl.DataFrame(list(values.items()), schema=PUT_SCHEMA, orient="row"))
    state.store().commit(1, changes.settle())
    keys = pl.Series("event_id", asked, dtype=pl.String)
    expected = {k: values[k] for k in asked if k in values}
    frame = state.get_frame("event_ids", keys)
    assert _as_dict(frame) == expected == state.store().get_many("event_ids", keys)
    assert frame["key"].is_sorted() or LONG in asked
    assert sorted(seen_ids(state.store(), keys).to_list()) == sorted(expected)
