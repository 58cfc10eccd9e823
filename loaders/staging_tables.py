"""The staging schema, the load audit, and the per-year partition swap.

A year is replaced in ONE transaction: fresh tables are created and filled (COPY into a table
created in the same transaction skips WAL under wal_level=minimal and can FREEZE its rows),
then the old partitions are detached and dropped and the new ones attached under the year's
name. Readers see the old year or the new one, never a mix; a crash rolls everything back.
"""

from __future__ import annotations

from pathlib import Path

import psycopg
from psycopg import sql

from loaders.bronze_format import STAGING_COLUMNS

SCHEMA_SQL = Path(__file__).with_name("sql") / "staging_schema.sql"
SCHEMA = "staging"
FLIGHTS = "flights"
REJECTED = "flights_rejected"

ANALYZED_COLUMNS = {
    FLIGHTS: ("year", "load_id", "line_no", "fl_date", "op_carrier", "origin", "dest",
              "cancelled", "diverted"),
    REJECTED: ("year", "load_id", "line_no", "reason"),
}

# Advisory lock keys (two-int form: a namespace and an id). The namespace is a fixed hash so
# the loader's locks do not collide with anybody else's integer keys.
_LOCK_NAMESPACE = "select hashtext('lakehouse.loaders.staging')"


def apply_schema(conn: psycopg.Connection) -> None:
    """Create/upgrade the staging schema (idempotent); serialised so concurrent loads don't race."""
    with conn.transaction():
        conn.execute(sql.SQL("select pg_advisory_xact_lock(({}), 0)").format(sql.SQL(_LOCK_NAMESPACE)))
        conn.execute(SCHEMA_SQL.read_text(encoding="utf-8"))


def lock_year(conn: psycopg.Connection, year: int) -> None:
    """Serialise loads of the same year until the end of the current transaction."""
    conn.execute(
        sql.SQL("select pg_advisory_xact_lock(({}), %s)").format(sql.SQL(_LOCK_NAMESPACE)), (year,)
    )


def audit_start(conn: psycopg.Connection, load_id: str, year: int, uri: str, size: int) -> None:
    conn.execute(
        "insert into staging.load_audit (load_id, year, source_uri, bytes, status, pid) "
        "values (%s, %s, %s, %s, 'running', pg_backend_pid())",
        (load_id, year, uri, size),
    )


def audit_abandoned(conn: psycopg.Connection, year: int, load_id: str) -> int:
    """Mark earlier `running` loads of the year whose backend is gone as failed; returns count."""
    cur = conn.execute(
        "update staging.load_audit set status = 'failed', finished_at = now(), "
        "error = 'abandoned: the loading process died before finishing (its backend is gone); "
        "the previous data of the year was kept' "
        "where year = %s and status = 'running' and load_id <> %s "
        "and (pid is null or pid not in (select pid from pg_stat_activity where pid is not null))",
        (year, load_id),
    )
    return cur.rowcount


def audit_succeeded(conn: psycopg.Connection, load_id: str, lines: int, loaded: int,
                    rejected: int, seconds: float) -> None:
    conn.execute(
        "update staging.load_audit set status = 'succeeded', lines_read = %s, rows_loaded = %s, "
        "rows_rejected = %s, seconds = %s, finished_at = clock_timestamp() where load_id = %s",
        (lines, loaded, rejected, seconds, load_id),
    )


def audit_failed(conn: psycopg.Connection, load_id: str, error: str) -> None:
    conn.execute(
        "update staging.load_audit set status = 'failed', error = %s, finished_at = now() "
        "where load_id = %s and status = 'running'",
        (error, load_id),
    )


def partition_name(table: str, year: int) -> str:
    return f"{table}_{year}"


def create_fresh(conn: psycopg.Connection, table: str, year: int, load_id: str) -> str:
    """A new empty table shaped like staging.`table`, for `year`; returns its name.

    Its CHECK (year = Y) lets ATTACH PARTITION skip the validation scan. year and load_id get
    constant defaults so COPY does not have to carry (and the server parse) them per row.
    """
    name = f"{partition_name(table, year)}_loading"
    ident = sql.Identifier(SCHEMA, name)
    conn.execute(sql.SQL("create table {} (like {})").format(ident, sql.Identifier(SCHEMA, table)))
    conn.execute(
        sql.SQL("alter table {} add constraint {} check (year = {}), "
                "alter column year set default {}, alter column load_id set default {}").format(
            ident, sql.Identifier(f"{partition_name(table, year)}_year_check"), sql.Literal(year), sql.Literal(year),
            sql.Literal(load_id),
        )
    )
    return name


def copy_flights_statement(name: str) -> sql.Composed:
    cols = sql.SQL(", ").join(sql.Identifier(c) for c in ("line_no", *STAGING_COLUMNS))
    return sql.SQL(
        "copy {} ({}) from stdin (format text, delimiter ',', null '', freeze)"
    ).format(sql.Identifier(SCHEMA, name), cols)


def copy_rejects_statement(name: str) -> sql.Composed:
    return sql.SQL("copy {} (line_no, raw_line, reason) from stdin (freeze)").format(
        sql.Identifier(SCHEMA, name)
    )


def _current_partition(conn: psycopg.Connection, table: str, year: int) -> str | None:
    row = conn.execute(
        "select c.relname from pg_inherits i join pg_class c on c.oid = i.inhrelid "
        "where i.inhparent = %s::regclass and pg_get_expr(c.relpartbound, c.oid) = %s",
        (f"{SCHEMA}.{table}", f"FOR VALUES IN ({int(year)})"),
    ).fetchone()
    return row[0] if row else None


def publish(conn: psycopg.Connection, table: str, fresh: str, year: int) -> None:
    """Swap `fresh` in as staging.`table`'s partition for `year` (inside the caller's transaction)."""
    ident = sql.Identifier(SCHEMA, fresh)
    conn.execute(sql.SQL("alter table {} alter column year drop default, "
                         "alter column load_id drop default").format(ident))
    # Statistics before the swap, so the first dbt run plans with real row counts and the
    # exclusive lock on the parent below is held only for catalog changes. Only the columns
    # that are filtered, joined or grouped on: all 31 cost ~1 s per load whatever its size.
    conn.execute(sql.SQL("analyze {} ({})").format(
        ident, sql.SQL(", ").join(sql.Identifier(c) for c in ANALYZED_COLUMNS[table])))
    parent = sql.Identifier(SCHEMA, table)
    old = _current_partition(conn, table, year)
    if old is not None:
        conn.execute(sql.SQL("alter table {} detach partition {}").format(
            parent, sql.Identifier(SCHEMA, old)))
        conn.execute(sql.SQL("drop table {}").format(sql.Identifier(SCHEMA, old)))
    final = partition_name(table, year)
    conn.execute(sql.SQL("alter table {} rename to {}").format(ident, sql.Identifier(final)))
    conn.execute(sql.SQL("alter table {} attach partition {} for values in ({})").format(
        parent, sql.Identifier(SCHEMA, final), sql.Literal(year)))
