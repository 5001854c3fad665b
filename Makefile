# Two commands do all the set-up: `make demo` and `make test` (see README.md).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint test-slow bench fuzz clean-store

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/cuadra demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

test: lint
	$(BIN)/pytest -q -m "not slow"

test-slow: $(STAMP)
	$(BIN)/pytest -q -m slow

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	$(BIN)/python benchmarks/ingest.py
	$(BIN)/python benchmarks/aggregates.py
	$(BIN)/python benchmarks/load.py
	$(BIN)/python benchmarks/hotspots.py
	$(BIN)/python benchmarks/tiles.py

# The schema fuzz at length (make test runs 40 examples a route and role).
fuzz: $(STAMP)
	CUADRA_FUZZ_EXAMPLES=400 CUADRA_FUZZ_RANDOM=1 $(BIN)/pytest -q tests/api/test_schema_fuzz.py

clean-store:
	rm -rf data/store
