"""The bronze → staging loader against a real PostgreSQL (and moto's S3 server over HTTP)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from lakehouse.lake import Lake, LakeObjectMissing
from loaders import bronze_lines, load
from loaders import staging_tables as st
from loaders.bronze_format import HEADER, BronzeFormatError
from loaders.bronze_lines import read_batches
from loaders.load import load_year, require_bronze

REPO = Path(__file__).resolve().parents[1]
HEADER_LINE = ",".join(HEADER).encode()

GOOD = b"2018-01-01,AA,1100,JFK,LAX,1100,1058.0,-2.0,14.0,1112.0,1332.0,6.0,1345,1338.0,-7.0,0.0,,0.0,345.0,340.0,320.0,2475.0,,,,,,"
GOOD2 = b"2018-01-02,DL,42,ATL,ORD,0730,0815.0,45.0,20.0,0835.0,0930.0,5.0,0845,0935.0,50.0,0.0,,0.0,135.0,140.0,115.0,606.0,10.0,0.0,5.0,0.0,35.0,"
CANCELLED = b"2018-01-03,UA,7,SFO,SEA,2400,,,,,,,0130,,,1.0,B,0.0,120.0,,,679.0,,,,,,"


def fields(line: bytes) -> list[str | None]:
    """What staging should hold for a good line: raw text, empty field = NULL."""
    return [f or None for f in line.decode("utf-8").split(",")]


# Every kind of damage the design names, one per line; comments give the 1-based data line.
DAMAGED_LINES = [
    GOOD + b"\r\n",                                       # 1 CRLF ending
    GOOD2 + b"\n",                                        # 2 LF ending, mixed in
    GOOD2[:41] + b"\r\n",                                 # 3 truncated
    CANCELLED + b",surplus\n",                            # 4 too many fields
    GOOD + b"\r\n",                                       # 5 exact duplicate of line 1
    GOOD.replace(b",JFK,", b",J\xffK,") + b"\n",          # 6 undecodable byte in ORIGIN
    GOOD.replace(b"2018-01-01", b"2018-02-30") + b"\n",   # 7 impossible date: dbt's concern
    GOOD.replace(b",-2.0,", b",N/A,").replace(b",320.0,", b",#VALUE!,") + b"\n",  # 8 tokens
    b"\n",                                                # 9 empty line
    GOOD.replace(b",AA,", b',"A\\A\tB",') + b"\n",       # 10 quote, backslash, tab: verbatim
    GOOD.replace(b",LAX,", b",L\x00X,") + b"\n",          # 11 NUL byte in DEST
    GOOD.replace(b",AA,", b",A\rA,") + b"\n",             # 12 stray CR inside a field
    CANCELLED,                                            # 13 last line, no line break
]
DAMAGED = b"\xef\xbb\xbf" + HEADER_LINE + b"\r\n" + b"".join(DAMAGED_LINES)

EXPECTED_REJECTS = [
    (3, GOOD2[:41].decode(), "8 fields, expected 28"),
    (4, (CANCELLED + b",surplus").decode(), "29 fields, expected 28"),
    (6, GOOD.replace(b",JFK,", b",J\\xffK,").decode(),
     "not valid UTF-8: byte 0xFF at byte 21, field 4 (ORIGIN)"),
    (9, "", "empty line, expected 28 comma-separated fields"),
    (11, GOOD.replace(b",LAX,", b",L\\x00X,").decode(),
     "NUL byte at byte 25, field 5 (DEST) (text cannot hold NUL bytes)"),
]
EXPECTED_LOADED = {
    1: fields(GOOD),
    2: fields(GOOD2),
    5: fields(GOOD),
    7: fields(GOOD.replace(b"2018-01-01", b"2018-02-30")),
    8: fields(GOOD.replace(b",-2.0,", b",N/A,").replace(b",320.0,", b",#VALUE!,")),
    10: fields(GOOD.replace(b",AA,", b',"A\\A\tB",')),
    12: fields(GOOD.replace(b",AA,", b",A\rA,")),
    13: fields(CANCELLED),
}


def put_bronze(year: int, data: bytes) -> None:
    with Lake.from_env().open_write(f"01_bronze/{year}.csv") as fh:
        fh.write(data)


def staged(conn, year: int) -> tuple[list, list]:
    rows = conn.execute(
        "select line_no, fl_date, op_carrier, op_carrier_fl_num, origin, dest, crs_dep_time, "
        "dep_time, dep_delay, taxi_out, wheels_off, wheels_on, taxi_in, crs_arr_time, arr_time, "
        "arr_delay, cancelled, cancellation_code, diverted, crs_elapsed_time, "
        "actual_elapsed_time, air_time, distance, carrier_delay, weather_delay, nas_delay, "
        "security_delay, late_aircraft_delay, unnamed_27 "
        "from staging.flights where year = %s order by line_no", (year,)).fetchall()
    rejects = conn.execute(
        "select line_no, raw_line, reason from staging.flights_rejected where year = %s "
        "order by line_no", (year,)).fetchall()
    return rows, rejects


def run_cli(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "loaders", *args], check=False, cwd=REPO,
                          capture_output=True, text=True, timeout=600, **kw)


def staging_tables(conn) -> list[str]:
    return [r[0] for r in conn.execute(
        "select c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace "
        "where n.nspname = 'staging' and c.relkind in ('r', 'p') order by 1").fetchall()]


def big_file(lines: int) -> bytes:
    body = (GOOD + b"\n") * lines
    return HEADER_LINE + b"\n" + body


# ---------------------------------------------------------------------------- pure parsing


@pytest.mark.parametrize("block_size", [1, 7, 64, 300, 1 << 22])
def test_read_batches_same_result_for_every_block_size(block_size):
    import io

    batches = list(read_batches(io.BytesIO(DAMAGED), "mem.csv", block_size=block_size))
    rejects = [(r.line_no, r.raw_line, r.reason) for b in batches for r in b.rejects]
    assert rejects == EXPECTED_REJECTS
    assert sum(b.rows for b in batches) == len(EXPECTED_LOADED)
    assert sum(b.lines for b in batches) == 13
    assert sum(b.bytes_read for b in batches) == len(DAMAGED)
    payload = b"".join(b.payload for b in batches)
    assert payload.splitlines()[0] == b"1," + GOOD
    # COPY text escapes: the backslash doubled, the stray CR as \r.
    assert b'10,2018-01-01,"A\\\\A\tB",' in payload
    assert b"12,2018-01-01,A\\rA," in payload


def test_line_without_break_beyond_the_limit_is_rejected_not_buffered(monkeypatch):
    import io

    monkeypatch.setattr(bronze_lines, "MAX_LINE_BYTES", 1000)
    data = HEADER_LINE + b"\n" + GOOD + b"\n" + b"x" * 5000 + b"\n" + GOOD2 + b"\n"
    batches = list(read_batches(io.BytesIO(data), "mem.csv", block_size=256))
    rejects = [r for b in batches for r in b.rejects]
    assert [(r.line_no, len(r.raw_line)) for r in rejects] == [(2, 1000)]
    assert "no line break within 1000 bytes" in rejects[0].reason
    assert [int(p.split(b",")[0]) for b in batches for p in b.payload.splitlines()] == [1, 3]


def test_header_errors_name_the_columns():
    import io

    bad = HEADER_LINE.replace(b"DEP_DELAY,", b"").replace(b"DISTANCE", b"DIST")
    with pytest.raises(BronzeFormatError) as err:
        list(read_batches(io.BytesIO(bad + b"\n" + GOOD + b"\n"), "lake/01_bronze/2018.csv"))
    msg = str(err.value)
    assert "lake/01_bronze/2018.csv" in msg
    assert "missing columns DEP_DELAY, DISTANCE" in msg and "unknown columns 'DIST'" in msg
    assert "\n" not in msg
    with pytest.raises(BronzeFormatError, match="is empty"):
        list(read_batches(io.BytesIO(b""), "e.csv"))


# ---------------------------------------------------------------------------- with PostgreSQL


def test_damaged_file_every_line_accounted(pg_conn, lake):
    put_bronze(2018, DAMAGED)
    result = load_year(2018)
    assert (result.lines_read, result.rows_loaded, result.rows_rejected) == (13, 8, 5)
    assert result.status == "succeeded" and result.bytes == len(DAMAGED)
    assert result.source_uri == str(lake / "01_bronze" / "2018.csv")
    rows, rejects = staged(pg_conn, 2018)
    assert {r[0]: list(r[1:]) for r in rows} == EXPECTED_LOADED
    assert [tuple(r) for r in rejects] == EXPECTED_REJECTS
    audit = pg_conn.execute(
        "select load_id::text, status, lines_read, rows_loaded, rows_rejected, bytes, source_uri "
        "from staging.load_audit").fetchall()
    assert audit == [(result.load_id, "succeeded", 13, 8, 5, len(DAMAGED), result.source_uri)]
    ids = pg_conn.execute("select distinct load_id::text, year from staging.flights").fetchall()
    assert ids == [(result.load_id, 2018)]


@pytest.mark.parametrize("pieces", [2, 3, 5])
def test_a_file_loaded_in_parallel_pieces_gives_the_same_rows(pg_conn, lake, monkeypatch, pieces):
    # Cut even this small file into pieces: the cuts land next to CRLF endings, rejected
    # lines and the last line without a break, and every line keeps its number.
    monkeypatch.setattr(load, "PIECES", pieces)
    monkeypatch.setattr(load, "PIECES_MIN_BYTES", 0)
    put_bronze(2018, DAMAGED)
    plan = load.plan_pieces(Lake.from_env(), "01_bronze/2018.csv", len(DAMAGED), pieces)
    assert len(plan) == pieces and [p.start for p in plan] == sorted({p.start for p in plan})
    result = load_year(2018)
    assert (result.lines_read, result.rows_loaded, result.rows_rejected) == (13, 8, 5)
    rows, rejects = staged(pg_conn, 2018)
    assert {r[0]: list(r[1:]) for r in rows} == EXPECTED_LOADED
    assert [tuple(r) for r in rejects] == EXPECTED_REJECTS
    assert staging_tables(pg_conn) == [
        "flights", "flights_2018", *(f"flights_2018_{k}" for k in range(1, pieces + 1)),
        "flights_rejected", "flights_rejected_2018", "load_audit"]
    # each piece holds exactly the lines its partition bounds say
    for k, piece in enumerate(plan, 1):
        first, last = pg_conn.execute(
            f"select min(line_no), max(line_no) from staging.flights_2018_{k}").fetchone()
        assert first is None or (first >= piece.first_line
                                 and (piece.end_line is None or last < piece.end_line))


def _loaded_year_then_three_pieces(pg_conn, monkeypatch):
    """A good 2018 loaded (returns its result and the staging tables), then loads in 3 pieces."""
    put_bronze(2018, DAMAGED)
    good = load_year(2018)
    monkeypatch.setattr(load, "PIECES", 3)
    monkeypatch.setattr(load, "PIECES_MIN_BYTES", 0)
    return good, staging_tables(pg_conn)


def _assert_only_year(pg_conn, good, tables) -> None:
    assert staging_tables(pg_conn) == tables
    assert pg_conn.execute("select distinct load_id::text from staging.flights").fetchall() == [
        (good.load_id,)]


def test_a_failed_parallel_load_keeps_the_year_and_leaves_no_piece(pg_conn, lake, monkeypatch):
    good, before = _loaded_year_then_three_pieces(pg_conn, monkeypatch)
    # the first piece fails on the header, the others may well have committed by then
    put_bronze(2018, HEADER_LINE.replace(b"ORIGIN", b"ORIGIN_AIRPORT") + b"\n"
               + (GOOD + b"\n") * 2_000)
    with pytest.raises(BronzeFormatError):
        load_year(2018)
    _assert_only_year(pg_conn, good, before)


def test_a_failing_later_piece_fails_the_load_with_its_own_error(pg_conn, lake, monkeypatch):
    good, before = _loaded_year_then_three_pieces(pg_conn, monkeypatch)
    copy_statement = st.copy_flights_statement
    monkeypatch.setattr(st, "copy_flights_statement", lambda name: (
        sql.SQL("copy staging.no_such_table from stdin") if name.endswith("_2_loading")
        else copy_statement(name)))
    put_bronze(2018, HEADER_LINE + b"\n" + (GOOD + b"\n") * 5_000)
    with pytest.raises(psycopg.errors.UndefinedTable):
        load_year(2018)
    _assert_only_year(pg_conn, good, before)
    assert pg_conn.execute("select status, error from staging.load_audit where load_id <> %s",
                           (good.load_id,)).fetchone()[0] == "failed"


def test_header_only_file_loads_zero_rows(pg_conn, lake):
    put_bronze(2018, HEADER_LINE + b"\n")
    result = load_year(2018)
    assert (result.lines_read, result.rows_loaded, result.rows_rejected) == (0, 0, 0)


def test_reload_is_idempotent_one_partition_two_audit_rows(pg_conn, lake):
    put_bronze(2018, DAMAGED)
    first = load_year(2018)
    before = staged(pg_conn, 2018)
    second = load_year(2018)
    assert second.load_id != first.load_id
    assert staged(pg_conn, 2018) == before
    assert pg_conn.execute("select count(*) from staging.flights where load_id <> %s",
                           (second.load_id,)).fetchone() == (0,)
    assert staging_tables(pg_conn) == ["flights", "flights_2018", "flights_2018_1",
                                       "flights_rejected", "flights_rejected_2018", "load_audit"]
    assert pg_conn.execute(
        "select status, count(*) from staging.load_audit group by 1").fetchall() == [("succeeded", 2)]


def test_other_years_are_untouched(pg_conn, lake):
    put_bronze(2017, HEADER_LINE + b"\n" + GOOD2 + b"\n")
    put_bronze(2018, DAMAGED)
    y17 = load_year(2017)
    load_year(2018)
    load_year(2018)
    assert pg_conn.execute("select load_id::text, count(*) from staging.flights "
                           "where year = 2017 group by 1").fetchall() == [(y17.load_id, 1)]


def test_bad_header_fails_cleanly_and_keeps_previous_year(pg_conn, lake):
    put_bronze(2018, DAMAGED)
    good = load_year(2018)
    put_bronze(2018, HEADER_LINE.replace(b"ORIGIN", b"ORIGIN_AIRPORT") + b"\n" + GOOD + b"\n")
    proc = run_cli("load", "--year", "2018")
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert "missing columns ORIGIN; unknown columns 'ORIGIN_AIRPORT'" in proc.stderr
    assert "01_bronze/2018.csv" in proc.stderr
    assert pg_conn.execute("select distinct load_id::text from staging.flights").fetchall() == [
        (good.load_id,)]
    status = pg_conn.execute("select status, error from staging.load_audit "
                             "where load_id <> %s", (good.load_id,)).fetchall()
    assert len(status) == 1 and status[0][0] == "failed" and "ORIGIN_AIRPORT" in status[0][1]


def test_missing_object_local(pg_env, lake):
    with pytest.raises(LakeObjectMissing):
        require_bronze(2031)
    proc = run_cli("load", "--year", "2031")
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert f"{lake}/01_bronze/2031.csv does not exist in the lake" in proc.stderr


def test_missing_object_s3(pg_env, s3_lake):
    with pytest.raises(LakeObjectMissing):
        load_year(2031)
    proc = run_cli("load", "--year", "2031")
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert f"{s3_lake}/01_bronze/2031.csv does not exist in the lake" in proc.stderr


def test_s3_and_local_lake_give_identical_rows(pg_conn, lake, s3_lake, monkeypatch):
    monkeypatch.setenv("LAKE_URL", str(lake))
    put_bronze(2018, DAMAGED)
    local = load_year(2018)
    from_local = staged(pg_conn, 2018)
    monkeypatch.setenv("LAKE_URL", s3_lake)
    put_bronze(2018, DAMAGED)
    assert require_bronze(2018) == f"{s3_lake}/01_bronze/2018.csv"
    remote = load_year(2018)
    assert remote.source_uri == f"{s3_lake}/01_bronze/2018.csv" != local.source_uri
    assert staged(pg_conn, 2018) == from_local
    assert len(from_local[0]) == 8 and len(from_local[1]) == 5


def test_cli_json_summary(pg_conn, lake):
    import json

    put_bronze(2018, DAMAGED)
    proc = run_cli("load", "--year", "2018", "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert {k: out[k] for k in ("year", "lines_read", "rows_loaded", "rows_rejected", "status")} == {
        "year": 2018, "lines_read": 13, "rows_loaded": 8, "rows_rejected": 5, "status": "succeeded"}
    assert out["seconds"] > 0 and out["bytes"] == len(DAMAGED) and out["rows_per_second"] > 0
    human = run_cli("load", "--year", "2018")
    assert human.returncode == 0 and "13 lines = 8 rows loaded + 5 rejected" in human.stdout


def _wait_for_copy(conn, proc, timeout=60) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        row = conn.execute(
            "select p.tuples_processed from pg_stat_progress_copy p "
            "join pg_stat_activity a using (pid) where a.datname = current_database() "
            "and a.query like 'copy \"staging\".\"flights\\_%%\\_loading\"%%'").fetchone()
        if row and row[0] > 0:
            return
        assert proc.poll() is None, "the load finished before it could be killed"
        time.sleep(0.02)
    raise AssertionError("the COPY never started")


def _wait_backend_gone(conn, load_id, timeout=30) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if conn.execute("select count(*) from pg_stat_activity where pid = "
                        "(select pid from staging.load_audit where load_id = %s)",
                        (load_id,)).fetchone() == (0,):
            return
        time.sleep(0.05)
    raise AssertionError("the killed load's backend is still there")


def test_killed_mid_copy_keeps_previous_year(pg_conn, lake):
    put_bronze(2018, DAMAGED)
    good = load_year(2018)
    before = staged(pg_conn, 2018)
    put_bronze(2018, big_file(1_500_000))
    proc = subprocess.Popen([sys.executable, "-m", "loaders", "load", "--year", "2018"],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        _wait_for_copy(pg_conn, proc)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    killed = pg_conn.execute("select load_id::text, status from staging.load_audit "
                             "where load_id <> %s", (good.load_id,)).fetchall()
    assert len(killed) == 1 and killed[0][1] == "running"  # the evidence of the crash
    _wait_backend_gone(pg_conn, killed[0][0])
    assert staged(pg_conn, 2018) == before
    assert staging_tables(pg_conn) == ["flights", "flights_2018", "flights_2018_1",
                                       "flights_rejected", "flights_rejected_2018", "load_audit"]
    # The next load of the year records the crashed one as abandoned.
    put_bronze(2018, DAMAGED)
    load_year(2018)
    status, error = pg_conn.execute("select status, error from staging.load_audit "
                                    "where load_id = %s", (killed[0][0],)).fetchone()
    assert status == "failed" and error.startswith("abandoned")


def test_concurrent_loads_of_a_year_serialize(pg_conn, lake):
    put_bronze(2017, DAMAGED)
    other = load_year(2017)
    lines = 400_000
    put_bronze(2018, big_file(lines))
    put_bronze(2019, big_file(lines))
    procs = [subprocess.Popen([sys.executable, "-m", "loaders", "load", "--year", str(year)],
                              cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for year in (2018, 2018, 2019)]
    waited_for = set()  # the years whose advisory lock some load had to wait for
    while any(p.poll() is None for p in procs):
        waited_for.update(r[0] for r in pg_conn.execute(
            "select l.objid from pg_locks l join pg_stat_activity a using (pid) "
            "where l.locktype = 'advisory' and l.objsubid = 2 and l.objid in (2018, 2019) "
            "and not l.granted "
            "and a.datname = current_database()").fetchall())
        time.sleep(0.02)
    for p in procs:
        assert p.wait() == 0, p.stderr.read()
    assert waited_for == {2018}, "the second 2018 load must wait for the first, 2019 for none"
    for year in (2018, 2019):
        assert pg_conn.execute(
            "select count(*), count(distinct line_no), count(distinct load_id) "
            "from staging.flights where year = %s", (year,)).fetchone() == (lines, lines, 1)
    assert pg_conn.execute("select year, status, count(*) from staging.load_audit "
                           "where year > 2017 group by 1, 2 order by 1").fetchall() == [
        (2018, "succeeded", 2), (2019, "succeeded", 1)]
    assert pg_conn.execute("select distinct load_id::text from staging.flights "
                           "where year = 2017").fetchall() == [(other.load_id,)]
    assert staging_tables(pg_conn) == [
        "flights", "flights_2017", "flights_2017_1", "flights_2018", "flights_2018_1",
        "flights_2019", "flights_2019_1", "flights_rejected", "flights_rejected_2017",
        "flights_rejected_2018", "flights_rejected_2019", "load_audit"]


def test_readers_see_old_year_while_a_load_runs(pg_conn, lake, pg_env):
    put_bronze(2018, DAMAGED)
    good = load_year(2018)
    put_bronze(2018, big_file(600_000))
    proc = subprocess.Popen([sys.executable, "-m", "loaders", "load", "--year", "2018"],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        _wait_for_copy(pg_conn, proc)
        with psycopg.connect(autocommit=True) as reader:
            assert reader.execute("select load_id::text, count(*) from staging.flights "
                                  "where year = 2018 group by 1").fetchall() == [(good.load_id, 8)]
    finally:
        assert proc.wait(timeout=600) == 0
    assert pg_conn.execute("select count(*) from staging.flights where year = 2018"
                           ).fetchone() == (600_000,)


def test_fast_path_formats_exactly_like_the_line_by_line_path():
    tricky = [GOOD, GOOD.replace(b",AA,", b",%d%s%%,"), GOOD.replace(b",AA,", b",A\\,"),
              GOOD.replace(b",AA,", b",A\rA,"), GOOD.replace(b",AA,", b"," + "É".encode() + b","),
              CANCELLED]
    block = b"\n".join(tricky) + b"\n"
    fast = bronze_lines.process_block(block, 41)
    slow = bronze_lines._process_lines(block, 41)
    assert fast.payload == slow.payload and fast.rows == slow.rows == len(tricky)
    assert fast.payload.split(b"\n")[1] == b"42,2018-01-01,%d%s%%," + GOOD[14:]
    # One bad line anywhere sends the block to the line-by-line path, which rejects only it.
    pair = GOOD + b",\n" + GOOD[:-1] + b"\n"  # 29 + 27 commas: the block total is right
    batch = bronze_lines.process_block(pair + block, 1)
    assert [(r.line_no, r.reason) for r in batch.rejects] == [
        (1, "29 fields, expected 28"), (2, "27 fields, expected 28")]
    assert batch.rows == len(tricky)


def test_read_ahead_passes_items_errors_and_stops_with_its_consumer():
    import threading

    from loaders.read_ahead import read_ahead

    assert list(read_ahead(iter(range(100)), depth=2)) == list(range(100))

    def failing():
        yield 1
        raise BronzeFormatError("boom at line 2")

    items = read_ahead(failing())
    assert next(items) == 1
    with pytest.raises(BronzeFormatError, match="boom at line 2"):
        next(items)

    produced = []

    def endless():
        n = 0
        while True:
            produced.append(n)
            yield n
            n += 1

    gen = read_ahead(endless(), depth=2, name="endless-test")
    assert next(gen) == 0
    gen.close()  # the consumer gives up (e.g. COPY failed): the worker must end too
    assert not any(t.name == "endless-test" for t in threading.enumerate())
    assert len(produced) <= 5


def test_unreachable_warehouse_is_one_line_exit_2(lake, monkeypatch):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once the socket is closed
    put_bronze(2018, DAMAGED)
    env = {**os.environ, "PGHOST": "127.0.0.1", "PGPORT": str(port), "PGDATABASE": "x",
           "PGCONNECT_TIMEOUT": "5"}
    proc = run_cli("load", "--year", "2018", env=env)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith("error: loading 2018 failed in the warehouse: ")
    assert "PG* variables" in proc.stderr


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_damage_every_line_accounted_and_carried_verbatim(seed):
    """Independent oracle: a line loads iff it has 28 fields, is UTF-8 and has no NUL; a loaded
    line's COPY row unescapes to exactly the original line."""
    import io
    import random

    rnd = random.Random(seed)
    noise = [b",", b"%", b"\\", b"\r", b"\x00", b"\xff", "é".encode(), b'"', b"\t", b"%d"]
    lines = []
    for _ in range(3000):
        line = rnd.choice([GOOD, GOOD2, CANCELLED])
        if rnd.random() < 0.3:
            pos = rnd.randrange(len(line) + 1)
            line = line[:pos] + rnd.choice(noise) + line[pos + 1:]
        lines.append(line)
    data = HEADER_LINE + b"\n" + b"\n".join(lines) + b"\n"

    def loads(line: bytes) -> bool:
        try:
            line.decode("utf-8")
        except UnicodeDecodeError:
            return False
        return line.count(b",") == 27 and b"\x00" not in line

    expected = {i + 1 for i, line in enumerate(lines) if loads(line.removesuffix(b"\r"))}
    assert 0 < len(expected) < len(lines)
    for block_size in (97, 4096, 1 << 22):
        batches = list(read_batches(io.BytesIO(data), "fuzz.csv", block_size=block_size))
        rejected = {r.line_no for b in batches for r in b.rejects}
        rows = {}
        for row in b"".join(b.payload for b in batches).split(b"\n")[:-1]:
            number, _, rest = row.partition(b",")
            rows[int(number)] = rest.replace(b"\\r", b"\r").replace(b"\\\\", b"\\")
        assert set(rows) == expected
        assert rejected == set(range(1, len(lines) + 1)) - expected
        assert all(rows[n] == lines[n - 1].removesuffix(b"\r") for n in rows)


def test_progress_bar_only_on_a_terminal(pg_conn, lake):
    import pty
    import select

    put_bronze(2018, DAMAGED)
    import fcntl
    import struct
    import termios

    primary, secondary = pty.openpty()
    # A fresh pty is 0 columns wide, and tqdm draws nothing in no columns.
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    try:
        proc = subprocess.run([sys.executable, "-m", "loaders", "load", "--year", "2018"],
                              cwd=REPO, stdout=subprocess.PIPE, stderr=secondary, timeout=300,
                              check=False)
        shown = b""  # still open on our side, so what the child wrote stays readable
        while select.select([primary], [], [], 0.5)[0]:
            shown += os.read(primary, 65536)
    finally:
        os.close(primary)
        os.close(secondary)
    assert proc.returncode == 0
    assert b"load 2018" in shown and b"B/s" in shown  # tqdm's bar over bytes
    piped = run_cli("load", "--year", "2018")
    assert piped.returncode == 0 and piped.stderr == ""


def _fingerprint(conn, year: int) -> tuple:
    return conn.execute(
        "select count(*), md5(string_agg(f::text, '|' order by line_no)) from ("
        "select line_no, row(fl_date, op_carrier, op_carrier_fl_num, origin, dest, crs_dep_time,"
        " dep_time, dep_delay, taxi_out, wheels_off, wheels_on, taxi_in, crs_arr_time, arr_time,"
        " arr_delay, cancelled, cancellation_code, diverted, crs_elapsed_time,"
        " actual_elapsed_time, air_time, distance, carrier_delay, weather_delay, nas_delay,"
        " security_delay, late_aircraft_delay, unnamed_27) as f"
        " from staging.flights where year = %s) t", (year,)).fetchone() + conn.execute(
        "select count(*), md5(string_agg(line_no || raw_line || reason, '|' order by line_no)) "
        "from staging.flights_rejected where year = %s", (year,)).fetchone()


def test_s3_and_local_identical_across_many_blocks(pg_conn, lake, s3_lake, monkeypatch):
    """Damage on every side of the 4 MiB block boundaries, streamed from both kinds of lake."""
    repeats = 25_000
    body = b"".join(DAMAGED_LINES) + b"\n"
    data = b"\xef\xbb\xbf" + HEADER_LINE + b"\r\n" + body * repeats
    assert len(data) > 7 * bronze_lines.BLOCK_SIZE
    monkeypatch.setenv("LAKE_URL", str(lake))
    put_bronze(2018, data)
    local = load_year(2018)
    expected = (13 * repeats, 8 * repeats, 5 * repeats)
    assert (local.lines_read, local.rows_loaded, local.rows_rejected) == expected
    from_local = _fingerprint(pg_conn, 2018)
    monkeypatch.setenv("LAKE_URL", s3_lake)
    put_bronze(2018, data)
    remote = load_year(2018)
    assert (remote.lines_read, remote.rows_loaded, remote.rows_rejected) == expected
    assert _fingerprint(pg_conn, 2018) == from_local
    assert pg_conn.execute("select max(line_no) from staging.flights_rejected").fetchone() == (
        13 * (repeats - 1) + 11,)
