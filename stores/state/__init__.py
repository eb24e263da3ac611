"""The state store's I/O: rebuild it from the lake alone, and check it against the lake (issue #15)."""
