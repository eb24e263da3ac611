"""A lake or landing URI becomes a folder in one place; object stores have none."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestration.sensors import HEARTBEAT, heartbeat_path
from resources.lake import LakeResource
from resources.landing import LandingResource


@pytest.mark.parametrize(
    ("uri", "folder"),
    [
        ("/srv/lake", Path("/srv/lake")),
        ("file:///srv/lake", Path("/srv/lake")),
        ("data/lake", Path("data/lake")),
        ("s3://bucket/lake", None),
        ("az://container/lake", None),
    ],
)
def test_a_lake_uri_is_a_local_folder_or_none(uri: str, folder: Path | None) -> None:
    lake = LakeResource(uri=uri)
    assert lake.root == folder
    assert heartbeat_path(lake) == (folder / HEARTBEAT if folder else None)


def test_an_object_store_lake_lists_no_tables_and_takes_no_file_lock() -> None:
    lake = LakeResource(uri="s3://bucket/lake")
    assert lake.table_names() == []
    with lake.writer_lock():  # nothing created on this machine
        pass


def test_the_landing_zone_is_a_local_folder() -> None:
    assert LandingResource(uri="file:///srv/landing").root == Path("/srv/landing")
    with pytest.raises(ValueError, match="local folder"):
        _ = LandingResource(uri="s3://bucket/landing").root
