# The two commands a new user runs: `make run` and `make test`.
# Both create the virtual environment when it is missing or out of date.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The second DynamoDB engine the tests run on (dynalite, from package-lock.json).
NODE_STAMP := node_modules/.installed
HOST ?= 127.0.0.1
PORT ?= 8000
PYTEST_WORKERS ?= 2

.PHONY: run test lint typecheck unit venv engines clean

venv: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

engines: $(NODE_STAMP)

$(NODE_STAMP): package.json package-lock.json
	@command -v npm >/dev/null || { echo "npm (Node 20+) is required: the tests run on dynalite"; exit 1; }
	npm ci --no-audit --no-fund
	touch $(NODE_STAMP)

run: $(STAMP)
	@echo "The local gateway is not built yet (issue: local gateway)."
	@echo "Until then, try the app through the tests: make test"

lint: $(STAMP)
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP) $(NODE_STAMP)
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) -q

test: lint typecheck unit

clean:
	rm -rf $(VENV) node_modules .pytest_cache .mypy_cache .ruff_cache .hypothesis
