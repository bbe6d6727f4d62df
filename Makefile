# The two commands a new user runs: `make run` and `make test`.
# Both create the virtual environment when it is missing or out of date.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000
PYTEST_WORKERS ?= 2

.PHONY: run test lint typecheck unit venv clean bench

venv: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

run: $(STAMP)
	@echo "The local gateway is not built yet (issue: local gateway)."
	@echo "Until then, try the app through the tests: make test"

lint: $(STAMP)
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) -q

test: lint typecheck unit

# The benchmark suite (bench/): prints its tables and writes bench/results/latest.json.
# SIZE=small runs it in seconds (the smoke test inside `make test` does).
SIZE ?= full
bench: $(STAMP)
	$(BIN)/python -m bench --size $(SIZE)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
