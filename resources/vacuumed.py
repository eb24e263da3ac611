"""What reading a Delta table version whose data files are gone raises."""

from __future__ import annotations

from deltalake.exceptions import DeltaError

# A version older than a vacuum (an erasure's, at retention 0, or maintenance's past its retention) lost
# the files it shared with no later version: polars raises FileNotFoundError reading one; delta-rs a
# DeltaError for a version whose log was cleaned up too. Readers of an old version take either as "that
# version is gone", not as a broken lake.
VACUUMED: tuple[type[Exception], ...] = (FileNotFoundError, DeltaError)
