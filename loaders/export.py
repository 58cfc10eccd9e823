"""Silver and gold → Parquet in the lake (`python -m loaders export --year Y`).

Writes `02_silver/year/{Y}/{Y}_02_silver.parquet` (silver.flights) and
`03_gold/agg_dep_delay_by_date/year/{Y}/{Y}_03_gold.parquet` for one year, local or S3.

Rows stream: PostgreSQL's `COPY (select ...) TO STDOUT (format csv)` feeds a pipe that Arrow's
streaming CSV reader parses in blocks, and each block goes straight into a ParquetWriter, so
memory stays flat whatever the year's size. Arrow types come from the table's catalog types,
so columns added to the models flow through. Both files are read in one REPEATABLE READ
snapshot and published only when complete (`Lake.open_write`); a re-export overwrites.
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass

import psycopg
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from psycopg import sql

from lakehouse.errors import UserError
from lakehouse.lake import Lake, gold_key, silver_key
from lakehouse.warehouse import connect
from lakehouse.years import check_year

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


def _has_year(conn: psycopg.Connection, table: Table, year: int) -> bool:
    # exists, not count(*): counting a 7.2 M-row year scans it all (~0.7 s) to learn "not 0"
    query = sql.SQL("select exists (select from {} where year = %s)").format(
        sql.Identifier(table.schema, table.name))
    return conn.execute(query, (year,)).fetchone()[0]


def _copy_query(table: Table, schema: pa.Schema, year: int) -> sql.Composed:
    # COPY takes no bind parameters; the year is an int rendered as a quoted literal.
    query = sql.SQL("copy (select {cols} from {table} where year = {year}{order}) "
                    "to stdout (format csv)").format(
        cols=sql.SQL(", ").join(sql.Identifier(f.name) for f in schema),
        table=sql.Identifier(table.schema, table.name),
        year=sql.Literal(year),
        order=(sql.SQL(" order by ") + sql.SQL(", ").join(map(sql.Identifier, table.order_by))
               if table.order_by else sql.SQL("")),
    )
    return query


def _stream_to_parquet(conn: psycopg.Connection, table: Table, year: int, lake: Lake,
                       key: str) -> dict:
    schema = _arrow_schema(conn, table)
    query = _copy_query(table, schema, year)
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


def export_year(year: int, lake: Lake | None = None) -> dict:
    """Write the year's silver.flights and gold.agg_dep_delay_by_date as Parquet to the lake.

    Returns year, silver {uri, rows, bytes, columns}, gold {...}, seconds. Raises UserError
    when the year has not been built.
    """
    check_year(year)
    lake = lake or Lake.from_env()
    started = time.perf_counter()
    with connect(part="transform") as conn:
        # One snapshot for both files, so silver and gold describe the same build.
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        for table in (SILVER, GOLD):
            _arrow_schema(conn, table)
            if not _has_year(conn, table, year):
                raise UserError(
                    f"{table.schema}.{table.name} has no rows for year {year}: load and build it "
                    f"first (`python -m loaders load --year {year}` then `dbt build --project-dir "
                    f"dbt_project --vars '{{year: {year}}}'`)")
        silver = _stream_to_parquet(conn, SILVER, year, lake, silver_key(year))
        gold = _stream_to_parquet(conn, GOLD, year, lake, gold_key(year))
        conn.rollback()
    return {"year": year, "silver": silver, "gold": gold,
            "seconds": round(time.perf_counter() - started, 3)}


def cli_export(args) -> int:
    result = export_year(args.year)
    if args.json:
        print(json.dumps(result))
    else:
        for part in ("silver", "gold"):
            info = result[part]
            print(f"wrote {info['uri']}: {info['rows']:,} rows, {info['bytes']:,} bytes")
        print(f"exported {args.year} in {result['seconds']} s")
    return 0
