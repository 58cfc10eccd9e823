"""Bronze → staging: stream `01_bronze/{year}.csv` from the lake into `staging.flights`.

`python -m loaders load --year Y [--json]`, or `load_year(Y)` from Python (Airflow calls it).

One transaction per load (see loaders/staging_tables.py): the year's old rows stay visible
until the new ones are complete, a crash or a kill leaves them untouched, and two loads of
the same year queue on an advisory lock while other years proceed. Every data line ends in
staging.flights or, with its line number and a reason, in staging.flights_rejected;
staging.load_audit records each attempt (`running` is committed first, so even a killed
load leaves evidence).
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass

import psycopg

from lakehouse import warehouse
from lakehouse.errors import UserError
from lakehouse.lake import Lake, bronze_key
from loaders import staging_tables as st
from loaders.bronze_lines import read_batches
from loaders.read_ahead import read_ahead

# Rejected lines wait here until the flights COPY is done (one COPY at a time per
# connection); beyond this size they go to a temporary file, so memory stays flat even for a
# file that is all rejects.
_REJECT_SPOOL_BYTES = 8 << 20


@dataclass
class LoadResult:
    year: int
    load_id: str
    source_uri: str
    bytes: int
    lines_read: int
    rows_loaded: int
    rows_rejected: int
    seconds: float
    status: str

    @property
    def rows_per_second(self) -> float:
        return round(self.lines_read / self.seconds, 1) if self.seconds > 0 else 0.0

    def as_dict(self) -> dict:
        return {**asdict(self), "rows_per_second": self.rows_per_second}


def _check_year(year: int) -> None:
    if not 1000 <= int(year) <= 9999:
        raise UserError(f"year {year} is not a four-digit year; pass e.g. --year 2018")


def require_bronze(year: int, lake: Lake | None = None) -> str:
    """The URI of the year's bronze object; raises LakeObjectMissing when it is not there."""
    _check_year(year)
    lake = lake or Lake.from_env()
    key = bronze_key(year)
    lake.size(key)
    return lake.uri(key)


def load_year(year: int, lake: Lake | None = None, progress: bool = False) -> LoadResult:
    """Replace staging's rows of `year` with the lake's bronze file, atomically.

    Raises LakeObjectMissing (no such object), BronzeFormatError (empty file, wrong header)
    or a psycopg error; in every case the year's previous rows are kept and the audit row
    says `failed` (unless the process was killed: then it stays `running`, and the next load
    of the year marks it abandoned).
    """
    _check_year(year)
    lake = lake or Lake.from_env()
    key = bronze_key(year)
    size = lake.size(key)
    uri = lake.uri(key)
    load_id = str(uuid.uuid4())
    started = time.perf_counter()

    with warehouse.connect(part="loader", autocommit=True) as conn:
        st.apply_schema(conn)
        st.audit_start(conn, load_id, year, uri, size)
        try:
            counts = _load_in_one_transaction(conn, lake, key, uri, year, load_id, size,
                                              progress, started)
        except BaseException as exc:
            _record_failure(conn, load_id, exc)
            raise
    lines, loaded, rejected, seconds = counts
    return LoadResult(year, load_id, uri, size, lines, loaded, rejected, round(seconds, 3),
                      "succeeded")


def _load_in_one_transaction(conn: psycopg.Connection, lake: Lake, key: str, uri: str,
                             year: int, load_id: str, size: int, progress: bool,
                             started: float) -> tuple[int, int, int, float]:
    """COPY the object into fresh tables and swap them in; (lines, loaded, rejected, seconds)."""
    lines = loaded = 0
    with conn.transaction(), tempfile.SpooledTemporaryFile(
        _REJECT_SPOOL_BYTES, mode="w+", encoding="utf-8"
    ) as spool:
        st.lock_year(conn, year)
        flights = st.create_fresh(conn, st.FLIGHTS, year, load_id)
        rejected_tbl = st.create_fresh(conn, st.REJECTED, year, load_id)
        rejected = 0
        with conn.cursor() as cur, lake.open_read(key) as fh, \
                _progress_bar(size, year, progress) as bar:
            with cur.copy(st.copy_flights_statement(flights)) as copy:
                for batch in read_ahead(read_batches(fh, uri), name="bronze-reader"):
                    if batch.payload:
                        copy.write(batch.payload)
                    for r in batch.rejects:
                        spool.write(json.dumps((r.line_no, r.raw_line, r.reason)))
                        spool.write("\n")
                    lines += batch.lines
                    loaded += batch.rows
                    rejected += len(batch.rejects)
                    bar.update(batch.bytes_read)
            if rejected:
                spool.seek(0)
                with cur.copy(st.copy_rejects_statement(rejected_tbl)) as copy:
                    for text in spool:
                        copy.write_row(json.loads(text))
        st.publish(conn, st.FLIGHTS, flights, year)
        st.publish(conn, st.REJECTED, rejected_tbl, year)
        st.audit_abandoned(conn, year, load_id)
        seconds = time.perf_counter() - started
        st.audit_succeeded(conn, load_id, lines, loaded, rejected, round(seconds, 3))
    return lines, loaded, rejected, time.perf_counter() - started


def _record_failure(conn: psycopg.Connection, load_id: str, exc: BaseException) -> None:
    error = f"{type(exc).__name__}: {exc}".strip()
    try:
        if conn.closed or conn.broken:
            with warehouse.connect(part="loader", autocommit=True) as fresh:
                st.audit_failed(fresh, load_id, error)
        else:
            st.audit_failed(conn, load_id, error)
    except psycopg.Error:
        pass  # the warehouse is unreachable: the row stays `running`; the original error wins


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        pass


def _progress_bar(size: int, year: int, progress: bool):
    if not (progress and sys.stderr.isatty()):
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=size, unit="B", unit_scale=True, unit_divisor=1024,
                desc=f"load {year}", file=sys.stderr, leave=False)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def cli_load(args) -> int:
    """`python -m loaders load --year Y [--json]`"""
    try:
        result = load_year(args.year, progress=True)
    except psycopg.OperationalError as exc:
        raise UserError(f"loading {args.year} failed in the warehouse: {_first_line(exc)}; "
                        "check that PostgreSQL runs and the PG* variables point at it, then "
                        "re-run (the year's previous rows are unchanged)") from exc
    except psycopg.Error as exc:
        raise UserError(f"loading {args.year} failed in the warehouse: {_first_line(exc)}; "
                        "the year's previous rows are unchanged (see staging.load_audit)") from exc
    if args.json:
        print(json.dumps(result.as_dict()))
    else:
        print(f"loaded {result.source_uri} into staging.flights (year {result.year}): "
              f"{result.lines_read} lines = {result.rows_loaded} rows loaded + "
              f"{result.rows_rejected} rejected (see staging.flights_rejected) in "
              f"{result.seconds:.1f} s ({result.rows_per_second:,.0f} lines/s); "
              f"load_id {result.load_id}")
    return 0
