"""A renamed shopper's CRM rows as one (`transforms.profiles.crm`): the rows under every id her renames
went through are hers, under the id she goes by now, the newest standing (ties: the row under her id now,
then the greater id); a row under an id whose first alias named someone else is that user's."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import polars as pl

from tests.story import at
from tests.unit.test_alias_users import _edges
from transforms.profiles.crm import crm_ids, shopper_rows
from transforms.profiles.merge import renamed_to
from transforms.schema import CUSTOMERS_SCHEMA


def _rows(*rows: tuple[str, str, datetime | None]) -> pl.DataFrame:
    """customers rows (user_id, loyalty_tier, updated_at)."""
    base: dict[str, Any] = dict.fromkeys(CUSTOMERS_SCHEMA)
    frame = [base | {"user_id": u, "loyalty_tier": t, "updated_at": when} for u, t, when in rows]
    return pl.DataFrame(frame, schema=CUSTOMERS_SCHEMA)


def test_renamed_twice_the_newest_row_of_any_id_stands_under_the_last_name() -> None:
    # u1 renamed u2, then u2 renamed u3; u9's first alias named u8, a later one u3
    renamed = renamed_to(
        _edges(("u1", "u2", 1, 1), ("u2", "u3", 2, 2), ("u9", "u8", 1, 1), ("u9", "u3", 5, 5))
    )
    assert crm_ids(["u1"], renamed) == crm_ids(["u3"], renamed) == ["u1", "u2", "u3"]
    crm = _rows(("u1", "gold", at(30)), ("u2", "silver", at(10)), ("u3", "bronze", None), ("u9", "x", at(40)))
    got = shopper_rows(crm, renamed, ["u1", "u8"]).sort("user_id")
    assert got.select("user_id", "loyalty_tier").rows() == [("u3", "gold"), ("u8", "x")]


def test_a_tie_goes_to_the_row_under_the_id_she_goes_by_now_then_the_greater_id() -> None:
    renamed = renamed_to(_edges(("u1", "u3", 1, 1), ("u2", "u3", 1, 1)))
    both = _rows(("u1", "one", at(5)), ("u2", "two", at(5)))
    assert shopper_rows(both, renamed)["loyalty_tier"].to_list() == ["two"]
    own = pl.concat([both, _rows(("u3", "three", at(5)))])
    assert shopper_rows(own, renamed).select("user_id", "loyalty_tier").rows() == [("u3", "three")]
    assert shopper_rows(own, {}).height == 3  # nobody renamed: every row is its own
