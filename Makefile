# Flight-delay lakehouse. Quick start: `make demo`, `make test`.
# Every target creates the virtualenv from the lock file when it is missing.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
UV_VERSION := 0.13.8

YEAR ?= 2018
ROWS ?= 300000
SEED ?= 42
export LAKE_URL ?= data/lake
export DBT_PROFILES_DIR ?= $(CURDIR)/.local/dbt
export DO_NOT_TRACK := 1

# Use the caller's warehouse when PGHOST is set, else start (idempotently) the local cluster
# and export its PG* variables for the rest of the recipe line.
WITH_DB = if [ -z "$$PGHOST" ]; then $(PY) -m lakehouse.localdb start && eval "$$($(PY) -m lakehouse.localdb env)"; fi;

.PHONY: help venv db-start db-stop db-env demo test lint bench-load clean

help:
	@echo "make demo        generate a sample year ($(ROWS) rows; ROWS=7200000 for a full year) and run the pipeline"
	@echo "make test        run the test suite against real services it starts itself"
	@echo "make db-start    start the local PostgreSQL (only when PGHOST is not set)"
	@echo "make db-stop     stop it"
	@echo "eval \"\$$(make -s db-env)\"   export the local PG* variables into your shell"
	@echo "make bench-load  loader benchmark (ROWS=7200000 by default)"

venv: $(VENV)/.synced

$(VENV)/.synced: pyproject.toml uv.lock
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(VENV)/bin/uv --version 2>/dev/null | grep -q $(UV_VERSION) || $(VENV)/bin/pip install -q uv==$(UV_VERSION)
	UV_PROJECT_ENVIRONMENT=$(VENV) $(VENV)/bin/uv sync --frozen --python $(PY)
	@touch $@

db-start: venv
	@if [ -n "$$PGHOST" ]; then echo "PGHOST=$$PGHOST is set: using that server, starting nothing"; \
	else $(PY) -m lakehouse.localdb start; fi

db-stop: venv
	@$(PY) -m lakehouse.localdb stop

db-env: venv
	@$(PY) -m lakehouse.localdb env

demo: venv
	@$(WITH_DB) set -e; \
	$(PY) -m loaders generate --year $(YEAR) --rows $(ROWS) --seed $(SEED); \
	$(PY) -m loaders load --year $(YEAR)

test: venv
	$(PY) -m pytest

lint: venv
	$(VENV)/bin/ruff check lakehouse loaders ml dags tests bench

bench-load: venv
	@$(WITH_DB) $(PY) bench/bench_load.py --rows $${BENCH_ROWS:-7200000}

clean:
	rm -rf .pytest_cache .ruff_cache dbt_project/target dbt_project/logs
