"""Silver and gold → Parquet in the lake (`python -m loaders export --year Y [--month M]`).

Writes `02_silver/year/{Y}/{Y}_02_silver.parquet` (silver.flights) and
`03_gold/agg_dep_delay_by_date/year/{Y}/{Y}_03_gold.parquet` for one year, local or S3; with
a month, `02_silver/year/{Y}/month/{MM}/{Y}_{MM}_02_silver.parquet` and the gold file beside
it the same way, holding the flights (and airport-days) whose `fl_date` is in that month.

A year's Parquet is either its year file or its month files, never both, so a reader of
`year/{Y}/` counts every flight once: a year export removes the year's month files after it
publishes the year file, and the first month export of a year whose year file is in the lake
writes every month the warehouse holds for the year and then removes the year file (later
month exports write their month only).

Rows stream: PostgreSQL's `COPY (select ...) TO STDOUT (format csv)` feeds a pipe that Arrow's
streaming CSV reader parses in blocks, and each block goes straight into a ParquetWriter, so
memory stays flat whatever the year's size. Arrow types come from the table's catalog types,
so columns added to the models flow through. Both files are read in one REPEATABLE READ
snapshot and published only when complete (`Lake.open_write`); a re-export overwrites.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from psycopg import sql

from lakehouse.errors import UserError
from lakehouse.lake import Lake, gold_key, gold_month_key, silver_key, silver_month_key
from lakehouse.warehouse import connect
from lakehouse.years import check_month, check_year

CSV_BLOCK_BYTES = 8 << 20  # Arrow parses ~50 k flight rows per block
PIPE_CHUNK = 1 << 16

# PostgreSQL catalog type -> Arrow type, for the types the silver/gold models use.
ARROW_TYPES = {
    "smallint": pa.int16(),
    "integer": pa.int32(),
    "bigint": pa.int64(),
    "double precision": pa.float64(),
    "real": pa.float32(),
    "numeric": pa.float64(),
    "boolean": pa.bool_(),
    "date": pa.date32(),
    "timestamp without time zone": pa.timestamp("us"),
    "timestamp with time zone": pa.timestamp("us", tz="UTC"),
    "text": pa.string(),
    "character varying": pa.string(),
    "uuid": pa.string(),
}


@dataclass(frozen=True)
class Table:
    schema: str
    name: str
    order_by: tuple[str, ...]


SILVER = Table("silver", "flights", ())  # file order = table order: sorting 7 M rows buys nothing
GOLD = Table("gold", "agg_dep_delay_by_date", ("origin", "fl_date"))


def _arrow_schema(conn: psycopg.Connection, table: Table) -> pa.Schema:
    rows = conn.execute(
        "select column_name, data_type from information_schema.columns "
        "where table_schema = %s and table_name = %s order by ordinal_position",
        (table.schema, table.name),
    ).fetchall()
    if not rows:
        raise UserError(
            f"{table.schema}.{table.name} does not exist: build the warehouse first "
            "(`dbt build --project-dir dbt_project --vars '{year: Y}'`)"
        )
    fields = []
    for name, pg_type in rows:
        if pg_type not in ARROW_TYPES:
            raise UserError(f"{table.schema}.{table.name}.{name} has type {pg_type}, which the "
                            "export does not map to Parquet: add it to loaders.export.ARROW_TYPES")
        fields.append(pa.field(name, ARROW_TYPES[pg_type]))
    return pa.schema(fields)


def _period_filter(year: int, month: int | None) -> sql.Composed:
    """The rows of the year, or of its month by `fl_date` (silver and gold both have it, and a
    flight's day is what a month means in both formats). COPY takes no bind parameters: the
    values are ints rendered as quoted literals."""
    where = sql.SQL("year = {}").format(sql.Literal(year))
    if month is None:
        return where
    first = dt.date(year, month, 1)
    after = dt.date(year + month // 12, month % 12 + 1, 1)
    return where + sql.SQL(" and fl_date >= {} and fl_date < {}").format(
        sql.Literal(first), sql.Literal(after))


def _has_rows(conn: psycopg.Connection, table: Table, where: sql.Composed) -> bool:
    # exists, not count(*): counting a 7.2 M-row year scans it all (~0.7 s) to learn "not 0"
    query = sql.SQL("select exists (select from {} where {})").format(
        sql.Identifier(table.schema, table.name), where)
    return conn.execute(query).fetchone()[0]


def _copy_query(table: Table, schema: pa.Schema, where: sql.Composed) -> sql.Composed:
    return sql.SQL("copy (select {cols} from {table} where {where}{order}) "
                   "to stdout (format csv)").format(
        cols=sql.SQL(", ").join(sql.Identifier(f.name) for f in schema),
        table=sql.Identifier(table.schema, table.name),
        where=where,
        order=(sql.SQL(" order by ") + sql.SQL(", ").join(map(sql.Identifier, table.order_by))
               if table.order_by else sql.SQL("")),
    )


def _stream_to_parquet(conn: psycopg.Connection, table: Table, where: sql.Composed, lake: Lake,
                       key: str) -> dict:
    schema = _arrow_schema(conn, table)
    query = _copy_query(table, schema, where)
    read_fd, write_fd = os.pipe()
    failure: list[BaseException] = []

    def produce() -> None:
        try:
            with os.fdopen(write_fd, "wb", buffering=PIPE_CHUNK) as out, \
                    conn.cursor().copy(query) as copy:
                for chunk in copy:
                    out.write(chunk)
        except BaseException as exc:  # noqa: BLE001 -- re-raised in the caller's thread
            failure.append(exc)

    producer = threading.Thread(target=produce, name=f"copy-{table.name}", daemon=True)
    producer.start()
    rows = 0
    try:
        with os.fdopen(read_fd, "rb") as source, lake.open_write(key) as sink:
            reader = pacsv.open_csv(
                source,
                read_options=pacsv.ReadOptions(column_names=schema.names,
                                               block_size=CSV_BLOCK_BYTES),
                convert_options=pacsv.ConvertOptions(
                    column_types=schema, true_values=["t"], false_values=["f"],
                    strings_can_be_null=True, quoted_strings_can_be_null=False,
                    null_values=[""]),
            )
            with pq.ParquetWriter(sink, schema, compression="zstd") as writer:
                for batch in reader:
                    writer.write_batch(batch)
                    rows += batch.num_rows
            producer.join()
            if failure:
                raise failure[0]
    finally:
        producer.join(timeout=60)
    if failure:
        raise failure[0]
    return {"uri": lake.uri(key), "rows": rows, "bytes": lake.size(key),
            "columns": len(schema)}


@contextlib.contextmanager
def _snapshot() -> Iterator[psycopg.Connection]:
    """One read-only REPEATABLE READ snapshot, so silver and gold describe the same build."""
    with connect(part="transform") as conn:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        yield conn
        conn.rollback()


def _require_rows(conn: psycopg.Connection, year: int, month: int | None) -> None:
    what = f"year {year}" if month is None else f"{year}-{month:02d}"
    how = (f"`python -m loaders load --year {year}` then `dbt build --project-dir dbt_project "
           f"--vars '{{year: {year}}}'`") if month is None else (
        f"`python -m loaders load --year {year} --month {month}` then `dbt build --project-dir "
        f"dbt_project --vars '{{year: {year}, month: {month}}}'`")
    for table in (SILVER, GOLD):
        _arrow_schema(conn, table)
        if not _has_rows(conn, table, _period_filter(year, month)):
            raise UserError(f"{table.schema}.{table.name} has no rows for {what}: load and "
                            f"build it first ({how})")


def _export(conn: psycopg.Connection, year: int, month: int | None, lake: Lake) -> dict:
    where = _period_filter(year, month)
    keys = ((silver_key(year), gold_key(year)) if month is None
            else (silver_month_key(year, month), gold_month_key(year, month)))
    return {"silver": _stream_to_parquet(conn, SILVER, where, lake, keys[0]),
            "gold": _stream_to_parquet(conn, GOLD, where, lake, keys[1])}


def export_year(year: int, lake: Lake | None = None) -> dict:
    """Write the year's silver.flights and gold.agg_dep_delay_by_date as Parquet to the lake,
    then remove the year's month files (the year file holds them).

    Returns year, silver {uri, rows, bytes, columns}, gold {...}, removed [uri], seconds.
    Raises UserError when the year has not been built.
    """
    check_year(year)
    lake = lake or Lake.from_env()
    started = time.perf_counter()
    with _snapshot() as conn:
        _require_rows(conn, year, None)
        result = _export(conn, year, None, lake)
    removed = _remove(lake, [k for m in range(1, 13)
                             for k in (silver_month_key(year, m), gold_month_key(year, m))])
    return {"year": year, **result, "removed": removed,
            "seconds": round(time.perf_counter() - started, 3)}


def export_month(year: int, month: int, lake: Lake | None = None) -> dict:
    """Write one month of the year (the flights and airport-days whose `fl_date` is in it) as
    Parquet to the lake, leaving the year's other months alone.

    When the lake holds the year's file (a year exported whole before), that file is replaced
    by month files: every month of the year in the warehouse is written, then the year file
    is removed. Returns year, month, silver, gold, months (every month written), removed,
    seconds. Raises UserError when the month has not been built.
    """
    year, month = check_year(year), check_month(month)
    lake = lake or Lake.from_env()
    started = time.perf_counter()
    year_files = [k for k in (silver_key(year), gold_key(year)) if lake.exists(k)]
    with _snapshot() as conn:
        _require_rows(conn, year, month)
        months = [month]
        if year_files:
            months = [m for (m,) in conn.execute(
                "select distinct extract(month from fl_date)::int from silver.flights "
                "where year = %s order by 1", (year,))]
        written = {m: _export(conn, year, m, lake) for m in months}
    removed = _remove(lake, year_files)
    return {"year": year, "month": month, **written[month], "months": months,
            "removed": removed, "seconds": round(time.perf_counter() - started, 3)}


def _remove(lake: Lake, keys: list[str]) -> list[str]:
    removed = []
    for key in keys:
        if lake.exists(key):
            lake.delete(key)
            removed.append(lake.uri(key))
    return removed


def cli_export(args) -> int:
    month = getattr(args, "month", None)
    result = export_year(args.year) if month is None else export_month(args.year, month)
    if args.json:
        print(json.dumps(result))
    else:
        for part in ("silver", "gold"):
            info = result[part]
            print(f"wrote {info['uri']}: {info['rows']:,} rows, {info['bytes']:,} bytes")
        if len(result.get("months", [])) > 1:
            print(f"the lake held the year's file: wrote every month the warehouse holds "
                  f"({', '.join(f'{m:02d}' for m in result['months'])}) instead")
        for uri in result["removed"]:
            print(f"removed {uri}")
        what = str(args.year) if month is None else f"{args.year}-{month:02d}"
        print(f"exported {what} in {result['seconds']} s")
    return 0
