"""`python -m loaders export`: silver and gold of a built year as Parquet in the lake, local and
S3 (moto's server over HTTP), checked against the warehouse tables."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import boto3
import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lakehouse.lake import Lake, gold_key, gold_month_key, silver_key, silver_month_key
from loaders.export import export_month, export_year
from loaders.generate import generate_year
from loaders.load import load_year
from tests.test_dbt import dbt, make_dbt_dir

pytestmark = pytest.mark.slow


@pytest.fixture
def dbt_dir(tmp_path):
    return make_dbt_dir(tmp_path)


def build_year(dbt_dir, year: int, rows: int) -> None:
    generate_year(year, rows=rows, seed=year)
    load_year(year)
    dbt(dbt_dir, "build", year=year)


def read_parquet(lake: Lake, key: str) -> pa.Table:
    with lake.open_read(key) as fh:
        return pq.read_table(io.BytesIO(fh.read()))


def test_export_writes_both_tables_with_typed_columns_and_overwrites(pg_env, pg_conn, lake, dbt_dir):
    build_year(dbt_dir, 2018, 3_000)
    result = export_year(2018)

    silver = pq.read_table(lake / silver_key(2018))
    gold = pq.read_table(lake / gold_key(2018))
    assert result["silver"]["rows"] == silver.num_rows == 3_000
    gold_rows = pg_conn.execute(
        "select count(*) from gold.agg_dep_delay_by_date where year = 2018").fetchone()[0]
    assert result["gold"]["rows"] == gold.num_rows == gold_rows
    assert silver.schema.field("fl_date").type == pa.date32()
    assert silver.schema.field("is_cancelled").type == pa.bool_()
    assert silver.schema.field("dep_at").type == pa.timestamp("us")
    assert silver.schema.field("dep_delay").type == pa.float64()
    assert gold.schema.field("flights").type == pa.int32()
    assert gold.schema.field("mean_dep_delay").type == pa.float64()
    # Values survive the trip exactly, NULLs included.
    flights, delay_sum, nulls = pg_conn.execute(
        "select sum(flights), sum(total_dep_delay), count(*) filter (where mean_dep_delay is null) "
        "from gold.agg_dep_delay_by_date where year = 2018").fetchone()
    assert pa.compute.sum(gold["flights"]).as_py() == flights
    assert pa.compute.sum(gold["total_dep_delay"]).as_py() == pytest.approx(delay_sum, abs=0)
    assert gold["mean_dep_delay"].null_count == nulls
    cancelled = pg_conn.execute(
        "select count(*) filter (where is_cancelled), count(dep_delay) from silver.flights").fetchone()
    assert (pa.compute.sum(silver["is_cancelled"]).as_py(), silver["dep_delay"].length()
            - silver["dep_delay"].null_count) == cancelled
    first = gold.slice(0, 1).to_pylist()[0]
    assert first["id"] == first["origin"] + first["fl_date"].strftime("%Y%m%d")

    # Re-export after the table changed: the file is replaced, not appended to.
    pg_conn.execute("delete from gold.agg_dep_delay_by_date where year = 2018 and origin <> 'ATL'")
    again = export_year(2018)
    assert again["gold"]["rows"] == pq.read_table(lake / gold_key(2018)).num_rows
    assert 0 < again["gold"]["rows"] < gold.num_rows
    assert [p.name for p in (lake / gold_key(2018)).parent.iterdir()] == ["2018_03_gold.parquet"]


def test_export_to_s3_over_http(pg_env, pg_conn, s3_lake, dbt_dir):
    build_year(dbt_dir, 2017, 2_000)
    result = export_year(2017)
    lake = Lake(s3_lake)
    assert result["silver"]["uri"] == lake.uri(silver_key(2017))
    assert read_parquet(lake, silver_key(2017)).num_rows == 2_000
    gold = read_parquet(lake, gold_key(2017))
    assert gold.num_rows == pg_conn.execute(
        "select count(*) from gold.agg_dep_delay_by_date").fetchone()[0]
    bucket = s3_lake[len("s3://"):].split("/")[0]
    keys = {o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket=bucket)["Contents"]}
    assert f"lake/{gold_key(2017)}" in keys and f"lake/{silver_key(2017)}" in keys


def test_export_of_a_year_that_was_not_built_is_a_one_line_error(pg_env, pg_conn, lake, dbt_dir):
    def export_cli(year: int) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "loaders", "export", "--year", str(year)],
                              capture_output=True, text=True, check=False)

    empty = export_cli(2016)  # nothing built at all in this database
    assert empty.returncode == 2
    assert empty.stderr.count("\n") == 1
    assert "silver.flights does not exist" in empty.stderr and "dbt build" in empty.stderr

    build_year(dbt_dir, 2018, 500)
    missing = export_cli(2016)
    assert missing.returncode == 2
    assert missing.stderr.count("\n") == 1
    assert "has no rows for year 2016" in missing.stderr
    assert not (lake / silver_key(2016)).exists() and not (lake / "02_silver").exists()


def _month_rows(pg_conn, table: str, year: int, month: int) -> int:
    schema, name = table.split(".")
    return pg_conn.execute(
        psycopg.sql.SQL("select count(*) from {} where year = %s and "
                        "extract(month from fl_date) = %s").format(
            psycopg.sql.Identifier(schema, name)), (year, month)).fetchone()[0]


def test_export_of_a_month_writes_only_its_month_and_never_both_layouts(
        pg_env, pg_conn, lake, dbt_dir):
    build_year(dbt_dir, 2018, 6_000)
    march = export_month(2018, 3)
    silver = pq.read_table(lake / silver_month_key(2018, 3))
    gold = pq.read_table(lake / gold_month_key(2018, 3))
    assert march["months"] == [3] and march["removed"] == []
    assert march["silver"]["rows"] == silver.num_rows == _month_rows(pg_conn, "silver.flights", 2018, 3)
    assert march["gold"]["rows"] == gold.num_rows == _month_rows(
        pg_conn, "gold.agg_dep_delay_by_date", 2018, 3)
    assert 0 < silver.num_rows < 6_000
    assert {d.month for d in silver["fl_date"].to_pylist()} == {3}
    assert {d.month for d in gold["fl_date"].to_pylist()} == {3}
    assert not (lake / silver_key(2018)).exists() and not (lake / silver_month_key(2018, 4)).exists()

    # Idempotent: a re-export replaces the month's file, the other months are left alone.
    export_month(2018, 4)
    before = (lake / silver_month_key(2018, 4)).read_bytes()
    pg_conn.execute("delete from silver.flights where year = 2018 and extract(month from fl_date) = 3 "
                    "and origin <> 'ATL'")
    again = export_month(2018, 3)
    assert 0 < again["silver"]["rows"] < silver.num_rows
    assert pq.read_table(lake / silver_month_key(2018, 3)).num_rows == again["silver"]["rows"]
    assert (lake / silver_month_key(2018, 4)).read_bytes() == before
    assert sorted(p.name for p in (lake / silver_month_key(2018, 3)).parent.iterdir()) == [
        "2018_03_02_silver.parquet"]  # no temp file left beside it

    # The year export writes the year file and removes the month files it now holds...
    year = export_year(2018)
    assert sorted(year["removed"]) == sorted(
        str(lake / k) for k in (silver_month_key(2018, 3), gold_month_key(2018, 3),
                                silver_month_key(2018, 4), gold_month_key(2018, 4)))
    assert not (lake / silver_month_key(2018, 3)).exists()
    total = pq.read_table(lake / silver_key(2018)).num_rows
    # ...and a month export of a year whose year file is in the lake writes every month the
    # warehouse holds, then removes the year file: the months add up to the year.
    switched = export_month(2018, 5)
    assert switched["months"] == list(range(1, 13))
    assert not (lake / silver_key(2018)).exists() and not (lake / gold_key(2018)).exists()
    assert sum(pq.read_table(lake / silver_month_key(2018, m)).num_rows
               for m in range(1, 13)) == total
    assert sum(pq.read_table(lake / gold_month_key(2018, m)).num_rows for m in range(1, 13)) \
        == pg_conn.execute("select count(*) from gold.agg_dep_delay_by_date").fetchone()[0]


def test_export_of_a_month_to_s3_and_from_the_cli(pg_env, pg_conn, s3_lake, dbt_dir):
    build_year(dbt_dir, 2017, 2_000)
    proc = subprocess.run([sys.executable, "-m", "loaders", "export", "--year", "2017",
                           "--month", "2", "--json"], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    lake = Lake(s3_lake)
    assert result["silver"]["uri"] == lake.uri(silver_month_key(2017, 2))
    assert read_parquet(lake, silver_month_key(2017, 2)).num_rows == _month_rows(
        pg_conn, "silver.flights", 2017, 2) == result["silver"]["rows"] > 0
    assert read_parquet(lake, gold_month_key(2017, 2)).num_rows == result["gold"]["rows"]
    bucket = s3_lake[len("s3://"):].split("/")[0]
    keys = {o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket=bucket)["Contents"]}
    assert {k for k in keys if "_02_silver" in k or "_03_gold" in k} == {
        f"lake/{silver_month_key(2017, 2)}", f"lake/{gold_month_key(2017, 2)}"}

    missing = subprocess.run([sys.executable, "-m", "loaders", "export", "--year", "2017",
                              "--month", "13"], capture_output=True, text=True, check=False)
    assert missing.returncode == 2 and "--month 13 is not a month" in missing.stderr
    pg_conn.execute("delete from silver.flights where extract(month from fl_date) = 6")
    empty = subprocess.run([sys.executable, "-m", "loaders", "export", "--year", "2017",
                            "--month", "6"], capture_output=True, text=True, check=False)
    assert empty.returncode == 2 and empty.stderr.count("\n") == 1
    assert "silver.flights has no rows for 2017-06" in empty.stderr
    assert "--month 6" in empty.stderr
