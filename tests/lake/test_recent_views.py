"""A shopper's `recent_views` and `recent_searches` are the most recent ones wherever the profile is read.

The state store keeps each list in canonical (ascending) order, the lake's merge leaves them newest
first; `derive` and `derive_one` took the first ten as they came, so the profile API and the emails
(which derive from the store) showed the ten OLDEST products a shopper viewed. Fails without the fix.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import orjson
import polars as pl

from resources.lake import LakeResource
from resources.landing import LandingResource
from resources.state import StateResource
from services.collector.profile_store import ProfileStore
from stores.decide.reads import customers, profile_state
from stores.ingest import ingest
from stores.profiles import profiles_view
from tests.profile_shop import NOW, message
from transforms.profiles.derive import derive

USER = "u-recent-1"
# Twelve products and twelve searches, one a minute: the newest are p-11 and "q 11"; p-05 comes again last.
VIEWED = [f"p-{i:02d}" for i in range(12)]
NEWEST_VIEWS = ["p-05", "p-11", "p-10", "p-09", "p-08", "p-07", "p-06", "p-04", "p-03", "p-02"]
NEWEST_SEARCHES = [f"q {i:02d}" for i in range(11, 1, -1)]


def _land(landing: LandingResource) -> None:
    views = [message("Product Viewed", 60 - i, user=USER, product_id=p) for i, p in enumerate(VIEWED)]
    views.append(message("Product Viewed", 30, user=USER, product_id="p-05"))
    searches = [message("Products Searched", 60 - i, user=USER, query=f"q {i:02d}") for i in range(12)]
    landing.land("events/recent.ndjson", b"\n".join(views + searches) + b"\n")


def test_the_ten_newest_views_and_searches_from_the_store_the_api_and_the_lake(
    lake: LakeResource, landing: LandingResource, tmp_path: Path
) -> None:
    state = StateResource(uri=str(tmp_path / "state"))
    _land(landing)
    ingest(lake, landing, state=state)
    with state.reader() as reader:  # as triggers and sends derive it
        stored, links = profile_state(reader, [USER])
        row = derive(stored, customers(reader, [USER], links), NOW).row(0, named=True)
    assert (row["recent_views"], row["recent_searches"]) == (NEWEST_VIEWS, NEWEST_SEARCHES)
    profile = ProfileStore(state).profile(USER)  # the profile API's lookup (derive_one)
    assert profile is not None
    answer = orjson.loads(orjson.dumps(profile.row, default=str))
    assert (answer["recent_views"], answer["recent_searches"]) == (NEWEST_VIEWS, NEWEST_SEARCHES)
    lake_row = profiles_view(lake, NOW + timedelta(minutes=1)).filter(pl.col("user_id") == USER)
    assert lake_row["recent_views"].to_list() == [NEWEST_VIEWS]
    assert lake_row["recent_searches"].to_list() == [NEWEST_SEARCHES]
