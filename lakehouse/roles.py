"""Least-privilege roles in the warehouse:
`python -m lakehouse.roles apply [--superset-login] [--part-logins]`.

`apply` runs `lakehouse/sql/roles.sql` (idempotent, one transaction) as the user in the PG*
variables, who must be able to create roles (the warehouse owner). With `--superset-login` it
also creates a LOGIN role for Superset (name from LAKEHOUSE_SUPERSET_DB_USER, default
`lakehouse_superset`) that is a member of `lakehouse_reader` and read-only. With
`--part-logins` it creates one LOGIN role per writing part (loader, transform, ml; names from
LAKEHOUSE_<PART>_DB_USER, default `lakehouse_<part>_login`), each a member of its part's group
role only, for a server where the parts must not share the owner's credential
(`lakehouse.warehouse.connect(part=...)` uses them when LAKEHOUSE_<PART>_DB_USER is set).

Every password comes only from the environment (LAKEHOUSE_SUPERSET_PASSWORD,
LAKEHOUSE_<PART>_PASSWORD) and is hashed on the client before it is sent; a role whose variable
is unset has no password and can only log in where pg_hba trusts it (the local cluster).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import psycopg
from psycopg import sql

from lakehouse.cli import run_cli
from lakehouse.errors import UserError
from lakehouse.warehouse import PART_ROLES, connect

ROLES_SQL = Path(__file__).with_name("sql") / "roles.sql"
DEFAULT_SUPERSET_USER = "lakehouse_superset"
# The parts that write: each gets a login of its own on a server (the reader's is Superset's).
LOGIN_PARTS = ("loader", "transform", "ml")


def part_login_name(part: str) -> str:
    """The LOGIN role a part connects as: LAKEHOUSE_<PART>_DB_USER or `lakehouse_<part>_login`."""
    return os.environ.get(f"LAKEHOUSE_{part.upper()}_DB_USER") or f"lakehouse_{part}_login"


def apply(conn: psycopg.Connection | None = None) -> list[str]:
    """Create or update the group roles, schemas and grants; returns the role names."""
    own = conn is None
    conn = conn or connect()
    try:
        with conn.transaction():
            conn.execute(ROLES_SQL.read_text(encoding="utf-8"))
    except psycopg.errors.InsufficientPrivilege as exc:
        raise UserError(
            f"cannot apply {ROLES_SQL.name} as {conn.info.user!r}: {exc.diag.message_primary}; "
            "run it as the warehouse owner (a superuser or a role with CREATEROLE)"
        ) from exc
    finally:
        if own:
            conn.close()
    return sorted(PART_ROLES.values())


def ensure_login_role(
    conn: psycopg.Connection,
    name: str = DEFAULT_SUPERSET_USER,
    member_of: str = "lakehouse_reader",
    password: str | None = None,
    read_only: bool = True,
) -> None:
    """A LOGIN role inheriting `member_of`; the password, if any, is sent hashed.

    `read_only` makes read-only the default of its sessions (the dashboards' login); a part's
    login writes, and its group role's grants are what limit it.
    """
    ident = sql.Identifier(name)
    with conn.transaction():
        exists = conn.execute("select 1 from pg_roles where rolname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(sql.SQL("create role {} login").format(ident))
        conn.execute(sql.SQL("alter role {} login inherit").format(ident))
        if password:
            hashed = conn.pgconn.encrypt_password(
                password.encode(), name.encode(), b"scram-sha-256"
            ).decode()
            conn.execute(sql.SQL("alter role {} password {}").format(ident, sql.Literal(hashed)))
        conn.execute(sql.SQL("grant {} to {}").format(sql.Identifier(member_of), ident))
        if read_only:
            # Defence in depth: even a mistaken grant cannot make a dashboard write.
            conn.execute(
                sql.SQL("alter role {} set default_transaction_read_only = on").format(ident)
            )
        else:
            conn.execute(sql.SQL("alter role {} reset default_transaction_read_only").format(ident))


def ensure_part_logins(conn: psycopg.Connection) -> list[str]:
    """One LOGIN role per writing part, member of that part's group role only."""
    names = []
    for part in LOGIN_PARTS:
        name = part_login_name(part)
        ensure_login_role(conn, name, member_of=PART_ROLES[part],
                          password=os.environ.get(f"LAKEHOUSE_{part.upper()}_PASSWORD"),
                          read_only=False)
        names.append(name)
    return names


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lakehouse.roles", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["apply"])
    parser.add_argument(
        "--superset-login", action="store_true",
        help="also create the read-only LOGIN role Superset connects as",
    )
    parser.add_argument(
        "--part-logins", action="store_true",
        help="also create a LOGIN role per writing part (loader, transform, ml)",
    )
    args = parser.parse_args(argv)
    try:
        conn = connect(autocommit=True)
    except psycopg.OperationalError as exc:
        raise UserError(
            f"cannot connect to the warehouse: {str(exc).strip().splitlines()[-1]}; "
            "check PGHOST, PGPORT, PGUSER, PGPASSWORD and PGDATABASE"
        ) from exc
    with conn:
        roles = apply(conn)
        done = f"roles {', '.join(roles)} applied in database {conn.info.dbname!r}"
        if args.superset_login:
            name = os.environ.get("LAKEHOUSE_SUPERSET_DB_USER", DEFAULT_SUPERSET_USER)
            ensure_login_role(conn, name, password=os.environ.get("LAKEHOUSE_SUPERSET_PASSWORD"))
            done += f"; login role {name!r} reads through lakehouse_reader"
        if args.part_logins:
            done += f"; part logins {', '.join(ensure_part_logins(conn))}"
    print(done, file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
