"""The one way every part reaches the warehouse: libpq's standard PG* variables.

With PGHOST unset, the project's own local cluster (`make db-start`, `devtools.localdb`) is used
when it runs, so `python -m loaders ...` works in a fresh shell after `make demo` without
exporting anything. That cluster is found by the port file it leaves in its folder; this
module does not import the harness that starts it.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import psycopg
import psycopg.sql

# Where `make db-start` keeps the project's own cluster, and its login role and database.
LOCAL_CLUSTER_DIR = Path(".local/pg")
LOCAL_CLUSTER_ROLE = "lakehouse"


class WarehouseConfigError(RuntimeError):
    """No warehouse configured and no local cluster running; the message says what to do."""


def libpq_env() -> dict[str, str]:
    """The PG* variables to use: the caller's when PGHOST is set, else the local cluster's."""
    if os.environ.get("PGHOST"):
        return {k: v for k, v in os.environ.items() if k.startswith("PG")}
    base = Path(os.environ.get("LAKEHOUSE_PG_DIR", str(LOCAL_CLUSTER_DIR)))
    local = local_cluster_env(base)
    if local is not None and _accepts_connections(local["PGHOST"], int(local["PGPORT"])):
        return {**{k: v for k, v in os.environ.items() if k.startswith("PG")}, **local}
    raise WarehouseConfigError(
        "no warehouse configured: export PGHOST, PGPORT, PGUSER, PGPASSWORD and PGDATABASE "
        "for your server, or run `make db-start` to start the project's local PostgreSQL"
    )


def local_cluster_env(base: Path) -> dict[str, str] | None:
    """The PG* variables of the local cluster in `base` (whether or not it runs), or None."""
    try:
        port = int((base / "port").read_text().strip())
    except (OSError, ValueError):
        return None
    return {"PGHOST": "127.0.0.1", "PGPORT": str(port), "PGUSER": LOCAL_CLUSTER_ROLE,
            "PGDATABASE": LOCAL_CLUSTER_ROLE}


def _accepts_connections(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


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

    `part` is one of PART_ROLES (`loader`, `transform`, `ml`, `reader`); the role is assumed
    when it exists, the session user is a member and the roles script has run in this
    database. When LAKEHOUSE_<PART>_DB_USER is set (a server with a login per part, see
    `python -m lakehouse.roles apply --part-logins`) the part logs in as that user with
    LAKEHOUSE_<PART>_PASSWORD instead of PGUSER/PGPASSWORD. Keyword arguments go to
    psycopg.connect.
    """
    env = libpq_env()
    user, password = env.get("PGUSER"), env.get("PGPASSWORD")
    if part is not None and os.environ.get(f"LAKEHOUSE_{part.upper()}_DB_USER"):
        user = os.environ[f"LAKEHOUSE_{part.upper()}_DB_USER"]
        password = os.environ.get(f"LAKEHOUSE_{part.upper()}_PASSWORD")
    params = {
        "host": env.get("PGHOST"),
        "port": env.get("PGPORT"),
        "user": user,
        "dbname": env.get("PGDATABASE"),
    }
    if password:
        params["password"] = password
    params = {k: v for k, v in params.items() if v}
    conn = psycopg.connect(**params, **kwargs)
    if part is not None:
        _assume_role(conn, part)
    return conn


# The schema each role works in: roles are cluster-wide but grants are per database, so a
# role is only assumed where the roles script has run (its schema exists and it may use it).
PART_SCHEMAS = {"loader": "staging", "transform": "silver", "ml": "ml", "reader": "gold"}


def _assume_role(conn: psycopg.Connection, part: str) -> None:
    role = PART_ROLES[part]
    row = conn.execute(
        """
        select pg_has_role(current_user, r.oid, 'MEMBER')
               and exists (select 1 from pg_namespace n
                           where n.nspname = %s and has_schema_privilege(r.oid, n.oid, 'USAGE'))
        from pg_roles r where r.rolname = %s
        """,
        (PART_SCHEMAS[part], role),
    ).fetchone()
    if row and row[0]:
        conn.execute(psycopg.sql.SQL("set role {}").format(psycopg.sql.Identifier(role)))
    if not conn.autocommit:
        conn.commit()
