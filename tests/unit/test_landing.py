"""`land`: the one writer of landing files (temp name, fsync, rename, fsync of the folder)."""

from __future__ import annotations

from pathlib import Path

import pytest

from resources.landing import LandingResource, land


def test_land_puts_the_whole_file_in_place_and_leaves_no_temp(tmp_path: Path) -> None:
    path = land(tmp_path / "events", "a.ndjson", b'{"x":1}\n')
    assert path == tmp_path / "events" / "a.ndjson"
    assert path.read_bytes() == b'{"x":1}\n'
    assert [p.name for p in path.parent.iterdir()] == ["a.ndjson"]


def test_a_landed_file_is_never_overwritten_unless_asked(tmp_path: Path) -> None:
    path = land(tmp_path, "a.ndjson", b"first\n")
    with pytest.raises(FileExistsError):
        land(tmp_path, "a.ndjson", b"second\n")
    assert path.read_bytes() == b"first\n"
    land(tmp_path, "a.ndjson", b"second\n", replace=True)
    assert path.read_bytes() == b"second\n"
    assert [p.name for p in tmp_path.iterdir()] == ["a.ndjson"]


@pytest.mark.parametrize("name", ["", ".hidden.ndjson", "x.ndjson.tmp", "sub/x.ndjson"])
def test_land_refuses_names_the_ingest_would_skip(tmp_path: Path, name: str) -> None:
    with pytest.raises(ValueError, match="not a landing file name"):
        land(tmp_path, name, b"{}\n")
    assert list(tmp_path.iterdir()) == []


def test_a_failed_write_leaves_nothing_behind(tmp_path: Path) -> None:
    with pytest.raises(TypeError):
        land(tmp_path, "a.ndjson", "not bytes")  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


def test_the_landing_resource_lands_under_its_root_and_lists_what_landed(tmp_path: Path) -> None:
    landing = LandingResource(uri=f"file://{tmp_path}")
    path = landing.land("erasure/r.json", b'{"user_id":"u1"}')
    assert path == tmp_path / "erasure" / "r.json"
    assert [f.path for f in landing.list_files("erasure")] == ["erasure/r.json"]
