"""The one way every part reaches the warehouse: libpq's standard PG* variables.

With PGHOST unset, the project's own local cluster (`make db-start`) is used when it runs, so
`python -m loaders ...` works in a fresh shell after `make demo` without exporting anything.
"""

from __future__ import annotations

import os
from pathlib import Path

import psycopg
import psycopg.sql

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


# Least-privilege roles (created by the warehouse roles script when the operator runs it).
# Each part asks for its own; when the role does not exist the session user is used as is.
PART_ROLES = {
    "loader": "lakehouse_loader",
    "transform": "lakehouse_transform",
    "ml": "lakehouse_ml",
    "reader": "lakehouse_reader",
}


def connect(part: str | None = None, **kwargs) -> psycopg.Connection:
    """A new psycopg connection to the warehouse, acting as `part`'s role when it exists.

    `part` is one of PART_ROLES (`loader`, `transform`, `ml`, `reader`); keyword arguments
    go to psycopg.connect.
    """
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
    conn = psycopg.connect(**params, **kwargs)
    if part is not None:
        _assume_role(conn, PART_ROLES[part])
    return conn


def _assume_role(conn: psycopg.Connection, role: str) -> None:
    row = conn.execute(
        "select pg_has_role(current_user, oid, 'MEMBER') from pg_roles where rolname = %s",
        (role,),
    ).fetchone()
    if row and row[0]:
        conn.execute(psycopg.sql.SQL("set role {}").format(psycopg.sql.Identifier(role)))
    if not conn.autocommit:
        conn.commit()
