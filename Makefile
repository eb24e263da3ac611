# Two commands for a newcomer: `make run` and `make test`. Both create .venv when it is missing.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: run test test-fast test-postgres lint browser prometheus postgres bench bench-peers clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# `make run UP_ARGS="--port 3001"`: options for `lakemail up` (a port taken, headless, ...).
run: $(STAMP)
	$(BIN)/lakemail up $(UP_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy transforms resources stores assets orchestration services simulator tests

# The browser test (tests/e2e/test_browser.py) drives Debian's Chromium and its driver: installed here
# once, only when missing (root, or sudo when there is one).
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q chromium chromium-driver; }

# Prometheus (the server and promtool) for the alert-rule and metrics tests (ops/prometheus,
# tests/e2e/test_prometheus.py): Debian's package, installed here once, only when missing.
prometheus:
	@command -v prometheus >/dev/null && command -v promtool >/dev/null || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q --no-install-recommends prometheus; }

# The PostgreSQL tests (issue #18) start throwaway servers of Debian's postgresql package: installed here
# once, only when missing (root, or sudo when there is one).
postgres:
	@ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q postgresql; }

# loadgroup: a module marked xdist_group keeps its tests (and its module-scoped system) on one worker.
# Each test runs once, under a throwaway PostgreSQL server (tests/postgres.py): the in-process Dagster
# tier and the tests that open an instance keep Dagster's storage in PostgreSQL (a database per test),
# the e2e tier runs on SQLite as `make run` does (its tests marked `postgres` on PostgreSQL too).
test: lint browser prometheus postgres
	PG_TEST_SCOPE=dagster $(BIN)/python -m tests.postgres $(BIN)/pytest -q -n auto --dist loadgroup --durations=25

# Every test that opens a Dagster instance (the dagster and e2e tiers, and the lake tests that take the
# `instance` fixture), all with Dagster's storage in PostgreSQL (LAKEMAIL_DAGSTER_PG_URL): a throwaway
# server (tests/postgres.py), a database of its own for each test. Not part of CI (`make test` runs
# the Dagster tier on PostgreSQL already); for a change to the storage layer.
PG_TESTS ?= -m "dagster or e2e or dagster_instance" tests
test-postgres: $(STAMP) postgres
	$(BIN)/python -m tests.postgres $(BIN)/pytest -q -n auto --dist loadgroup $(PG_TESTS)

# The fast tier (pure tests, under a minute): `make test-fast`. The long property runs (marked `deep`)
# and the modules of shoppers' stories through the whole engine (marked `story`) are left to `make test`;
# one small ingest of events on a real lake (marked `smoke`) runs here too.
test-fast: $(STAMP)
	$(BIN)/pytest -q -n auto -m "(unit and not deep and not story) or smoke" tests/unit tests/lake/test_ingest_smoke.py

bench: $(STAMP)
	$(BIN)/python -m benchmarks $(BENCH_ARGS)

# The Spark peer (issue #7): its own venv, never part of `make test`. PEERS_ARGS=--quick for a smoke run.
bench-peers: $(STAMP)
	test -x .venv-peers/bin/python || $(PYTHON) -m venv .venv-peers
	.venv-peers/bin/python -m pip install --quiet -r benchmarks/peers/requirements.txt
	$(BIN)/python -m benchmarks.peers.run $(PEERS_ARGS)

clean:
	rm -rf data/landing data/lake data/dagster_home data/outbox
