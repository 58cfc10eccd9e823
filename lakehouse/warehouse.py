"""The one way every part reaches the warehouse: libpq's standard PG* variables.

With PGHOST unset, the project's own local cluster (`make db-start`) is used when it runs, so
`python -m loaders ...` works in a fresh shell after `make demo` without exporting anything.
"""

from __future__ import annotations

import os
from pathlib import Path

import psycopg

from lakehouse import localdb


class WarehouseConfigError(RuntimeError):
    """No warehouse configured and no local cluster running; the message says what to do."""


def libpq_env() -> dict[str, str]:
    """The PG* variables to use: the caller's when PGHOST is set, else the local cluster's."""
    if os.environ.get("PGHOST"):
        return {k: v for k, v in os.environ.items() if k.startswith("PG")}
    base = Path(os.environ.get("LAKEHOUSE_PG_DIR", str(localdb.DEFAULT_DIR)))
    if (base / "port").exists():
        cluster = localdb._cluster(base)
        if localdb.is_running(cluster):
            return {**{k: v for k, v in os.environ.items() if k.startswith("PG")}, **cluster.env()}
    raise WarehouseConfigError(
        "no warehouse configured: export PGHOST, PGPORT, PGUSER, PGPASSWORD and PGDATABASE "
        "for your server, or run `make db-start` to start the project's local PostgreSQL"
    )


def apply_env() -> dict[str, str]:
    """Put the resolved PG* variables into os.environ (for dbt and subprocesses) and return them."""
    env = libpq_env()
    os.environ.update(env)
    return env


def connect(**kwargs) -> psycopg.Connection:
    """A new psycopg connection to the warehouse; keyword arguments go to psycopg.connect."""
    env = libpq_env()
    params = {
        "host": env.get("PGHOST"),
        "port": env.get("PGPORT"),
        "user": env.get("PGUSER"),
        "dbname": env.get("PGDATABASE"),
    }
    if env.get("PGPASSWORD"):
        params["password"] = env["PGPASSWORD"]
    params = {k: v for k, v in params.items() if v}
    return psycopg.connect(**params, **kwargs)
