"""Gold is continuous across the two bronze formats: one generated year written as the Kaggle
yearly file and as twelve BTS monthly files gives the same silver flights and the same gold
rows (real PostgreSQL, real `dbt build`). And months built one by one (`--vars '{year: Y,
month: M}'`) give what a build of the whole year gives, each touching only its month."""

from __future__ import annotations

import os
import re
import subprocess

import pytest

from lakehouse.lake import Lake
from loaders.generate import generate_year
from loaders.load import load_month, load_year
from tests.test_dbt import DBT, ML_MODELS, PROJECT, dbt, make_dbt_dir

pytestmark = pytest.mark.slow

YEAR = 2016
# Every typed silver column but the row's place in its file and its load.
SILVER = """
    select md5(string_agg(f::text, '|' order by f::text)), count(*)
    from (select fl_date, op_carrier, op_carrier_fl_num, origin, dest, crs_dep_time, dep_time,
                 scheduled_dep_at, dep_at, dep_delay, is_delayed_15, taxi_out,
                 wheels_off_minutes, wheels_on_minutes, taxi_in, crs_arr_time, arr_time,
                 arr_delay, is_cancelled, cancellation_code, is_diverted, crs_elapsed_time,
                 actual_elapsed_time, air_time, distance, carrier_delay, weather_delay,
                 nas_delay, security_delay, late_aircraft_delay, cast_warnings,
                 duplicates_removed
          from silver.flights where year = %s) as f
"""


def gold(conn) -> list[tuple]:
    return conn.execute("select * from gold.agg_dep_delay_by_date where year = %s order by id",
                        (YEAR,)).fetchall()


def test_a_year_from_kaggle_and_from_bts_months_gives_the_same_gold(pg_env, pg_conn, lake,
                                                                    tmp_path):
    dbt_dir = make_dbt_dir(tmp_path)
    target = Lake(str(lake))
    # a leap year, so February 29 crosses the formats too
    generate_year(YEAR, rows=40_000, seed=21, lake=target, airports=20)
    generate_year(YEAR, rows=40_000, seed=21, lake=target, airports=20, fmt="bts")

    yearly = load_year(YEAR)
    dbt(dbt_dir, "build", year=YEAR)
    kaggle_gold = gold(pg_conn)
    kaggle_silver = pg_conn.execute(SILVER, (YEAR,)).fetchone()

    months = [load_month(YEAR, m, replace_year=(m == 1)) for m in range(1, 13)]
    assert sum(r.rows_loaded for r in months) == yearly.rows_loaded == 40_000
    assert pg_conn.execute("select count(distinct load_id) from staging.flights where year = %s",
                           (YEAR,)).fetchone()[0] == 12
    dbt(dbt_dir, "build", year=YEAR)
    bts_gold = gold(pg_conn)

    assert len(kaggle_gold) > 20 * 360
    assert pg_conn.execute(SILVER, (YEAR,)).fetchone() == kaggle_silver
    assert bts_gold == kaggle_gold


def dbt_month(dbt_dir, year: int, month: int, ok: bool = True, via_env: bool = True) -> str:
    """`dbt build` of one month, the period given as the DAG gives it (LAKEHOUSE_BUILD_YEAR
    and _MONTH) or as a user types it (`--vars`)."""
    period = (["--vars", f"{{year: {year}, month: {month}}}"] if not via_env else [])
    env = {**os.environ, "DO_NOT_TRACK": "1"}
    if via_env:
        env.update(LAKEHOUSE_BUILD_YEAR=str(year), LAKEHOUSE_BUILD_MONTH=str(month))
    proc = subprocess.run(
        [DBT, "build", "--project-dir", str(PROJECT), "--profiles-dir",
         str(dbt_dir / "dbt_profiles"), "--target-path", str(dbt_dir / "target"), "--log-path",
         str(dbt_dir / "logs"), *period, "--exclude", ML_MODELS],
        check=False, capture_output=True, text=True, env=env, timeout=900)
    assert (proc.returncode == 0) == ok, proc.stdout[-6000:]
    return proc.stdout


def snapshot(conn) -> dict:
    def rows(query: str) -> list[tuple]:
        return conn.execute(query, (YEAR,)).fetchall()

    return {
        "silver": rows("select * from silver.flights where year = %s order by line_no"),
        "duplicates": rows("select * from silver.flights_duplicates where year = %s "
                           "order by line_no"),
        "rejected": rows("select * from silver.flights_rejected where year = %s "
                         "order by line_no"),
        "gold": gold(conn),
    }


def test_months_built_one_by_one_equal_the_whole_year_and_touch_only_their_month(
        pg_env, pg_conn, lake, tmp_path):
    dbt_dir = make_dbt_dir(tmp_path)
    target = Lake(str(lake))
    generate_year(YEAR, rows=30_000, seed=22, lake=target, airports=20, fmt="bts",
                  months={1, 2, 3})
    # an impossible date in February: silver rejects it, so the rejects take the month path too
    feb = lake / "01_bronze/bts/2016/02.csv"
    lines = feb.read_bytes().split(b"\n")
    lines[5] = re.sub(rb",2016-02-\d\d,", b",2016-02-30,", lines[5], count=1)
    feb.write_bytes(b"\n".join(lines))
    for month in (1, 2, 3):
        load_month(YEAR, month)
        out = dbt_month(dbt_dir, YEAR, month)
        if month > 1:
            # a new period in the environment keeps dbt's partial parse (a new --vars does not)
            assert "Unable to do partial parsing" not in out, out[:2000]
        built = {r[0] for r in pg_conn.execute(
            "select distinct extract(month from fl_date)::int from gold.agg_dep_delay_by_date "
            "where year = %s", (YEAR,)).fetchall()}
        assert built == set(range(1, month + 1))
    by_months = snapshot(pg_conn)
    assert len(by_months["rejected"]) == 1 and by_months["gold"]

    # January again, from other flights, built the way a user types it: only January's rows
    # change
    generate_year(YEAR, rows=20_000, seed=23, lake=target, airports=20, fmt="bts", months={1})
    load_month(YEAR, 1)
    dbt_month(dbt_dir, YEAR, 1, via_env=False)
    after = snapshot(pg_conn)
    def not_january(key: str, rows: list[tuple]) -> list[tuple]:
        # silver rows start (year, load_id, line_no, ...), gold rows (id, origin, fl_date, ...)
        return [r for r in rows
                if (r[2] // 100_000_000 if key == "silver" else r[2].month) != 1]

    for key in ("silver", "gold"):
        assert not_january(key, after[key]) == not_january(key, by_months[key]), key
        assert after[key] != by_months[key]

    # and the whole year built at once gives the same tables as the months built one by one
    dbt(dbt_dir, "build", year=YEAR)
    assert snapshot(pg_conn) == after

    # a month's data tests check that month only (macros/tests/build_where.sql): a March
    # staging row pointing at no load fails March's build, not February's
    pg_conn.execute("update staging.flights set load_id = gen_random_uuid() "
                    "where year = %s and line_no = %s",
                    (YEAR, 3 * 100_000_000 + 1))
    dbt_month(dbt_dir, YEAR, 2)
    out = dbt_month(dbt_dir, YEAR, 3, ok=False)
    assert re.search(r"FAIL 1 source_relationships_staging_flights_load_id", out), out[-3000:]
    # and the year's partition is laid out by month (the first month built into a year built
    # whole does that once), each month a partition of its own, swapped in like a year, with
    # the fl_date index that gold's month reads go by
    months = [r[0] for r in pg_conn.execute(
        "select c.relname from pg_inherits i join pg_class c on c.oid = i.inhrelid "
        "where i.inhparent = %s::regclass order by 1", (f"silver.flights_{YEAR}",)).fetchall()]
    assert months == [f"flights_{YEAR}_{m:02d}" for m in range(1, 13)]
    indexes = {r[0] for r in pg_conn.execute(
        "select indexdef from pg_indexes where schemaname = 'silver' and tablename = %s",
        (f"flights_{YEAR}_03",)).fetchall()}
    assert {re.search(r"\((\w+)\)", d).group(1) for d in indexes} == {"fl_date"}
