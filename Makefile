# dealroom developer tasks. `make help` lists them.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PG_TEST_URL ?= postgresql://postgres@127.0.0.1:5432/test

.DEFAULT_GOAL := help
.PHONY: help install demo test test-pg lint typecheck format bench bench-quick check prove prove-quick

help: ## list the tasks
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  \033[1m%-12s\033[0m %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP) ## create .venv and install dealroom with its dev tools

demo: $(STAMP) ## run the embedded demo (SQLite, sample data)
	$(BIN)/dealroom demo

test: $(STAMP) ## run the test suite (SQLite; PostgreSQL too when DEALROOM_TEST_DATABASE_URL is set)
	$(BIN)/pytest -q -n 2

test-pg: $(STAMP) ## run the test suite against the local PostgreSQL
	DEALROOM_TEST_DATABASE_URL=$(PG_TEST_URL) $(BIN)/pytest -q -n 2

lint: $(STAMP) ## ruff check and format check
	$(BIN)/ruff check src tests bench scripts prove
	$(BIN)/ruff format --check src tests bench scripts prove

format: $(STAMP) ## apply ruff format and safe fixes
	$(BIN)/ruff format src tests bench scripts prove
	$(BIN)/ruff check --fix src tests bench scripts prove

typecheck: $(STAMP) ## mypy --strict on src/
	$(BIN)/mypy

bench: $(STAMP) ## run every benchmark full size (long; PostgreSQL) and write docs/benchmarks.md
	$(BIN)/python bench/run.py

bench-quick: $(STAMP) ## run every benchmark with --quick and write docs/benchmarks.md
	$(BIN)/python bench/run.py --quick

check: lint typecheck test ## everything CI runs on SQLite

prove: $(STAMP) ## fault, soak (30 min), fuzz and security checks in full (PostgreSQL; docs/reliability.md)
	DEALROOM_TEST_DATABASE_URL=$(PG_TEST_URL) $(BIN)/python -m prove

prove-quick: $(STAMP) ## the short versions of `make prove` (a few minutes; CI runs it)
	DEALROOM_PROVE=1 DEALROOM_TEST_DATABASE_URL=$(PG_TEST_URL) $(BIN)/python -m pytest -q -n 3 -p no:cacheprovider tests/prove
