"""The profile store's tables of partial states; the rest of their contract is in `transforms.schema`.

`profile_state` holds the fold of every partial up to a batch (PARTIAL_SCHEMA, key: principal, tagged
FOLD_APP); `profile_updates` the partials of each batch since (key: principal, batch_id, tagged
UPDATES_APP). They live here, not in `transforms.schema`, because PARTIAL_SCHEMA is built from the
partial-state structs of `transforms.profiles.partials`, which imports `transforms.schema`.
"""

from __future__ import annotations

import polars as pl

from transforms.profiles.state import PARTIAL_SCHEMA

PROFILE_UPDATES_SCHEMA: dict[str, pl.DataType] = {**PARTIAL_SCHEMA, "batch_id": pl.Int64()}
