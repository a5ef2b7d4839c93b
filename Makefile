# The jambonz Calls API, spec first. `make serve` and `make test` set everything up themselves.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PY     := $(BIN)/python
SETUP  := $(VENV)/.installed
# Redocly CLI and Redoc (Node.js), pinned in tools/package-lock.json: the spec lint, the docs page.
TOOLS  := tools/node_modules/.installed
HOST   ?= 127.0.0.1
PORT   ?= 8000
PYTEST_ARGS ?=

.PHONY: help setup tools generate check docs serve test publish bench clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

setup: $(SETUP) ## Create .venv and install the pinned dependencies (reruns only when they change)

$(SETUP): requirements/runtime.txt requirements/dev.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements/dev.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $@

tools: $(TOOLS) ## Install the pinned Redocly CLI into tools/node_modules (npm ci)

$(TOOLS): tools/package.json tools/package-lock.json
	@command -v npm >/dev/null || { echo "make: npm (Node.js 20.19+) is needed for Redocly CLI" >&2; exit 1; }
	cd tools && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error
	@touch $@

generate: $(SETUP) ## Regenerate generated/ (and scaffold missing handlers) from spec/ and templates/
	@$(PY) -m calls_api.codegen

check: $(SETUP) $(TOOLS) ## Validate and lint the spec, fail on generated/ drift or an unannounced break, ruff, mypy
	$(PY) -m calls_api.codegen --check
	$(PY) -m calls_api.publish --check
	$(PY) -m calls_api.publish --lint
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

docs: $(SETUP) $(TOOLS) ## Write only dist/docs/index.html, the offline API reference page
	$(PY) -m calls_api.publish --docs

serve: generate docs ## Serve the API at http://$(HOST):$(PORT)/v1 with an embedded SQLite database
	CALLS_ALLOW_PRIVATE_WEBHOOKS=$${CALLS_ALLOW_PRIVATE_WEBHOOKS:-true} \
	  $(BIN)/calls-api serve --host $(HOST) --port $(PORT)

test: check ## Everything CI runs: check, then the whole test suite
	$(BIN)/pytest $(PYTEST_ARGS)

publish: $(SETUP) $(TOOLS) ## Write dist/ (spec, changelog, client, docs, checksums) after the breaking-change gate
	$(PY) -m calls_api.publish

BENCH_SETUP := $(VENV)/.bench-installed
BENCH_QUICK ?=

$(BENCH_SETUP): $(SETUP) requirements/bench.txt
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements/bench.txt
	@touch $@

bench: $(BENCH_SETUP) generate ## Compare with Starlette, FastAPI and stock connexion (needs wrk); BENCH_QUICK=1 is short
	@command -v wrk >/dev/null || { echo "make bench needs wrk: apt-get install wrk" >&2; exit 1; }
	BENCH_QUICK=$(BENCH_QUICK) $(PY) -m bench.run

clean: ## Remove the virtual environment, caches and the local database
	rm -rf $(VENV) var dist tools/node_modules .pytest_cache .mypy_cache .ruff_cache build *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
