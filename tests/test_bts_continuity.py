"""Gold is continuous across the two bronze formats: one generated year written as the Kaggle
yearly file and as twelve BTS monthly files gives the same silver flights and the same gold
rows (real PostgreSQL, real `dbt build`)."""

from __future__ import annotations

import pytest

from lakehouse.lake import Lake
from loaders.generate import generate_year
from loaders.load import load_month, load_year
from tests.test_dbt import dbt, make_dbt_dir

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
