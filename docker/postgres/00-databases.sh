#!/usr/bin/env bash
# First start of the Postgres volume: Airflow's and Superset's metadata databases, each owned
# by its own login. The warehouse (POSTGRES_DB) and its roles are set up by airflow-init
# (`python -m lakehouse.roles apply`), which also runs on every later start.
set -euo pipefail
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
     -v airflow_pw="$AIRFLOW_DB_PASSWORD" -v superset_pw="$SUPERSET_DB_PASSWORD" <<'SQL'
create role airflow login password :'airflow_pw';
create database airflow owner airflow;
create role superset login password :'superset_pw';
create database superset owner superset;
SQL
