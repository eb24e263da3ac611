"""`make bench`: lakemail's benchmark figures, written to BENCHMARKS.md."""
