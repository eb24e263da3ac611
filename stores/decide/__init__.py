"""The decision lane over the state store: the trigger engine's reads, run and store commits (#15)."""
