# Flight-delay lakehouse. Quick start: `make demo`, `make test`.
# Every target creates the virtualenv from the lock file when it is missing.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
UV_VERSION := 0.13.8

YEAR ?= 2018
ROWS ?= 1200000
# The demo's 30 busiest airports fly to each other: hubs at hundreds of departures a day, the
# few-minute budget kept. AIRPORTS= (empty) spreads the rows over all 365 airports.
AIRPORTS ?= 30
AIRPORTS_ARG = $(if $(strip $(AIRPORTS)),--airports $(AIRPORTS),)
SEED ?= 42
export LAKE_URL ?= data/lake
export DBT_PROFILES_DIR ?= $(CURDIR)/.local/dbt
export DO_NOT_TRACK := 1

# Use the caller's warehouse when PGHOST is set, else start (idempotently) the local cluster
# and export its PG* variables for the rest of the recipe line; the recipe stops there when
# the cluster cannot start (its one-line error is the one to read).
WITH_DB = if [ -z "$$PGHOST" ]; then { $(PY) -m devtools.localdb start && eval "$$($(PY) -m devtools.localdb env)"; } || exit 2; fi;

.PHONY: help venv db-start db-stop db-env demo test lint bench-load clean
.PHONY: dbt-profile dbt-parse dbt-build docs docs-stop bench-dbt
.PHONY: roles superset superset-stop

help:
	@echo "make demo        generate a sample year ($(ROWS) rows over the $(AIRPORTS) busiest airports;"
	@echo "                 ROWS=7200000 AIRPORTS= for a full-size year) and run the pipeline"
	@echo "                 (YEAR=$(YEAR); if that year holds real, ingested data the demo uses the next year that does not)"
	@echo "python -m loaders ingest PATH   your Kaggle download (zip, folder or YYYY.csv) into LAKE_URL's bronze zone"
	@echo "make test        run the test suite against real services it starts itself"
	@echo "make db-start    start the local PostgreSQL (only when PGHOST is not set)"
	@echo "make db-stop     stop it"
	@echo "eval \"\$$(make -s db-env)\"   export the local PG* variables into your shell"
	@echo "make bench-load  loader benchmark (ROWS=7200000 by default)"
	@echo "make bench-postgres  system vs embedded PostgreSQL binaries: start time, COPY (BENCH_ROWS=1500000)"
	@echo "make generate    write a sample year to LAKE_URL (YEAR, ROWS, AIRPORTS, SEED) with its disruption labels"
	@echo "make bench-generate  generator speed and memory (BENCH_ROWS=7200000 by default)"
	@echo "make roles       create the least-privilege warehouse roles (idempotent)"
	@echo "make superset    Superset with the lakehouse dashboards on SUPERSET_PORT (default 8088)"
	@echo "make superset-stop  stop it"
	@echo "make dbt-build   dbt build of silver + gold + tests for YEAR=$(YEAR) (YEAR= every loaded year; tag:ml views build after scoring)"
	@echo "make dbt-parse   write dbt_project/target/manifest.json (no database needed; Cosmos renders from it)"
	@echo "make docs        generate the dbt docs of every model and source and serve them on DOCS_PORT (default 8081)"
	@echo "make docs-stop   stop that server"
	@echo "make bench-dbt   dbt benchmark vs hand-written SQL (BENCH_ROWS=7200000 by default)"
	@echo "make airflow     Airflow UI with the etl_ml_pipeline and bts_monthly_pipeline DAGs on AIRFLOW_PORT (default 8080 or a free port)"
	@echo "make airflow-stop  stop it"
	@echo "make dag-test    the DAG's tests: parse, wiring, full runs, the API"
	@echo "make backfill FROM=2009 TO=2018   the DAG for each year, oldest first; finished years skipped unless FORCE=1"
	@echo "make backfill FROM=2019-01 TO=2019-03   the DAG for each BTS month (01_bronze/bts/Y/MM.csv), oldest first"
	@echo "make bench-decade  ten full-size generated years backfilled and measured (needs ~41 GB of disk)"
	@echo "make score       score YEAR=$(YEAR) of gold into ml.dep_delay_anomalies (python -m ml score)"
	@echo "make ml-evaluate generate 2016-2018, run the DAG over them, then precision/recall/F1 of every detector"
	@echo "                 on them and on real 2001 flights (python -m ml evaluate; EVAL_ROWS=$(EVAL_ROWS))"
	@echo "make real-data   fetch the real 2001 flights (npm vega-datasets, checksum pinned) into .local/real/"
	@echo "make bench-ml    scoring speed vs the original rules (BENCH_ROWS=7200000 by default)"
	@echo "make bench-month-real  real 2001 held-out months scored month by month vs in one run"
	@echo "make bench-compare  bench-load, -dbt, -ml and -dag at BASELINE=$(BASELINE) and now, side by side"
	@echo "                 (BENCH_ROWS=7200000, BENCHES=load,dbt,ml,dag, REPEAT=1 alternating rounds by default)"

venv: $(VENV)/.synced

# --compile-bytecode: where PYTHONDONTWRITEBYTECODE is set (as on our CI machines) there are
# no .pyc files otherwise, and every process (each Airflow task, dbt, joblib worker, test
# subprocess) recompiled airflow, dbt, pandas and statsmodels from source: 1.5-2.9 s more per
# import (docs/airflow.md). Compiling once takes ~18 s.
$(VENV)/.synced: pyproject.toml uv.lock
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(VENV)/bin/uv --version 2>/dev/null | grep -q $(UV_VERSION) || $(VENV)/bin/pip install -q uv==$(UV_VERSION)
	UV_PROJECT_ENVIRONMENT=$(VENV) $(VENV)/bin/uv sync --frozen --compile-bytecode --python $(PY)
	@touch $@

db-start: venv
	@if [ -n "$$PGHOST" ]; then echo "PGHOST=$$PGHOST is set: using that server, starting nothing"; \
	else $(PY) -m devtools.localdb start && eval "$$($(PY) -m devtools.localdb env)" && \
	$(PY) -m lakehouse.roles apply --superset-login; fi

db-stop: venv
	@$(PY) -m devtools.localdb stop

db-env: venv
	@$(PY) -m devtools.localdb env

# The whole etl_ml_pipeline DAG once, in-process (`airflow dags test`), on a generated year.
# Real (ingested) years are never overwritten: when YEAR holds real data, `demo-year` says so
# and names the first later year that does not, and the demo runs on that one.
demo: venv dbt-parse
	@$(WITH_DB) set -e; \
	year=$$($(PY) -m loaders demo-year --year $(YEAR)); \
	$(PY) -m loaders generate --year $$year --rows $(ROWS) --seed $(SEED) $(AIRPORTS_ARG); \
	$(PY) -m devtools.airflow_local demo --year $$year

test: venv
	$(PY) -m pytest

lint: venv
	$(VENV)/bin/ruff check lakehouse loaders ml dags tests bench

bench-load: venv
	@$(WITH_DB) $(PY) bench/bench_load.py --rows $${BENCH_ROWS:-7200000}

.PHONY: bench-postgres
bench-postgres: venv
	$(PY) bench/bench_postgres.py --rows $${BENCH_ROWS:-1500000}

# dbt reads profiles.yml.example (PG* variables, no password) copied into DBT_PROFILES_DIR;
# a profiles dir of the user's own choosing is never overwritten.
DBT := $(VENV)/bin/dbt
DBT_YEAR_VARS = $(if $(strip $(YEAR)),--vars '{year: $(YEAR)}',)
DOCS_PORT ?= 8081

$(CURDIR)/.local/dbt/profiles.yml: profiles.yml.example
	@mkdir -p $(@D) && cp $< $@

dbt-profile: $(if $(filter $(CURDIR)/.local/dbt,$(DBT_PROFILES_DIR)),$(CURDIR)/.local/dbt/profiles.yml)
	@test -f "$(DBT_PROFILES_DIR)/profiles.yml" || { echo "error: no profiles.yml in DBT_PROFILES_DIR=$(DBT_PROFILES_DIR): copy profiles.yml.example there"; exit 2; }

# dbt keys its partial-parse cache on the connection settings (host, port, user, database),
# not only on the files: parse with the ones the later `dbt build`s use (the local cluster's
# unless PG* are set; it need not be running), or every switch re-parses the whole project
# with "Unable to do partial parsing because profile has changed".
dbt-parse: venv dbt-profile
	@if [ -z "$$PGHOST" ]; then eval "$$($(PY) -m devtools.localdb env 2>/dev/null)"; fi; \
	$(DBT) parse --project-dir dbt_project

dbt-build: venv dbt-profile
	@$(WITH_DB) $(DBT) build --project-dir dbt_project $(DBT_YEAR_VARS) --exclude tag:ml

# The catalog covers every model and source (the default selector leaves out the tag:ml ones,
# which read ml.*): the ML tables get their column types when they exist (after a scoring run).
# The server runs in the background in its own session; `make docs-stop` ends it.
DOCS_PID ?= $(CURDIR)/.local/dbt-docs.pid
DOCS_LOG ?= $(CURDIR)/.local/dbt-docs.log
docs: venv dbt-profile docs-stop
	@$(WITH_DB) set -e; $(DBT) docs generate --project-dir dbt_project --select 'fqn:*' 'source:*'; \
	$(PY) -m devtools.background start --name "dbt docs" --pid $(DOCS_PID) --log $(DOCS_LOG) \
	  --ready-url http://127.0.0.1:$(DOCS_PORT)/index.html -- \
	  $(DBT) docs serve --project-dir dbt_project --host 127.0.0.1 --port $(DOCS_PORT) --no-browser; \
	echo "dbt docs: http://127.0.0.1:$(DOCS_PORT)  (log $(DOCS_LOG); stop with make docs-stop)"

docs-stop: venv
	@$(PY) -m devtools.background stop --name "dbt docs server" --pid $(DOCS_PID)

bench-dbt: venv dbt-profile
	@$(WITH_DB) $(PY) bench/bench_dbt.py --rows $${BENCH_ROWS:-7200000}

clean:
	rm -rf .pytest_cache .ruff_cache dbt_project/target dbt_project/logs

# Least-privilege roles (lakehouse/sql/roles.sql) and the read-only login Superset uses.
roles: venv
	@$(WITH_DB) $(PY) -m lakehouse.roles apply --superset-login

# Superset lives in its own venv (it needs SQLAlchemy < 2), pinned by superset/requirements.lock.
SUPERSET_VENV := .venv-superset
SUPERSET_PORT ?= 8088

$(SUPERSET_VENV)/.synced: superset/requirements.lock $(VENV)/.synced
	@test -x $(SUPERSET_VENV)/bin/python || $(VENV)/bin/uv venv -q --python $(PY) $(SUPERSET_VENV)
	$(VENV)/bin/uv pip sync -q --compile-bytecode --python $(SUPERSET_VENV)/bin/python superset/requirements.lock
	@touch $@

superset: venv $(SUPERSET_VENV)/.synced
	@$(WITH_DB) set -e; $(PY) -m lakehouse.roles apply --superset-login; \
	SUPERSET_PORT=$(SUPERSET_PORT) $(SUPERSET_VENV)/bin/python superset/manage.py start

superset-stop:
	@test -x $(SUPERSET_VENV)/bin/python && $(SUPERSET_VENV)/bin/python superset/manage.py stop || true

# Airflow 3 (AIRFLOW_HOME=.local/airflow, SQLite metadata): the UI with the etl_ml_pipeline
# DAG, rendered by Cosmos from the manifest `dbt-parse` writes. Login: see docs/airflow.md.
.PHONY: airflow airflow-stop dag-test
AIRFLOW_PORT ?=

airflow: venv dbt-parse
	@$(WITH_DB) $(PY) -m devtools.airflow_local serve $(if $(AIRFLOW_PORT),--port $(AIRFLOW_PORT))

airflow-stop: venv
	@$(PY) -m devtools.airflow_local stop

dag-test: venv
	$(PY) -m pytest tests/test_dag.py tests/test_airflow_api.py

# The DAG for each year FROM..TO (no FROM/TO: every LAKEHOUSE_YEARS year the lake holds),
# oldest first, one `airflow dags test` per year, stopping at the first failure.
.PHONY: backfill bench-decade
FROM ?=
TO ?=
FORCE ?=
backfill: venv dbt-parse
	@$(WITH_DB) $(PY) -m devtools.airflow_local backfill $(if $(FROM),--from $(FROM)) \
	  $(if $(TO),--to $(TO)) $(if $(filter 1 yes true,$(FORCE)),--force)

# Generated years are cached in BENCH_DIR (default .local/bench-decade); BENCH_YEARS (default
# 2009-2018) and BENCH_ROWS (default 6.5 M) shrink it; see docs/airflow.md.
bench-decade: venv dbt-parse
	@$(WITH_DB) $(PY) bench/bench_decade.py --rows $${BENCH_ROWS:-6500000} \
	  $(if $(BENCH_YEARS),--years $(BENCH_YEARS)) $(if $(BENCH_DIR),--dir $(BENCH_DIR))

# One BTS month end to end vs its whole year vs psql \copy (docs/bts.md); BENCH_ROWS: the year.
.PHONY: bench-month-real
bench-month-real: venv $(REAL_DATA)
	$(PY) bench/bench_month_real.py

.PHONY: bench-month
bench-month: venv
	@$(WITH_DB) $(PY) bench/bench_month.py --rows $${BENCH_ROWS:-7200000}

.PHONY: bench-dag
bench-dag: venv
	@$(WITH_DB) $(PY) bench/bench_dag.py --rows $${BENCH_ROWS:-7200000}

# The four benches of the baseline commit (a detached worktree in .local/bench-baseline, this
# venv) and of this checkout, interleaved in one run on one server; logs in .local/bench-compare.
.PHONY: bench-compare
BASELINE ?= 3ef2999
BENCHES ?=
REPEAT ?=
bench-compare: venv
	@$(WITH_DB) $(PY) bench/bench_compare.py --baseline $(BASELINE) --rows $${BENCH_ROWS:-7200000} \
	  $(if $(BENCHES),--benches $(BENCHES)) $(if $(REPEAT),--repeat $(REPEAT))

.PHONY: generate bench-generate
generate: venv
	$(PY) -m loaders generate --year $(YEAR) --rows $(ROWS) --seed $(SEED) $(AIRPORTS_ARG)

bench-generate: venv
	$(PY) bench/bench_generate.py --rows $${BENCH_ROWS:-7200000}

# Anomaly scoring (ml/): score a year of gold into ml.*, evaluate the detectors, benchmark.
.PHONY: score ml-evaluate ml-tune real-data bench-ml
score: venv
	@$(WITH_DB) $(PY) -m ml score --year $(YEAR)

# Real flights for the evaluation (ml/real_flights.py): vega-datasets 3.2.1 from the npm
# registry, its tarball checked against a pinned sha256, only flights-3m.parquet kept.
REAL_DATA := .local/real/flights-3m.parquet
REAL_DATA_PACKAGE := vega-datasets@3.2.1
REAL_DATA_SHA256 := 6f72fda460a9863fae5fcb32f85bcd49e1761fdea6dc6cf9f4962472881cc5a3  # pragma: allowlist secret
real-data: $(REAL_DATA)

$(REAL_DATA):
	@mkdir -p $(@D)
	@cd $(@D) && rm -f vega-datasets-*.tgz && npm pack --silent $(REAL_DATA_PACKAGE) >/dev/null && \
	echo "$(strip $(REAL_DATA_SHA256))  vega-datasets-3.2.1.tgz" | sha256sum -c --quiet - && \
	tar xzf vega-datasets-3.2.1.tgz --strip-components=2 package/data/flights-3m.parquet && \
	rm vega-datasets-3.2.1.tgz && echo "$(REAL_DATA): 3 M real flights, 2001-01..06"

# The generated years the evaluation judges, built and scored by the pipeline itself (the DAG,
# as `make backfill` runs it): 2016 is history, 2017 has labelled disruptions, 2018 is clean.
# EVAL_ROWS (default a real year's 7.2 M) shrinks them; the seed is the documented one.
EVAL_ROWS ?= 7200000
ml-evaluate: venv dbt-parse real-data
	@$(WITH_DB) set -e; \
	$(PY) -m loaders generate --year 2016 --rows $(EVAL_ROWS) --seed 11; \
	$(PY) -m loaders generate --year 2017 --rows $(EVAL_ROWS) --seed 11; \
	$(PY) -m loaders generate --year 2018 --rows $(EVAL_ROWS) --seed 11 --no-disruptions; \
	$(PY) -m devtools.airflow_local backfill --from 2016 --to 2018 --force; \
	$(PY) -m ml evaluate --labelled 2017 --clean 2018 --markdown docs/ml_evaluation.md

ml-tune: venv real-data
	@$(WITH_DB) $(PY) -m ml evaluate --tune

bench-ml: venv
	$(PY) bench/bench_ml.py --rows $${BENCH_ROWS:-7200000}
