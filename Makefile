# The index of everything a developer does. Every target sets up the virtualenv first.
PYTHON ?= $(shell command -v python3.11 || command -v python3.12 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: help install run test test-unit test-integration lint proto proto-check contract migrate bench clean

help:
	@echo "make run          whole stack (embedded Redis + Postgres unless REDIS_URL/DATABASE_URL)"
	@echo "make test         full test suite (unit, integration, e2e)"
	@echo "make lint         ruff, mypy, buf lint, contract check, generated-code check"
	@echo "make proto        regenerate zentra/cards/v1 from protos/"
	@echo "make migrate      apply SQL migrations to DATABASE_URL (or the embedded Postgres)"
	@echo "make bench        Authorize vs null server vs Redis alone, and the ledger writer (BENCH_ARGS=--quick)"
	@echo "make bench-ledger ledger writer throughput and catch-up (ARGS=--quick for a short run)"

$(STAMP): pyproject.toml
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python >= 3.11 is required"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/python -m devstack run

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-unit: $(STAMP)
	$(BIN)/python -m pytest tests/unit $(PYTEST_ARGS)

test-integration: $(STAMP)
	$(BIN)/python -m pytest tests/integration $(PYTEST_ARGS)

proto: $(STAMP)
	$(BIN)/python protos/generate.py

proto-check: $(STAMP)
	rm -rf build/proto-check && mkdir -p build/proto-check
	$(BIN)/python protos/generate.py build/proto-check
	diff -r -x __pycache__ build/proto-check/zentra zentra || \
		(echo "generated code is out of date: run 'make proto' and commit" && exit 1)

contract: $(STAMP)
	$(BIN)/python protos/contract.py

lint: $(STAMP) proto-check contract
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy authz_server ledger_writer authzctl devstack loadtest
	cd protos && ../$(BIN)/buf lint

migrate: $(STAMP)
	$(BIN)/python -m devstack migrate

# Authorize against the limits of this machine: real vs null server vs Redis alone, plus the
# ledger writer; the table on stdout, JSON and a PNG in loadtest/results/ (docs/bench/ has a run).
bench: $(STAMP)
	$(BIN)/python -m loadtest $(BENCH_ARGS)

# The ledger writer's backlog drain rate and catch-up after a burst; JSON in loadtest/results/.
.PHONY: bench-ledger
bench-ledger: $(STAMP)
	$(BIN)/python -m loadtest.ledger_bench $(ARGS)

clean:
	rm -rf build .data .pytest_cache .mypy_cache .ruff_cache
