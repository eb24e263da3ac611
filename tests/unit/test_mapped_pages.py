"""A store commit drops the pages of the store's map from the process's RSS (#17, peak RSS), and the
store reads the same values afterwards."""

from __future__ import annotations

from pathlib import Path

from resources.mapped_pages import mapped_ranges, release
from resources.state import StateResource
from transforms.state import StateChanges

MAPS = """\
7f0000000000-7f0000100000 r--s 00000000 fd:01 123 /srv/state/data.mdb
7f0000200000-7f0000300000 r--s 00000000 fd:01 124 /srv/state/data.mdb (deleted)
7f0000400000-7f0000500000 r--s 00000000 fd:01 125 /srv/other/data.mdb
7f0000600000-7f0000700000 rw-p 00000000 00:00 0
"""


def test_the_maps_of_a_file_are_found_also_once_replaced() -> None:
    assert mapped_ranges(Path("/srv/state/data.mdb"), MAPS) == [
        (0x7F0000000000, 0x7F0000100000),
        (0x7F0000200000, 0x7F0000300000),
    ]
    assert mapped_ranges(Path("/srv/state/data"), MAPS) == []


def resident_kb(file: Path) -> int:
    """This process's resident KB of its maps of `file` (/proc/self/smaps)."""
    total, current = 0, ""
    for line in Path("/proc/self/smaps").read_text().splitlines():
        head = line.split(maxsplit=5)
        if "-" in head[0] and not head[0].endswith(":"):
            current = head[5] if len(head) == 6 else ""
        elif head[0] == "Rss:" and current == str(file):
            total += int(head[1])
    return total


def test_a_commit_leaves_none_of_the_stores_pages_resident(tmp_path: Path) -> None:
    state = StateResource(uri=str(tmp_path / "state"))
    store = state.store()
    keys = [f"{n:032x}" for n in range(20_000)]
    changes = StateChanges()
    for key in keys:
        changes.put("event_ids", key, b"v" * 64)
    store.commit(1, changes)
    assert len(store.get_many("event_ids", keys)) == len(keys)  # every page read: mapped
    file = (tmp_path / "state" / "data.mdb").absolute()
    assert resident_kb(file) > 1000
    store.commit(2, StateChanges())
    assert resident_kb(file) == 0
    assert store.get_many("event_ids", keys[:3]) == dict.fromkeys(keys[:3], b"v" * 64)
    assert release(tmp_path / "nothing.mdb") == 0  # no map of it: nothing advised
