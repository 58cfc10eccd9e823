"""Bronze → staging: stream `01_bronze/{year}.csv` from the lake into `staging.flights`.

`python -m loaders load --year Y [--json]`, or `load_year(Y)` from Python (Airflow calls it).

One transaction per load (see loaders/staging_tables.py): the year's old rows stay visible
until the new ones are complete, a crash or a kill leaves them untouched, and two loads of
the same year queue on an advisory lock while other years proceed. Every data line ends in
staging.flights or, with its line number and a reason, in staging.flights_rejected;
staging.load_audit records each attempt (`running` is committed first, so even a killed
load leaves evidence).

A large local file is loaded as PIECES pieces (split at line breaks) by parallel COPY
streams: the server parses and stores a COPY on one core, so one stream leaves the others
idle (7.2 M lines: 10.5 s with one stream). An S3 object streams as one piece: reading it at
an offset would mean downloading its first part twice to number the lines.

`python -m loaders load --year Y --month M`, or `load_month(Y, M)`: one BTS month,
`01_bronze/bts/{Y}/{MM}.csv`, replaces only that month's staging rows (the year's other
months stay as they are), mapped onto the same staging columns (loaders/bts_lines.py).
"""

from __future__ import annotations

import contextlib
import json
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import BinaryIO

import psycopg

from lakehouse import warehouse
from lakehouse.errors import UserError
from lakehouse.lake import Lake, LakeObjectMissing, bronze_key, bts_bronze_key
from lakehouse.years import check_month, check_year
from loaders import bts_format, bts_lines
from loaders import staging_tables as st
from loaders.bronze_lines import read_batches
from loaders.read_ahead import read_ahead

# Rejected lines wait here until the flights COPY is done (one COPY at a time per
# connection); beyond this size they go to a temporary file, so memory stays flat even for a
# file that is all rejects.
_REJECT_SPOOL_BYTES = 8 << 20

# Parallel COPY streams for a large local file, and the size from which a second stream (its
# own connection and table) pays off.
PIECES = 2
PIECES_MIN_BYTES = 64 << 20
_COUNT_CHUNK = 8 << 20


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
    month: int | None = None

    @property
    def rows_per_second(self) -> float:
        return round(self.lines_read / self.seconds, 1) if self.seconds > 0 else 0.0

    def as_dict(self) -> dict:
        return {**asdict(self), "rows_per_second": self.rows_per_second}


def require_bronze(year: int, lake: Lake | None = None) -> str:
    """The URI of the year's bronze object; raises LakeObjectMissing when it is not there."""
    check_year(year)
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
    check_year(year)
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
            _drop_unpublished(conn, year)
            raise
    lines, loaded, rejected, seconds = counts
    return LoadResult(year, load_id, uri, size, lines, loaded, rejected, round(seconds, 3),
                      "succeeded")


@dataclass(frozen=True)
class Piece:
    """Lines first_line..end_line-1 of the file, at bytes start..end (None: to the end)."""

    number: int
    start: int
    end: int | None
    first_line: int
    end_line: int | None


def plan_pieces(lake: Lake, key: str, size: int, pieces: int) -> list[Piece]:
    """Where to cut the file for parallel COPY streams: at line breaks near equal byte offsets.

    The first piece starts with the header (line 0); a later piece's first line number is the
    count of line breaks before it, found by reading the file up to its last cut (~0.3 s for
    440 MB from the page cache)."""
    path = lake.local_path(key)
    if path is None or pieces < 2 or size < PIECES_MIN_BYTES:
        return [Piece(1, 0, None, 1, None)]
    cuts: list[int] = []
    with open(path, "rb") as fh:
        for k in range(1, pieces):
            fh.seek(size * k // pieces)
            while (line := fh.readline(_COUNT_CHUNK)) and not line.endswith(b"\n"):
                pass  # a line longer than the chunk: keep reading to its end
            if fh.tell() >= size or (cuts and fh.tell() <= cuts[-1]):
                break
            cuts.append(fh.tell())
        if not cuts:
            return [Piece(1, 0, None, 1, None)]
        fh.seek(0)
        line_at = []  # the number of the line starting at each cut (the header is line 0)
        newlines = pos = 0
        for cut in cuts:
            while pos < cut:
                chunk = fh.read(min(_COUNT_CHUNK, cut - pos))
                newlines += chunk.count(b"\n")
                pos += len(chunk)
            line_at.append(newlines)
    bounds = [0, *cuts]
    firsts = [1, *line_at]
    return [Piece(i + 1, bounds[i], bounds[i + 1] if i + 1 < len(bounds) else None,
                  firsts[i], firsts[i + 1] if i + 1 < len(firsts) else None)
            for i in range(len(bounds))]


@dataclass
class _PieceResult:
    name: str
    lines: int = 0
    loaded: int = 0
    rejected: int = 0


class _Range:
    """A binary reader that ends at byte `end` of `fh`."""

    def __init__(self, fh: BinaryIO, end: int | None):
        self._fh, self._left = fh, None if end is None else end - fh.tell()

    def read(self, n: int = -1) -> bytes:
        if self._left is None:
            return self._fh.read(n)
        n = self._left if n < 0 else min(n, self._left)
        data = self._fh.read(n) if n > 0 else b""
        self._left -= len(data)
        return data


@contextlib.contextmanager
def _open_piece(lake: Lake, key: str, piece: Piece):
    if piece.start == 0 and piece.end is None:
        with lake.open_read(key) as fh:
            yield fh
        return
    with open(lake.local_path(key), "rb") as fh:
        fh.seek(piece.start)
        yield _Range(fh, piece.end)


class _Stopped(Exception):
    """Another piece of the load failed: this one stops and rolls back."""


def _copy_piece(conn: psycopg.Connection, lake: Lake, key: str, uri: str, year: int,
                load_id: str, piece: Piece, bar, stop: threading.Event, spool) -> _PieceResult:
    """COPY one piece of the file into a fresh table, in `conn`'s open transaction; its
    rejected lines go to `spool`, one JSON (line_no, raw_line, reason) per line."""
    result = _PieceResult(st.create_fresh(conn, st.FLIGHTS, year, load_id, piece.number,
                                          (piece.first_line, piece.end_line)))
    first_line_no = None if piece.start == 0 else piece.first_line  # the first piece has the header
    with _open_piece(lake, key, piece) as fh, conn.cursor() as cur, \
            cur.copy(st.copy_flights_statement(result.name)) as copy:
        for batch in read_ahead(read_batches(fh, uri, first_line_no=first_line_no),
                                name=f"bronze-reader-{piece.number}"):
            if stop.is_set():
                raise _Stopped
            if batch.payload:
                copy.write(batch.payload)
            for r in batch.rejects:
                spool.write(json.dumps((r.line_no, r.raw_line, r.reason)))
                spool.write("\n")
            result.lines += batch.lines
            result.loaded += batch.rows
            result.rejected += len(batch.rejects)
            bar.update(batch.bytes_read)
    return result


def _copy_piece_committed(lake: Lake, key: str, uri: str, year: int, load_id: str,
                          piece: Piece, bar, stop: threading.Event, spool) -> _PieceResult:
    """_copy_piece on a connection of its own, committed (as a table outside staging.flights)
    for the load's transaction to attach."""
    try:
        with warehouse.connect(part="loader") as conn, conn.transaction():
            result = _copy_piece(conn, lake, key, uri, year, load_id, piece, bar, stop, spool)
            st.drop_defaults(conn, result.name)
    except BaseException:
        stop.set()  # the other pieces need not finish: the load fails
        raise
    return result


def _load_in_one_transaction(conn: psycopg.Connection, lake: Lake, key: str, uri: str,
                             year: int, load_id: str, size: int, progress: bool,
                             started: float) -> tuple[int, int, int, float]:
    """COPY the object into fresh tables and swap them in; (lines, loaded, rejected, seconds)."""
    with conn.transaction(), contextlib.ExitStack() as stack:
        st.lock_year(conn, year)
        st.drop_unpublished(conn, year)
        pieces = plan_pieces(lake, key, size, min(PIECES, st.MAX_PIECES))
        bar = stack.enter_context(_progress_bar(size, year, progress))
        stop = threading.Event()
        spools = [stack.enter_context(tempfile.SpooledTemporaryFile(
            _REJECT_SPOOL_BYTES, mode="w+", encoding="utf-8")) for _ in pieces]
        pool = stack.enter_context(ThreadPoolExecutor(max(1, len(pieces) - 1),
                                                      thread_name_prefix="copy-piece"))
        others = [pool.submit(_copy_piece_committed, lake, key, uri, year, load_id, piece, bar,
                              stop, spool)
                  for piece, spool in zip(pieces[1:], spools[1:])]
        try:
            first = _copy_piece(conn, lake, key, uri, year, load_id, pieces[0], bar, stop,
                                spools[0])
        except _Stopped:
            for f in others:
                f.result()  # the piece that failed raises its own error here
            raise
        except BaseException:
            stop.set()  # the other pieces stop at their next block and roll back
            raise
        results = [first, *(f.result() for f in others)]
        lines = sum(r.lines for r in results)
        loaded = sum(r.loaded for r in results)
        rejected = sum(r.rejected for r in results)
        rejected_tbl = st.create_fresh(conn, st.REJECTED, year, load_id)
        if rejected:
            with conn.cursor() as cur, cur.copy(st.copy_rejects_statement(rejected_tbl)) as copy:
                for spool in spools:
                    spool.seek(0)
                    for text in spool:
                        copy.write_row(json.loads(text))
        st.drop_defaults(conn, results[0].name)
        flights = st.assemble_year(conn, year, [(r.name, p.first_line, p.end_line)
                                                for r, p in zip(results, pieces)])
        st.publish(conn, st.FLIGHTS, flights, year, pieces=tuple(r.name for r in results))
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


def _drop_unpublished(conn: psycopg.Connection, year: int) -> None:
    """Best effort after a failed load: drop the pieces it committed but never attached. Only
    with the year's lock free at once: a load already waiting for it drops them itself."""
    try:
        if conn.closed or conn.broken:
            return
        with conn.transaction():
            if st.try_lock_year(conn, year):
                st.drop_unpublished(conn, year)
    except psycopg.Error:
        pass  # the next load of the year drops them


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


def require_bts_month(year: int, month: int, lake: Lake | None = None) -> str:
    """The URI of the BTS month's bronze object; a UserError saying where to get it if absent."""
    check_year(year)
    check_month(month)
    lake = lake or Lake.from_env()
    key = bts_bronze_key(year, month)
    try:
        lake.size(key)
    except LakeObjectMissing:
        raise UserError(
            f"{lake.uri(key)} is not in the lake: download "
            f"On_Time_Reporting_Carrier_On_Time_Performance_1987_present_{year}_{month}.zip "
            f"from https://transtats.bts.gov/PREZIP/ (or the \"Reporting Carrier On-Time "
            f"Performance (1987-present)\" table on transtats.bts.gov, all fields) and run "
            f"`python -m loaders ingest` on it") from None
    return lake.uri(key)


def load_month(year: int, month: int, lake: Lake | None = None, progress: bool = False,
               replace_year: bool = False) -> LoadResult:
    """Replace staging's rows of one BTS month with the lake's month file, atomically; the
    year's other months are left as they are. A year loaded from a yearly file is refused
    unless `replace_year` (UserError)."""
    lake = lake or Lake.from_env()
    uri = require_bts_month(year, month, lake)
    key = bts_bronze_key(year, month)
    size = lake.size(key)
    load_id = str(uuid.uuid4())
    started = time.perf_counter()
    with warehouse.connect(part="loader", autocommit=True) as conn:
        st.apply_schema(conn)
        st.audit_start(conn, load_id, year, uri, size, month=month)
        try:
            with conn.transaction(), contextlib.ExitStack() as stack:
                st.lock_year(conn, year)
                st.monthly_year(conn, year, replace_year)
                lines = bts_format.month_lines(month)
                fresh = st.create_fresh(conn, st.FLIGHTS, year, load_id, lines=lines, month=month)
                bar = stack.enter_context(_progress_bar(size, year, progress))
                spool = stack.enter_context(tempfile.SpooledTemporaryFile(
                    _REJECT_SPOOL_BYTES, mode="w+", encoding="utf-8"))
                n_lines = loaded = rejected = 0
                with lake.open_read(key) as fh, conn.cursor() as cur, \
                        cur.copy(st.copy_bts_statement(fresh)) as copy:
                    for batch in read_ahead(bts_lines.read_batches(fh, uri, lines[0]),
                                            name="bts-reader"):
                        if batch.payload:
                            copy.write(batch.payload)
                        for r in batch.rejects:
                            spool.write(json.dumps((r.line_no, r.raw_line, r.reason)))
                            spool.write("\n")
                        n_lines += batch.lines
                        loaded += batch.rows
                        rejected += len(batch.rejects)
                        bar.update(batch.bytes_read)
                rejected_tbl = st.create_fresh(conn, st.REJECTED, year, load_id, lines=lines,
                                               month=month)
                if rejected:
                    spool.seek(0)
                    with conn.cursor() as cur, \
                            cur.copy(st.copy_rejects_statement(rejected_tbl)) as copy:
                        for text in spool:
                            copy.write_row(json.loads(text))
                st.publish_month(conn, st.FLIGHTS, fresh, year, month)
                st.publish_month(conn, st.REJECTED, rejected_tbl, year, month)
                st.audit_abandoned(conn, year, load_id)
                seconds = time.perf_counter() - started
                st.audit_succeeded(conn, load_id, n_lines, loaded, rejected, round(seconds, 3))
        except BaseException as exc:
            _record_failure(conn, load_id, exc)
            raise
    return LoadResult(year, load_id, uri, size, n_lines, loaded, rejected,
                      round(time.perf_counter() - started, 3), "succeeded", month)


def cli_load(args) -> int:
    """`python -m loaders load --year Y [--month M] [--json]`"""
    try:
        if args.month is not None:
            result = load_month(args.year, args.month, progress=True,
                                replace_year=args.replace_year)
        else:
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
        what = (f"year {result.year}" if result.month is None
                else f"{result.year}-{result.month:02d}")
        print(f"loaded {result.source_uri} into staging.flights ({what}): "
              f"{result.lines_read} lines = {result.rows_loaded} rows loaded + "
              f"{result.rows_rejected} rejected (see staging.flights_rejected) in "
              f"{result.seconds:.1f} s ({result.rows_per_second:,.0f} lines/s); "
              f"load_id {result.load_id}")
    return 0
