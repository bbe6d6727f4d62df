# The two commands a new user runs: `make run` and `make test`.
# Both create the virtual environment when it is missing or out of date.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# What running needs: the app's runtime (requirements.txt) and the gateway's
# (requirements-local.txt). `make run` installs only this.
RUN_STAMP := $(VENV)/.installed-run
# Everything else the tests, linters and benchmarks need (requirements-dev.txt).
STAMP := $(VENV)/.installed
# The `switchboard-local` command, installed from this checkout (editable).
LOCAL_STAMP := $(VENV)/.switchboard-local
# The second DynamoDB engine the tests run on (dynalite, from package-lock.json).
NODE_STAMP := node_modules/.installed
HOST ?= 127.0.0.1
PORT ?= 8000
PYTEST_WORKERS ?= 2

CHROMIUM ?= /usr/bin/chromium

.PHONY: run test lint typecheck unit venv setup engines clean browser bench

venv: $(STAMP)

# What running and deploying need (Chalice, boto3, switchboard-local), without the test tools.
setup: $(LOCAL_STAMP)

$(RUN_STAMP): requirements.txt requirements-local.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt -r requirements-local.txt
	touch $(RUN_STAMP)

$(STAMP): $(RUN_STAMP) requirements-dev.txt
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

engines: $(NODE_STAMP)

$(NODE_STAMP): package.json package-lock.json
	@command -v npm >/dev/null || { echo "npm (Node 20+) is required: the tests run on dynalite"; exit 1; }
	npm ci --no-audit --no-fund
	touch $(NODE_STAMP)

$(LOCAL_STAMP): $(RUN_STAMP) pyproject.toml
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(LOCAL_STAMP)

# The local gateway: ws://$(HOST):$(PORT)/dev (the dev stage), the chat page at http://$(HOST):$(PORT)/.
# The functions' metric lines (EMF, what CloudWatch reads) stay out of the terminal;
# `make run POWERTOOLS_METRICS_DISABLED=false` shows them.
run: export POWERTOOLS_METRICS_DISABLED ?= true
run: $(LOCAL_STAMP)
	$(BIN)/switchboard-local --host $(HOST) --port $(PORT)

# Chromium for the chat page's browser test; without it that test is skipped.
browser:
	@if [ ! -x $(CHROMIUM) ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "Installing Chromium for the browser test..."; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			--no-install-recommends chromium) >/dev/null 2>&1 \
			|| echo "Chromium could not be installed; the browser test will be skipped."; \
	fi

lint: $(STAMP)
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP) $(LOCAL_STAMP) $(NODE_STAMP) browser
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) -q

test: lint typecheck unit

# The benchmark suite (bench/): prints its tables and writes bench/results/latest.json.
# SIZE=small runs it in seconds (the smoke test inside `make test` does).
SIZE ?= full
bench: $(STAMP) $(NODE_STAMP)
	$(BIN)/python -m bench --size $(SIZE)

clean:
	rm -rf $(VENV) node_modules .pytest_cache .mypy_cache .ruff_cache .hypothesis
