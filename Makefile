# One command runs the local pipeline (make dev), one runs every test (make test); make test-fast runs the tests that
# start no stack and no browser and are not slow (markers in pyproject.toml, set by folder in tests/selection.py).
# All build .venv from the pinned lock file first; nothing depends on what is installed by hand.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000
# pytest-xdist workers; tests that share a stack run on one worker (xdist_group marks, --dist loadgroup).
TEST_WORKERS ?= auto
PYTEST := $(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadgroup

.PHONY: dev test test-fast lint bench bench-quick load lock clean

$(BIN)/activate: requirements-dev.txt requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $(BIN)/activate

dev: $(BIN)/activate
	PORT=$(PORT) $(BIN)/python -m local

test: $(BIN)/activate
	$(BIN)/ruff check .
	$(PYTEST) -m "not solo"
	$(BIN)/python -m pytest -m solo

test-fast: $(BIN)/activate
	$(BIN)/ruff check .
	$(PYTEST) --fast

lint: $(BIN)/activate
	$(BIN)/ruff check .

# Figures, not assertions, each beside its baseline (docs/benchmarks.md): a table, bench-results/<time>.json and
# docs/bench.png. With BENCH_URL=https://<site> BENCH_EMAIL=<user> (password in BENCH_PASSWORD): the API and
# pipeline figures of that deployed stack.
bench: $(BIN)/activate
	$(BIN)/python -m local.bench $(if $(BENCH_URL),--url "$(BENCH_URL)" --email "$(BENCH_EMAIL)")

bench-quick: $(BIN)/activate
	$(BIN)/python -m local.bench --quick $(if $(BENCH_URL),--url "$(BENCH_URL)" --email "$(BENCH_EMAIL)")

# A load run against a local stack (jobs, cap, lost/duplicated, VMs alive, latency, VM CPU per job).
load: $(BIN)/activate
	$(BIN)/python -m local.load --jobs 500 --cap 4

# Re-pin the lock files from requirements*.in (needs network access to PyPI).
lock: $(BIN)/activate
	$(BIN)/pip install --quiet pip-tools
	$(BIN)/pip-compile --quiet --strip-extras --no-emit-index-url --no-emit-find-links --output-file requirements.txt requirements.in
	$(BIN)/pip-compile --quiet --strip-extras --no-emit-index-url --no-emit-find-links --output-file requirements-dev.txt requirements-dev.in

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache test-artifacts bench-results
