"""The developer harness: what `make demo`, `make test` and the benchmarks use to stand the
project up on one machine (the local PostgreSQL cluster, a local Airflow, background servers).

Nothing the pipeline's tasks run imports it: the runtime is `lakehouse` (warehouse, lake,
roles), `loaders`, `dbt_project` and `ml`."""
