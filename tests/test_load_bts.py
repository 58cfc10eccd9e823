"""BTS months → staging against a real PostgreSQL: a month is the unit (loading one replaces
only its rows), the columns land on the Kaggle format's staging contract, nothing is lost."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from lakehouse.errors import UserError
from lakehouse.lake import Lake, bts_bronze_key
from loaders import bts_format, bts_lines
from loaders.generate import generate_year
from loaders.load import load_month, load_year

REPO = Path(__file__).resolve().parents[1]
BASE = bts_format.MONTH_LINE_BASE

# A real 2025-01 line (as read from TranStats' prezipped file) and a cancelled flight.
REAL = ('2025,1,1,1,3,2025-01-01,"AA",19805,"AA","N104NN","1",12478,1247805,31703,"JFK",'
        '"New York, NY","NY","36","New York",22,12892,1289208,32575,"LAX","Los Angeles, CA","CA",'
        '"06","California",91,"0659","0656",-3.00,0.00,0.00,-1,"0600-0659",23.00,"0719","1004",'
        '9.00,"1020","1013",-7.00,0.00,0.00,-1,"1000-1059",0.00,"",0.00,381.00,377.00,345.00,'
        '1.00,2475.00,10,,,,,,"",,,0,,,,,"",,,"",,,"","",' + '"",,,"",,,"","",' * 4)


def cancelled_line() -> str:
    fields = next(__import__("csv").reader([REAL]))
    row = dict(zip(bts_format.COLUMNS, fields, strict=False))
    row.update(DepTime="", DepDelay="", TaxiOut="", WheelsOff="", WheelsOn="", TaxiIn="",
               ArrTime="", ArrDelay="", ActualElapsedTime="", AirTime="", Cancelled="1.00",
               CancellationCode="B", DayofMonth="2", FlightDate="2025-01-02")
    return ",".join(f'"{row[c]}"' if c in bts_format.QUOTED else row[c]
                    for c in bts_format.COLUMNS) + ","


def write_month(lake: Path, year: int, month: int, lines: list[str]) -> None:
    path = lake / bts_bronze_key(year, month)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bts_format.HEADER_LINE + b"\r\n"
                     + "".join(line + "\r\n" for line in lines).encode())


def test_real_line_lands_on_the_staging_contract_and_damage_is_listed(pg_env, pg_conn, lake):
    assert len(next(__import__("csv").reader([REAL]))) == bts_format.FIELDS
    write_month(lake, 2025, 1, [
        REAL,                                   # 1
        cancelled_line(),                       # 2
        REAL[:REAL.index(',"0659"')],           # 3 truncated
        REAL.replace('"New York, NY"', '"New York, NY'),  # 4 unbalanced quote
        REAL + "surplus,",                      # 5 one field too many
    ])
    result = load_month(2025, 1)
    assert (result.lines_read, result.rows_loaded, result.rows_rejected) == (5, 2, 3)
    rows = pg_conn.execute(
        "select line_no, fl_date, op_carrier, op_carrier_fl_num, origin, dest, crs_dep_time, "
        "dep_time, dep_delay, wheels_off, crs_arr_time, cancelled, cancellation_code, diverted, "
        "distance, carrier_delay, unnamed_27 from staging.flights order by line_no").fetchall()
    assert rows == [
        (BASE + 1, "2025-01-01", "AA", "1", "JFK", "LAX", "0659", "0656", "-3.00", "0719",
         "1020", "0.00", None, "0.00", "2475.00", None, None),
        (BASE + 2, "2025-01-02", "AA", "1", "JFK", "LAX", "0659", None, None, None,
         "1020", "1.00", "B", "0.00", "2475.00", None, None),
    ]
    rejects = pg_conn.execute("select line_no, reason from staging.flights_rejected "
                              "order by line_no").fetchall()
    assert [n for n, _ in rejects] == [BASE + 3, BASE + 4, BASE + 5]
    assert "fields, expected 110" in rejects[0][1] and "unbalanced quotes" in rejects[1][1]
    assert rejects[2][1].startswith("111 fields, expected 110")
    audit = pg_conn.execute("select year, month, status, lines_read, rows_loaded, rows_rejected "
                            "from staging.load_audit").fetchall()
    assert audit == [(2025, 1, "succeeded", 5, 2, 3)]


def test_a_month_load_replaces_only_that_month(pg_env, pg_conn, lake):
    target = Lake(str(lake))
    generate_year(2019, rows=24_000, seed=1, lake=target, airports=20, fmt="bts", months={1, 2})
    first = {m: load_month(2019, m) for m in (1, 2)}
    counts = dict(pg_conn.execute(
        "select line_no / %s, count(*) from staging.flights group by 1", (BASE,)).fetchall())
    assert counts == {1: first[1].rows_loaded, 2: first[2].rows_loaded}
    assert pg_conn.execute("select count(*) from staging.flights "
                           "where substr(fl_date, 6, 2)::int <> line_no / %s",
                           (BASE,)).fetchone()[0] == 0
    # January again, from other data: February's rows (and load) stay as they were
    generate_year(2019, rows=12_000, seed=2, lake=target, airports=20, fmt="bts", months={1})
    again = load_month(2019, 1)
    by_load = dict(pg_conn.execute("select load_id::text, count(*) from staging.flights "
                                   "group by 1").fetchall())
    assert by_load == {again.load_id: again.rows_loaded, first[2].load_id: first[2].rows_loaded}
    assert again.rows_loaded != first[1].rows_loaded
    parts = [r[0] for r in pg_conn.execute(
        "select c.relname from pg_inherits i join pg_class c on c.oid = i.inhrelid "
        "where i.inhparent = 'staging.flights_2019'::regclass order by 1").fetchall()]
    assert parts == ["flights_2019_m01", "flights_2019_m02"]


def test_months_and_yearly_files_do_not_mix_unless_asked(pg_env, pg_conn, lake):
    target = Lake(str(lake))
    generate_year(2019, rows=6_000, seed=3, lake=target, airports=20)
    generate_year(2019, rows=6_000, seed=3, lake=target, airports=20, fmt="bts", months={3})
    yearly = load_year(2019)
    with pytest.raises(UserError, match="loaded from a yearly file .* --replace-year"):
        load_month(2019, 3)
    assert pg_conn.execute("select count(*) from staging.flights").fetchone()[0] == yearly.rows_loaded
    march = load_month(2019, 3, replace_year=True)
    assert pg_conn.execute("select count(*) from staging.flights").fetchone()[0] == march.rows_loaded
    # a yearly load replaces the whole year, months included
    again = load_year(2019)
    assert pg_conn.execute("select count(*), count(distinct load_id) from staging.flights"
                           ).fetchone() == (again.rows_loaded, 1)


def test_missing_month_says_where_to_get_it(pg_env, lake):
    done = subprocess.run([sys.executable, "-m", "loaders", "load", "--year", "2020", "--month",
                           "4"], cwd=REPO, env=os.environ.copy(), capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 2
    assert done.stderr.startswith("error: ") and len(done.stderr.strip().splitlines()) == 1
    assert ("On_Time_Reporting_Carrier_On_Time_Performance_1987_present_2020_4.zip from "
            "https://transtats.bts.gov/PREZIP/") in done.stderr


def test_reader_keeps_every_line_once():
    import io

    lines = [REAL, "", REAL.replace("2475.00", "2475.00,x"), REAL]
    data = bts_format.HEADER_LINE + b"\n" + "\n".join(lines).encode()  # no final line break
    batches = list(bts_lines.read_batches(io.BytesIO(data), "mem", line_base=BASE * 7,
                                          block_size=300))
    assert sum(b.lines for b in batches) == 4
    assert sum(b.rows for b in batches) == 2
    assert [r.line_no for b in batches for r in b.rejects] == [BASE * 7 + 2, BASE * 7 + 3]


def test_line_without_break_beyond_the_limit_is_rejected_not_buffered(monkeypatch):
    import io

    from loaders import bronze_lines

    monkeypatch.setattr(bronze_lines, "MAX_LINE_BYTES", 4000)
    data = (bts_format.HEADER_LINE + b"\n" + REAL.encode() + b"\n" + b"x" * 9000 + b"\n"
            + REAL.encode() + b"\n")
    batches = list(bts_lines.read_batches(io.BytesIO(data), "mem", line_base=BASE * 7,
                                          block_size=256))
    rejects = [r for b in batches for r in b.rejects]
    assert [(r.line_no, len(r.raw_line)) for r in rejects] == [(BASE * 7 + 2, 4000)]
    assert f"expected one flight of {bts_lines.FIELDS} fields per line" in rejects[0].reason
    assert sum(b.rows for b in batches) == 2 and sum(b.lines for b in batches) == 3
    assert sum(b.bytes_read for b in batches) == len(data)


def test_a_month_from_s3_lands_the_same_rows_as_from_a_local_lake(pg_env, pg_conn, tmp_path,
                                                                  s3_lake, monkeypatch):
    local = Lake(str(tmp_path / "local"))
    generate_year(2019, rows=24_000, seed=6, lake=local, airports=20, fmt="bts", months={5})
    generate_year(2019, rows=24_000, seed=6, lake=Lake(s3_lake), airports=20, fmt="bts",
                  months={5})
    query = ("select line_no, fl_date, op_carrier, origin, dep_delay, cancelled "
             "from staging.flights order by line_no")
    from_s3 = load_month(2019, 5)
    s3_rows = pg_conn.execute(query).fetchall()
    monkeypatch.setenv("LAKE_URL", local.url)
    from_local = load_month(2019, 5)
    assert from_s3.source_uri.startswith("s3://") and from_s3.rows_loaded == from_local.rows_loaded
    assert pg_conn.execute(query).fetchall() == s3_rows and len(s3_rows) > 1_000
