"""GDPR erasure in old table versions, pure part: which old data files can hold rows the current lacks.

Time travel reads an old version from the data files its log lists, so a row the current version no
longer has (a trigger candidate decided since, a profile partial folded away) is still read from the
files that held it until they are vacuumed. Those files are the ones a full vacuum at retention 0 would
delete; of them, a file that a compaction removed (`dataChange: false` in its `remove` action: OPTIMIZE
rearranges rows, it changes none) holds only rows that the files the same commit added hold too, and
those are in the current version or are old files read themselves. So only the other old files are read
for the person: on `events`, which loses files only to compaction (and to erasures, which vacuum), none.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import unquote

import polars as pl


def files_to_read(old_files: Iterable[str], actions: pl.DataFrame) -> list[str]:
    """`old_files` (relative paths as delta-rs' vacuum lists them: as on storage) that can hold a row the
    current version lacks: all but those a compaction removed (`actions`: path, data_change of each
    `remove` still in the log; a file whose removal the log no longer has is read)."""
    removes = actions.filter(pl.col("remove").is_not_null())
    # The log holds a path URI-encoded; storage (and vacuum) the name it encodes.
    changed = {unquote(p) for p in removes.filter(pl.col("data_change").fill_null(True))["remove"]}
    rearranged = {unquote(p) for p in removes["remove"]} - changed
    return sorted(path for path in set(old_files) if path not in rearranged)
