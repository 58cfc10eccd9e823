"""Warehouse I/O of the ml part: DDL, reading gold, the atomic upsert, the run record.

Reads only `gold.agg_dep_delay_by_date`; writes only `ml.*`. Values always travel as query
parameters or through COPY; identifiers through psycopg.sql.Identifier.
"""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import psycopg
import pyarrow as pa
import pyarrow.csv as pacsv
from psycopg import sql

from lakehouse.errors import UserError

SQL_DIR = Path(__file__).with_name("sql")
GOLD_TABLE = ("gold", "agg_dep_delay_by_date")
ANOMALY_TABLE = ("ml", "dep_delay_anomalies")
GOLD_READ_COLUMNS = [
    "id", "origin", "fl_date", "year", "flights", "scheduled_flights", "cancelled_flights",
    "mean_dep_delay", "cancel_rate", "delayed_15_flights",
]
# read when gold has them (a gold built before they existed still scores, with defaults)
GOLD_OPTIONAL_COLUMNS = ["sd_dep_delay"]
# Serialises concurrent DDL from parallel scoring runs (any constant the others do not use).
DDL_LOCK_KEY = 0x6D6C5F646463  # "ml_ddc"


def ensure_schema(conn: psycopg.Connection) -> None:
    """Create the ml schema and tables if they are missing (idempotent, one transaction)."""
    with conn.transaction():
        conn.execute("select pg_advisory_xact_lock(%s)", (DDL_LOCK_KEY,))
        for path in sorted(SQL_DIR.glob("*.sql")):
            conn.execute(path.read_text(encoding="utf-8"))


def table_exists(conn: psycopg.Connection, schema: str, table: str) -> bool:
    row = conn.execute("select to_regclass(%s)", (f"{schema}.{table}",)).fetchone()
    return row[0] is not None


def read_gold(conn: psycopg.Connection, year: int, history_years: int,
              days: tuple | None = None) -> pd.DataFrame:
    """Gold rows of `year` and of up to `history_years` earlier years, via COPY; with `days`
    = (first, end) only those with first <= fl_date < end."""
    if not table_exists(conn, *GOLD_TABLE):
        raise UserError(
            "gold.agg_dep_delay_by_date does not exist: build gold first "
            "(`dbt build --project-dir dbt_project --vars '{year: Y}'`)"
        )
    present = set(conn.execute(
        "select column_name from information_schema.columns "
        "where table_schema = %s and table_name = %s", GOLD_TABLE).fetchall())
    columns = GOLD_READ_COLUMNS + [c for c in GOLD_OPTIONAL_COLUMNS if (c,) in present]
    first, end = days or (None, None)
    query = sql.SQL(
        "copy (select {cols} from {table} where year between %s and %s"
        " and (%s::date is null or fl_date >= %s::date)"
        " and (%s::date is null or fl_date < %s::date)) "
        "to stdout (format csv, header)"
    ).format(
        cols=sql.SQL(", ").join(sql.Identifier(c) for c in columns),
        table=sql.Identifier(*GOLD_TABLE),
    )
    buf = io.BytesIO()
    with conn.cursor() as cur, cur.copy(
            query, (year - history_years, year, first, first, end, end)) as copy:
        for block in copy:
            buf.write(block)
    buf.seek(0)
    frame = pd.read_csv(buf, dtype={"id": str, "origin": str})
    frame["fl_date"] = pd.to_datetime(frame["fl_date"]).dt.date
    return frame


def anomaly_columns(conn: psycopg.Connection) -> dict[str, str]:
    """Column name -> data type of ml.dep_delay_anomalies, in table order."""
    rows = conn.execute(
        "select column_name, data_type from information_schema.columns "
        "where table_schema = %s and table_name = %s order by ordinal_position",
        ANOMALY_TABLE,
    ).fetchall()
    return dict(rows)


INTEGER_TYPES = ("integer", "bigint", "smallint")


def _copy_csv(rows: pd.DataFrame, types: dict[str, str]) -> bytes:
    """`rows` as COPY CSV for columns of those PostgreSQL types, written by Arrow in C++.

    A Python loop over ~120 k rows x 33 values took 3-4 s of each scoring run; this takes
    ~0.1 s. NaN/NaT/None become NULL; integer columns that pandas holds as floats (because of
    NaN) are cast back, and a fractional value there raises instead of being truncated.
    """
    arrays = []
    for name in rows.columns:
        values = rows[name]
        if types[name] == "uuid":
            values = values.map(lambda v: None if v is None or v is pd.NA else str(v))
        array = pa.array(values, from_pandas=True)
        if types[name] in INTEGER_TYPES and not pa.types.is_integer(array.type):
            array = array.cast(pa.int64())
        arrays.append(array)
    sink = pa.BufferOutputStream()
    pacsv.write_csv(pa.Table.from_arrays(arrays, names=list(rows.columns)), sink,
                    pacsv.WriteOptions(include_header=False))
    return sink.getvalue().to_pybytes()


DELETE_LEFT_GOLD = sql.SQL(
    "delete from {target} a where a.year = %s "
    "and not exists (select 1 from scored s where s.id = a.id)"
)
# The same for one month of the year: the other months' rows are not this run's to remove.
DELETE_LEFT_GOLD_MONTH = sql.SQL(
    "delete from {target} a where a.year = %s "
    "and a.fl_date >= make_date(%s, %s, 1) and a.fl_date < make_date(%s, %s, 1) + interval '1 month' "
    "and not exists (select 1 from scored s where s.id = a.id)"
)


def upsert_year(conn: psycopg.Connection, year: int, rows: pd.DataFrame, run: dict,
                month: int | None = None) -> None:
    """Replace the year's scored rows atomically: COPY to a temp table, the removal of this
    year's rows that no longer exist in gold, then one `INSERT ... ON CONFLICT (id) DO
    UPDATE`, and the run record - all in one transaction. Other years are untouched. With
    `month`, `rows` are that month's and only that month's rows are replaced.
    """
    from ml.detectors import DETECTORS, MEMBERS, flag_column, strength_column

    types = anomaly_columns(conn)
    columns = [c for c in types if c in rows.columns]
    ident = [sql.Identifier(c) for c in columns]
    # the registry's flags and strengths travel as columns of the temp table and become the
    # two maps in the insert (Postgres builds them: no per-row JSON in Python)
    maps = {"detector_flags": {n: flag_column(n) for n in DETECTORS},
            "detector_strengths": {n: strength_column(n) for n in MEMBERS}}
    staged = {**{c: "boolean" for c in maps["detector_flags"].values()},
              **{c: "double precision" for c in maps["detector_strengths"].values()}}
    staged = {c: t for c, t in staged.items() if c not in types}
    missing = [c for c in [*maps["detector_flags"].values(), *maps["detector_strengths"].values()]
               if c not in rows.columns]
    if missing:
        raise ValueError(f"the scored rows lack the registry's columns {missing}")
    copied = columns + list(staged)
    target = sql.Identifier(*ANOMALY_TABLE)
    with conn.transaction():
        conn.execute(
            sql.SQL("create temp table scored (like {} including defaults) on commit drop")
            .format(target)
        )
        for column, data_type in staged.items():
            conn.execute(sql.SQL("alter table scored add column {} {}").format(
                sql.Identifier(column), sql.SQL(data_type)))
        with conn.cursor() as cur, cur.copy(
            sql.SQL("copy scored ({}) from stdin (format csv)").format(
                sql.SQL(", ").join(map(sql.Identifier, copied)))
        ) as copy:
            copy.write(_copy_csv(rows[copied], {**types, **staged}))
        # The year's rows that left gold go first, while the table holds only the previous
        # run's rows of the year. After the insert, the planner's statistics would still say
        # "about no rows of this year" for a year scored for the first time, and it chose a
        # nested-loop anti join of ~117 k new rows against a sequential scan of the temp table:
        # 40 minutes for the second year of a warehouse. Hash or merge joins only, on a temp
        # table with statistics.
        conn.execute("analyze scored")
        conn.execute("set local enable_nestloop = off")
        if month is None:
            conn.execute(DELETE_LEFT_GOLD.format(target=target), (year,))
        else:
            conn.execute(DELETE_LEFT_GOLD_MONTH.format(target=target),
                         (year, year, month, year, month))
        ident += [sql.Identifier(name) for name in maps]
        values = [sql.Identifier(c) for c in columns] + [
            sql.SQL("jsonb_build_object({})").format(sql.SQL(", ").join(
                sql.SQL("{}, {}").format(sql.Literal(name), sql.Identifier(column))
                for name, column in pairs.items()))
            for pairs in maps.values()]
        updates = sql.SQL(", ").join(
            sql.SQL("{0} = excluded.{0}").format(i) for i in ident if i != sql.Identifier("id")
        )
        conn.execute(
            sql.SQL(
                "insert into {target} ({cols}) select {values} from scored "
                "on conflict (id) do update set {updates}"
            ).format(target=target, cols=sql.SQL(", ").join(ident),
                     values=sql.SQL(", ").join(values), updates=updates)
        )
        record_run(conn, run)
        record_detectors(conn, run)


def record_run(conn: psycopg.Connection, run: dict) -> None:
    conn.execute(
        "insert into ml.model_runs (run_id, year, month, model_version, params, airports,"
        " airport_days, anomalies, failures, status, started_at, finished_at, seconds,"
        " detector_seconds)"
        " values (%(run_id)s, %(year)s, %(month)s, %(model_version)s, %(params)s, %(airports)s,"
        " %(airport_days)s, %(anomalies)s, %(failures)s, %(status)s, %(started_at)s,"
        " %(finished_at)s, %(seconds)s, %(detector_seconds)s)",
        {"month": None, **run, "params": json.dumps(run["params"]),
         "failures": json.dumps(run["failures"]),
         "detector_seconds": json.dumps(run.get("detector_seconds", {}))},
    )


def record_detectors(conn: psycopg.Connection, run: dict) -> None:
    """Upsert ml.detectors from the registry: one row per registered detector, with the
    values of the parameters it reads in this run; detectors no longer registered keep their
    row (old days' maps still name them) with is_registered = false."""
    from ml.detectors import DETECTORS

    rows = [(d.name, d.label or d.name, d.description, d.member, d.group, json.dumps(d.needs),
             json.dumps({p: run["params"][p] for p in d.reads}), run["model_version"],
             run["run_id"], run["started_at"]) for d in DETECTORS.values()]
    with conn.cursor() as cur:
        cur.executemany(
            "insert into ml.detectors (name, label, description, is_member, evidence_group,"
            " needs, params, is_registered, model_version, run_id, updated_at)"
            " values (%s, %s, %s, %s, %s, %s, %s, true, %s, %s, %s)"
            " on conflict (name) do update set label = excluded.label,"
            " description = excluded.description, is_member = excluded.is_member,"
            " evidence_group = excluded.evidence_group, needs = excluded.needs,"
            " params = excluded.params, is_registered = true,"
            " model_version = excluded.model_version, run_id = excluded.run_id,"
            " updated_at = excluded.updated_at", rows)
        cur.execute("update ml.detectors set is_registered = false"
                    " where is_registered and not (name = any(%s))", (list(DETECTORS),))


def read_anomalies(conn: psycopg.Connection, year: int, origin: str | None = None) -> pd.DataFrame:
    query = sql.SQL("select * from {} where year = %s").format(sql.Identifier(*ANOMALY_TABLE))
    args: list = [year]
    if origin is not None:
        query += sql.SQL(" and origin = %s")
        args.append(origin)
    query += sql.SQL(" order by origin, fl_date")
    with conn.cursor() as cur:
        cur.execute(query, args)
        names = [d.name for d in cur.description]
        return pd.DataFrame(cur.fetchall(), columns=names)


def utcnow() -> datetime:

    return datetime.now(UTC)
