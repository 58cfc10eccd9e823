"""The runtime every part shares: one way to reach the warehouse (`lakehouse.warehouse`), one
way to reach the lake (`lakehouse.lake`), the least-privilege roles (`lakehouse.roles`), which
years are valid (`lakehouse.years`) and the DAG's helpers (`lakehouse.airflow_support`). The
developer harness that starts things on one machine is `devtools`."""
