"""bts_monthly_pipeline: the same tasks and Cosmos groups as etl_ml_pipeline on a monthly
calendar. Its catch-up from 2019-01 maps each run to the right month (computed by the DAG's
own timetable), and a real `airflow dags test` run of a generated month loads, builds,
exports and scores that month only; a month not in the lake fails check_bronze with where to
download it."""

from __future__ import annotations

import datetime as dt
import subprocess
import time

import pyarrow.parquet as pq
import pytest

from devtools import airflow_local
from lakehouse.airflow_support import first_bts_month, month_of_run
from lakehouse.errors import UserError
from lakehouse.lake import Lake, gold_key, gold_month_key, silver_key, silver_month_key
from loaders.generate import generate_year
from tests.test_dag import _env, airflow_home, dag_env, manifest  # noqa: F401  (fixtures)

DAG = airflow_local.MONTHLY_DAG_ID


@pytest.fixture(scope="module")
def monthly_report(airflow_home, manifest):  # noqa: F811
    return airflow_local.check_dag(_env(airflow_home, manifest, pg_env={}), DAG, first_runs=14)


def test_catch_up_from_2019_01_runs_each_month_after_it_ends(monthly_report):
    report = monthly_report
    assert report["import_errors"] == {}
    assert report["catchup"] is True and report["max_active_runs"] == 1
    # paused on creation: a fresh install does not start a run per month of an empty lake
    assert report["is_paused_upon_creation"] is True
    assert report["start_date"] == "2019-01-01T00:00:00+00:00"
    runs = report["first_runs"]
    assert [tuple(r["month"]) for r in runs] == [(2019, m) for m in range(1, 13)] + [
        (2020, 1), (2020, 2)]
    first = runs[0]
    assert first["logical_date"] == "2019-01-01T00:00:00+00:00"
    assert first["interval"] == ["2019-01-01T00:00:00+00:00", "2019-02-01T00:00:00+00:00"]
    assert first["run_after"] == "2019-02-01T00:00:00+00:00"  # once January is over
    assert runs[1]["interval"][0] == "2019-02-01T00:00:00+00:00"
    assert runs[12]["interval"] == ["2020-01-01T00:00:00+00:00", "2020-02-01T00:00:00+00:00"]
    # the same tasks as the yearly DAG
    assert {"check_bronze", "load_staging", "export_lake", "score_anomalies", "cleanup",
            "dbt_transform.flights_model_build", "dbt_ml.daily_delay_anomalies_model_build"} \
        <= set(report["tasks"])


def test_month_of_run_and_first_month():
    utc = dt.UTC
    assert month_of_run({}, dt.datetime(2019, 1, 1, tzinfo=utc), None) == (2019, 1)
    assert month_of_run({"year": 2016, "month": 3}, dt.datetime(2019, 1, 1, tzinfo=utc),
                        None) == (2016, 3)
    assert month_of_run({}, None, dt.datetime(2026, 1, 15, tzinfo=utc)) == (2025, 12)
    with pytest.raises(ValueError, match="both `year` and `month`"):
        month_of_run({"year": 2019}, None, None)
    assert first_bts_month("2024-06") == dt.datetime(2024, 6, 1, tzinfo=utc)
    assert first_bts_month("") == dt.datetime(2019, 1, 1, tzinfo=utc)
    with pytest.raises(UserError, match="LAKEHOUSE_BTS_FIRST_MONTH"):
        first_bts_month("June")


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_a_month_run_processes_its_interval_and_a_missing_month_fails(
        dag_env, pg_conn, lake, tmp_path):  # noqa: F811
    generate_year(2016, rows=60_000, seed=4, lake=Lake(str(lake)), airports=20, fmt="bts",
                  months={1})
    env = dag_env(connection=False)
    # A run dated before the DAG's start_date gets no task instances at all (and "succeeds"):
    # the calendar starts at the lake's first month.
    env["LAKEHOUSE_BTS_FIRST_MONTH"] = "2016-01"
    # Dated 2016-02-01, as the scheduler's run of January starts: its interval is January.
    code, tasks = airflow_local.run_dag(env, None, tmp_path / "jan.log", dag_id=DAG,
                                        logical_date="2016-02-01")
    failed = {t: i["state"] for t, i in tasks.items() if i["state"] != "success"}
    assert code == 0 and tasks and not failed, (failed, (tmp_path / "jan.log").read_text()[-3000:])
    assert pg_conn.execute("select distinct line_no / 100000000 from staging.flights"
                           ).fetchall() == [(1,)]
    gold_days = pg_conn.execute(
        "select count(*), min(fl_date), max(fl_date) from gold.agg_dep_delay_by_date").fetchone()
    assert gold_days[1] >= dt.date(2016, 1, 1) and gold_days[2] <= dt.date(2016, 1, 31)
    scored = pg_conn.execute("select count(*) from ml.dep_delay_anomalies").fetchone()[0]
    assert scored == gold_days[0]
    assert pg_conn.execute("select month from ml.model_runs").fetchall() == [(1,)]
    # the export wrote the month's files only
    silver = pq.read_table(lake / silver_month_key(2016, 1))
    assert silver.num_rows == pg_conn.execute("select count(*) from silver.flights").fetchone()[0]
    assert pq.read_table(lake / gold_month_key(2016, 1)).num_rows == gold_days[0]
    assert not (lake / silver_key(2016)).exists() and not (lake / gold_key(2016)).exists()

    # February is not in the lake: check_bronze fails at once with where to download it.
    code, tasks = airflow_local.run_dag(env, None, tmp_path / "feb.log", dag_id=DAG,
                                        logical_date="2016-03-01")
    assert code != 0 and tasks["check_bronze"]["state"] == "failed"
    assert tasks["check_bronze"]["try_number"] == 1
    assert tasks["cleanup"]["state"] == "success"
    text = (tmp_path / "feb.log").read_text()
    assert "2016-02: " in text and "01_bronze/bts/2016/02.csv is not in the lake" in text
    assert "https://transtats.bts.gov/PREZIP/" in text


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_a_yearly_run_waits_while_a_monthly_run_is_in_progress(dag_env, lake, tmp_path):  # noqa: F811
    """Both DAGs write the same warehouse: the yearly run's check_bronze retries while the
    monthly DAG has a run in progress, and goes on once it has ended."""
    generate_year(2016, rows=20_000, seed=5, lake=Lake(str(lake)), airports=20, fmt="bts",
                  months={1})
    env = dag_env(connection=False)
    env["LAKEHOUSE_BTS_FIRST_MONTH"] = "2016-01"
    month_log, year_log = tmp_path / "month.log", tmp_path / "year.log"
    with open(month_log, "w") as out:
        monthly = subprocess.Popen([airflow_local.airflow_bin(), "dags", "test", DAG,
                                    "2016-02-01"], env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 600
        while "starting task_id=load_staging " not in month_log.read_text(errors="replace"):
            assert monthly.poll() is None and time.time() < deadline, month_log.read_text()[-3000:]
            time.sleep(0.5)
        # 2099 is not in the lake: once the wait is over, the bronze check fails as usual.
        code, tasks = airflow_local.run_dag(env, {"year": 2099}, year_log)
        assert monthly.wait(timeout=900) == 0, month_log.read_text()[-3000:]
    finally:
        if monthly.poll() is None:
            monthly.kill()
    assert code != 0 and tasks["check_bronze"]["state"] == "failed"
    assert tasks["check_bronze"]["try_number"] >= 2
    text = year_log.read_text()
    assert "bts_monthly_pipeline has a run in progress" in text
    assert "01_bronze/2099.csv does not exist in the lake" in text
