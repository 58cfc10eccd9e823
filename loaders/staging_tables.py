"""The staging schema, the load audit, and the per-year partition swap.

A year is replaced in ONE transaction: fresh tables are created and filled (COPY into a table
created in the same transaction skips WAL under wal_level=minimal and can FREEZE its rows),
then the old partitions are detached and dropped and the new ones attached under the year's
name. Readers see the old year or the new one, never a mix; a crash rolls everything back.

A year of staging.flights is itself range-partitioned by line_no, one piece per COPY stream
(loaders/load.py loads a large local file as two pieces in parallel). The first piece is
filled in the load's own transaction; the others on their own connections, each committed as
a table outside staging.flights (`flights_Y_K_loading`), which the load's transaction then
attaches. A crash can leave such a table behind, never a visible row: the next load of the
year drops it (drop_unpublished).

A year loaded from BTS monthly files is range-partitioned by line_no too, one partition per
month (`flights_Y_mMM`, lines bts_format.month_lines(M)); a month load swaps only its own
month's partitions (of staging.flights and staging.flights_rejected) the same way, in one
transaction. Such a year's partitions carry the comment MONTHLY, which is how a month load
tells them from a year loaded from one yearly file (which it does not mix months into).
"""

from __future__ import annotations

from pathlib import Path

import psycopg
from psycopg import sql

from lakehouse.errors import UserError
from loaders import bts_format
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


def try_lock_year(conn: psycopg.Connection, year: int) -> bool:
    """lock_year without waiting: False when another load of the year holds or awaits it."""
    return conn.execute(
        sql.SQL("select pg_try_advisory_xact_lock(({}), %s)").format(sql.SQL(_LOCK_NAMESPACE)),
        (year,),
    ).fetchone()[0]


def audit_start(conn: psycopg.Connection, load_id: str, year: int, uri: str, size: int,
                month: int | None = None) -> None:
    conn.execute(
        "insert into staging.load_audit (load_id, year, month, source_uri, bytes, status, pid) "
        "values (%s, %s, %s, %s, %s, 'running', pg_backend_pid())",
        (load_id, year, month, uri, size),
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


def create_fresh(conn: psycopg.Connection, table: str, year: int, load_id: str,
                 piece: int | None = None, lines: tuple[int, int | None] | None = None,
                 month: int | None = None) -> str:
    """A new empty table shaped like staging.`table`, for `year` (and piece `piece` of its
    lines, numbered from 1); returns its name.

    Its CHECK (year = Y), and for a piece its CHECK on the line_no range [first, end), let
    ATTACH PARTITION skip the validation scan. year and load_id get constant defaults so COPY
    does not have to carry (and the server parse) them per row; publish drops them.
    """
    if month is not None:
        final = month_name(table, year, month)
    else:
        final = partition_name(table, year) if piece is None else piece_name(year, piece)
    ident = sql.Identifier(SCHEMA, f"{final}_loading")
    conn.execute(sql.SQL("create table {} (like {})").format(ident, sql.Identifier(SCHEMA, table)))
    conn.execute(
        sql.SQL("alter table {} add constraint {} check (year = {}), "
                "alter column year set default {}, alter column load_id set default {}").format(
            ident, sql.Identifier(f"{final}_year_check"), sql.Literal(year), sql.Literal(year),
            sql.Literal(load_id),
        )
    )
    if lines is not None:
        first, end = lines
        conn.execute(sql.SQL("alter table {} add constraint {} check (line_no >= {}{})").format(
            ident, sql.Identifier(f"{final}_lines_check"), sql.Literal(first),
            sql.SQL(" and line_no < {}").format(sql.Literal(end)) if end is not None else sql.SQL(""),
        ))
    return f"{final}_loading"


MAX_PIECES = 8  # drop_unpublished looks for leftovers of this many pieces


def piece_name(year: int, piece: int) -> str:
    return f"{partition_name(FLIGHTS, year)}_{piece}"


def drop_defaults(conn: psycopg.Connection, name: str) -> None:
    conn.execute(sql.SQL("alter table {} alter column year drop default, "
                         "alter column load_id drop default").format(sql.Identifier(SCHEMA, name)))


def drop_unpublished(conn: psycopg.Connection, year: int) -> None:
    """Drop pieces a crashed or failed load of `year` committed but never attached (the
    caller holds the year's lock, so no running load owns them)."""
    for piece in range(2, MAX_PIECES + 1):
        conn.execute(sql.SQL("drop table if exists {}").format(
            sql.Identifier(SCHEMA, f"{piece_name(year, piece)}_loading")))


def assemble_year(conn: psycopg.Connection, year: int, pieces: list[tuple[str, int, int | None]]) -> str:
    """The year's new staging.flights partition: a table range-partitioned by line_no with the
    filled `pieces` (name, first line, end line or None for the last) attached; returns its name."""
    name = f"{partition_name(FLIGHTS, year)}_loading"
    ident = sql.Identifier(SCHEMA, name)
    conn.execute(sql.SQL("create table {} (like {}) partition by range (line_no)").format(
        ident, sql.Identifier(SCHEMA, FLIGHTS)))
    for i, (piece, first, end) in enumerate(pieces):
        conn.execute(sql.SQL("alter table {} attach partition {} for values from ({}) to ({})").format(
            ident, sql.Identifier(SCHEMA, piece),
            sql.SQL("minvalue") if i == 0 else sql.Literal(first),
            sql.SQL("maxvalue") if end is None else sql.Literal(end)))
    return name


def copy_flights_statement(name: str) -> sql.Composed:
    cols = sql.SQL(", ").join(sql.Identifier(c) for c in ("line_no", *STAGING_COLUMNS))
    return sql.SQL(
        "copy {} ({}) from stdin (format text, delimiter ',', null '', freeze)"
    ).format(sql.Identifier(SCHEMA, name), cols)


def copy_bts_statement(name: str) -> sql.Composed:
    """COPY of loaders/bts_lines.py's CSV rows: line_no and the columns BTS has."""
    cols = sql.SQL(", ").join(sql.Identifier(c)
                              for c in ("line_no", *bts_format.STAGING_COLUMNS))
    return sql.SQL(
        "copy {} ({}) from stdin (format csv, null '', freeze)"
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


def publish(conn: psycopg.Connection, table: str, fresh: str, year: int,
            pieces: tuple[str, ...] = ()) -> None:
    """Swap `fresh` in as staging.`table`'s partition for `year` (inside the caller's
    transaction); `fresh`'s `pieces` (`flights_Y_K_loading`) lose their `_loading` suffix."""
    ident = sql.Identifier(SCHEMA, fresh)
    if not pieces:
        drop_defaults(conn, fresh)
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
    for piece in pieces:
        conn.execute(sql.SQL("alter table {} rename to {}").format(
            sql.Identifier(SCHEMA, piece), sql.Identifier(piece.removesuffix("_loading"))))
    conn.execute(sql.SQL("alter table {} attach partition {} for values in ({})").format(
        parent, sql.Identifier(SCHEMA, final), sql.Literal(year)))


# --- BTS months ---------------------------------------------------------------------------

MONTHLY = "monthly: one partition per BTS month"


def month_name(table: str, year: int, month: int) -> str:
    return f"{partition_name(table, year)}_m{month:02d}"


def _is_monthly(conn: psycopg.Connection, name: str) -> bool:
    return conn.execute("select obj_description(%s::regclass, 'pg_class') = %s",
                        (f"{SCHEMA}.{name}", MONTHLY)).fetchone()[0] is True


def monthly_year(conn: psycopg.Connection, year: int, replace_year: bool = False) -> None:
    """Make the year's staging partitions the monthly kind (inside the caller's transaction,
    holding the year's lock): created when absent; a year loaded from a yearly file is
    refused unless `replace_year`, which drops it."""
    for table in (FLIGHTS, REJECTED):
        current = _current_partition(conn, table, year)
        if current is not None and _is_monthly(conn, current):
            continue
        if current is not None:
            if not replace_year:
                raise UserError(
                    f"staging holds {year} loaded from a yearly file (01_bronze/{year}.csv); "
                    f"BTS months are not mixed into it: load the year from its yearly file, or "
                    f"pass --replace-year to drop it and load {year} month by month")
            conn.execute(sql.SQL("alter table {} detach partition {}").format(
                sql.Identifier(SCHEMA, table), sql.Identifier(SCHEMA, current)))
            conn.execute(sql.SQL("drop table {}").format(sql.Identifier(SCHEMA, current)))
        name = partition_name(table, year)
        ident = sql.Identifier(SCHEMA, name)
        conn.execute(sql.SQL("create table {} (like {}) partition by range (line_no)").format(
            ident, sql.Identifier(SCHEMA, table)))
        conn.execute(sql.SQL("comment on table {} is {}").format(ident, sql.Literal(MONTHLY)))
        conn.execute(sql.SQL("alter table {} attach partition {} for values in ({})").format(
            sql.Identifier(SCHEMA, table), ident, sql.Literal(year)))


def publish_month(conn: psycopg.Connection, table: str, fresh: str, year: int,
                  month: int) -> None:
    """Swap `fresh` in as the month's partition of the year's (monthly) partition of
    staging.`table`, inside the caller's transaction."""
    ident = sql.Identifier(SCHEMA, fresh)
    drop_defaults(conn, fresh)
    conn.execute(sql.SQL("analyze {} ({})").format(
        ident, sql.SQL(", ").join(sql.Identifier(c) for c in ANALYZED_COLUMNS[table])))
    parent = sql.Identifier(SCHEMA, partition_name(table, year))
    final = month_name(table, year, month)
    exists = conn.execute("select to_regclass(%s) is not null",
                          (f"{SCHEMA}.{final}",)).fetchone()[0]
    if exists:
        conn.execute(sql.SQL("alter table {} detach partition {}").format(
            parent, sql.Identifier(SCHEMA, final)))
        conn.execute(sql.SQL("drop table {}").format(sql.Identifier(SCHEMA, final)))
    conn.execute(sql.SQL("alter table {} rename to {}").format(ident, sql.Identifier(final)))
    first, end = bts_format.month_lines(month)
    conn.execute(sql.SQL("alter table {} attach partition {} for values from ({}) to ({})").format(
        parent, sql.Identifier(SCHEMA, final), sql.Literal(first), sql.Literal(end)))
