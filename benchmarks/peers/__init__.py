"""Peers: the same backlog and steady load through another engine, for BENCHMARKS.md to compare against.

Today's peer is Spark Structured Streaming (pyspark, `local[2]`, the machine's Java 17): a JSON file source
on the landing folder, `dropDuplicates(["messageId"])`, a parquet sink with a checkpoint (Delta's jars
cannot be downloaded here). `make bench-peers` creates `.venv-peers` (pip install -r
benchmarks/peers/requirements.txt), then runs `python -m benchmarks.peers.run` from the main venv, which
simulates the data, starts `spark_peer.py` inside `.venv-peers` per repeat, measures from outside and
writes `results.json` (committed). `make bench-peers PEERS_ARGS=--quick` is the smoke run. It is not part
of `make test`; tests/e2e/test_peers.py covers the parsing without Spark.

This package imports without pyspark: `load_results()` gives `make bench` the recorded numbers.
"""

from benchmarks.peers.results import PeerBacklogRun, PeerResults, PeerSteadyRun, load_results

__all__ = ["PeerBacklogRun", "PeerResults", "PeerSteadyRun", "load_results"]
