# Everything runs from a fresh machine with only python3 (3.11+) and make: the first target that needs
# the environment installs uv (into .tools/ when it is not on PATH) and syncs .venv from uv.lock.
PYTHON ?= python3
UV ?= $(shell command -v uv 2>/dev/null || echo $(CURDIR)/.tools/bin/uv)
VENV_BIN := $(CURDIR)/.venv/bin
# `dg` with the project's environment active, as `source .venv/bin/activate` makes it (else it warns)
DG := VIRTUAL_ENV=$(CURDIR)/.venv PATH=$(VENV_BIN):$$PATH $(VENV_BIN)/dg
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home

.PHONY: install demo dev check-connection test test-fast lint format bench bench-smoke bench-postgres clean

$(CURDIR)/.tools/bin/uv:
	$(PYTHON) -m venv $(CURDIR)/.tools
	$(CURDIR)/.tools/bin/pip install --quiet --disable-pip-version-check uv

.venv/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --quiet
	@touch $@

$(DAGSTER_HOME)/dagster.yaml: deploy/embedded/dagster.yaml
	@mkdir -p $(DAGSTER_HOME)
	cp deploy/embedded/dagster.yaml $@

install: .venv/.synced $(DAGSTER_HOME)/dagster.yaml

## demo: start the sandbox, run the main job (`dg launch --job nightly_sync`: every asset) into
## data/analytics.duckdb, print rows per table
demo: install
	$(VENV_BIN)/python -m analytics_sandbox.demo

## dev: the Dagster UI on http://localhost:3000 against the sandbox (`dg dev`)
dev: install
	$(VENV_BIN)/python -m analytics_sandbox.demo --dev

## check-connection: one small request to every endpoint of both APIs with the configured settings (nothing is
## loaded); prints a table per endpoint and fails naming the settings to fix (the job check_connection in the UI)
check-connection: install
	$(DG) launch --job check_connection

## test: every test of the code location (sandbox over sockets, real DuckDB files, PostgreSQL when configured),
## on TEST_WORKERS pytest-xdist workers: most whole-run tests wait on subprocesses, latency or a webserver,
## so three workers beat two even on two cores (measured: 453 s against ~476 s). The longest tests go first
## (conftest.py), handed out one at a time.
TEST_WORKERS ?= 3
test: install
	$(VENV_BIN)/pytest -n $(TEST_WORKERS) --maxschedchunk 1 -m "not bench"

## test-fast: the inner loop, under a minute: every test but those marked slow (whole Dagster runs, the dagster
## CLI or another subprocess, over ~2 s); the unit tests in analytics_assets_tests/unit/ and quick sandbox tests
test-fast: install
	$(VENV_BIN)/pytest -m "not slow"

## bench: the performance benchmark against the sandbox (default scale: a few minutes on 2 cores), see the
## README's "Performance" and benchmarks/README.md; options through BENCH_ARGS, e.g. make bench BENCH_ARGS="--scale 10"
bench: install
	$(VENV_BIN)/python -m benchmarks $(BENCH_ARGS)

## bench-smoke: both benchmarks at tiny scale (a few minutes, figures meaningless): they still run and report
## every figure. Not part of `make test`, which tests the code location; CI runs it after `make test`
bench-smoke: install
	$(VENV_BIN)/pytest -n $(TEST_WORKERS) --maxschedchunk 1 -m bench

## bench-postgres: which loader file format loads PostgreSQL fastest and keeps the data (benchmarks/README.md);
## needs ANALYTICS_TEST_POSTGRES_URL (a server it may create databases on), e.g. BENCH_ARGS="--people 20000"
bench-postgres: install
	$(VENV_BIN)/python -m benchmarks.postgres_file_format $(BENCH_ARGS)

## lint: ruff, mypy, and `dg check defs` (the definitions load and validate)
lint: install
	$(DG) check defs
	$(VENV_BIN)/ruff check .
	$(VENV_BIN)/ruff format --check .
	$(VENV_BIN)/mypy analytics_assets analytics_sandbox

format: install
	$(VENV_BIN)/ruff check --fix .
	$(VENV_BIN)/ruff format .

clean:
	rm -rf .venv .tools .dagster_home data .pytest_cache .ruff_cache .mypy_cache
