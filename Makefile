# Every target sets up .venv itself; a fresh machine needs only Python 3.11 and make.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
ARGS ?=
PYTEST_ARGS ?=
# `make test` spreads the suite over this many pytest processes (pytest-xdist), each with
# a PostgreSQL and a broker of its own; they mostly wait on those, so more than the cores.
# Each test goes to the first process free (the slow ones first: tests/conftest.py).
TEST_PROCESSES ?= 4

.PHONY: run test test-fast check bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)  ## the embedded stack and the worker: `make run ARGS=--exit-after-demo`
	$(BIN)/log-ingest dev $(ARGS)

test: $(STAMP)  ## the whole suite on real services (embedded when nothing else is there)
	$(BIN)/pytest -n $(TEST_PROCESSES) --dist load --maxschedchunk 1 $(PYTEST_ARGS)

test-fast: $(STAMP)  ## the unit tests only: no services, one process
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

bench: $(STAMP)  ## the worker against COPY and a raw pipe: `make bench ARGS="--events 1000000"`
	$(BIN)/log-ingest bench $(ARGS)

check: $(STAMP)  ## lint, format and types
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .dev .mypy_cache .ruff_cache .pytest_cache
