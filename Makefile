# One command runs the local pipeline (make dev), one runs every test (make test); make test-fast runs the tests that
# start no stack and no browser and are not slow (markers in pyproject.toml, set by folder in tests/selection.py).
# All build .venv from the pinned lock file first; nothing depends on what is installed by hand.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000
# The worker's environment as on AWS (AL2023's Python 3.9 and its python3-boto3; pins in worker/requirements.txt):
# the worker's tests and local mode's VMs run the worker on it (local/workerpython.py).
WORKER_VENV := .venv-worker
PYTHON39 ?= $(or $(lastword $(sort $(wildcard $(HOME)/.pyenv/versions/3.9*/bin/python3.9))),$(shell command -v python3.9 2>/dev/null))
export FILEPIPE_WORKER_PYTHON ?= $(abspath $(WORKER_VENV))/bin/python

.PHONY: dev test test-fast lint bench bench-quick load smoke lock clean invite

# pytest-xdist workers; tests that share a stack run on one worker (xdist_group marks, --dist loadgroup).
TEST_WORKERS ?= auto
PYTEST := $(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadgroup

$(BIN)/activate: requirements-dev.txt requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $(BIN)/activate

# Without a Python 3.9 this says so and goes on: local mode then runs the worker on .venv's Python, and the worker's
# tests skip (CI sets FILEPIPE_REQUIRE_WORKER_PY39=1, which fails them).
$(WORKER_VENV)/bin/activate: worker/requirements.txt
	@if [ -z "$(PYTHON39)" ] || ! "$(PYTHON39)" -c 'import sys; assert sys.version_info[:2] == (3, 9)' 2>/dev/null; then \
	  echo "make: no Python 3.9 (pyenv's ~/.pyenv/versions/3.9.*, or python3.9 on PATH): no $(WORKER_VENV)"; \
	else \
	  "$(PYTHON39)" -m venv $(WORKER_VENV) && $(WORKER_VENV)/bin/pip install --quiet -r worker/requirements.txt && touch $@; \
	fi

dev: $(BIN)/activate $(WORKER_VENV)/bin/activate
	PORT=$(PORT) $(BIN)/python -m local

test: $(BIN)/activate $(WORKER_VENV)/bin/activate
	$(BIN)/ruff check .
	$(PYTEST) -m "not solo"
	$(BIN)/python -m pytest -m solo

test-fast: $(BIN)/activate $(WORKER_VENV)/bin/activate
	$(BIN)/ruff check .
	$(PYTEST) --fast

lint: $(BIN)/activate
	$(BIN)/ruff check .

# Figures, not assertions, each beside its baseline (docs/benchmarks.md): a table, bench-results/<time>.json and
# docs/bench.png. With BENCH_URL=https://<site> BENCH_EMAIL=<user> (password in BENCH_PASSWORD): the API and
# pipeline figures of that deployed stack.
bench: $(BIN)/activate $(WORKER_VENV)/bin/activate
	$(BIN)/python -m bench $(if $(BENCH_URL),--url "$(BENCH_URL)" --email "$(BENCH_EMAIL)")

bench-quick: $(BIN)/activate $(WORKER_VENV)/bin/activate
	$(BIN)/python -m bench --quick $(if $(BENCH_URL),--url "$(BENCH_URL)" --email "$(BENCH_EMAIL)")

# A load run against a local stack (jobs, cap, lost/duplicated, VMs alive, latency, VM CPU per job).
load: $(BIN)/activate
	$(BIN)/python -m local.load --jobs 500 --cap 4

# One real job through a running stack, timed phase by phase (local/smoke.py): make smoke SMOKE_URL=https://<site>
# SMOKE_EMAIL=<user>, with the password in SMOKE_PASSWORD (the command line's values reach it as environment).
smoke: $(BIN)/activate
	$(BIN)/python -m local.smoke

# An operator creates a user (when self sign-up is off): make invite EMAIL=ada@example.com STACK=prod
invite: $(BIN)/activate
	$(BIN)/python -m deploy.invite --email "$(EMAIL)" --stack "$(STACK)"

# Re-pin the lock files from requirements*.in (needs network access to PyPI).
lock: $(BIN)/activate
	$(BIN)/pip install --quiet pip-tools
	$(BIN)/pip-compile --quiet --strip-extras --no-emit-index-url --no-emit-find-links --output-file requirements.txt requirements.in
	$(BIN)/pip-compile --quiet --strip-extras --no-emit-index-url --no-emit-find-links --output-file requirements-dev.txt requirements-dev.in

clean:
	rm -rf $(VENV) $(WORKER_VENV) .pytest_cache .ruff_cache test-artifacts bench-results
