"""`make backfill FROM=2019-01 TO=2019-03` (airflow_local.backfill over months): each month a
real run of bts_monthly_pipeline, oldest first, finished months skipped, stopping at a month
the lake does not hold."""

from __future__ import annotations

import argparse

import pytest

from devtools import airflow_local
from devtools.airflow_local import _months, _period_arg, _period_of_run, period_label
from lakehouse.lake import Lake
from loaders.generate import generate_year
from tests.test_dag import manifest  # noqa: F401  (a fixture)


def test_periods_parse_and_expand():
    assert _period_arg("2009") == 2009 and _period_arg("2019-01") == (2019, 1)
    assert _period_arg("2019-12") == (2019, 12)
    for bad in ("2019-13", "2019-00", "19-01", "2019/01"):
        with pytest.raises(argparse.ArgumentTypeError, match="BTS month such as 2019-01"):
            _period_arg(bad)
    with pytest.raises(argparse.ArgumentTypeError, match="FROM/TO must be between 1987 and 2100"):
        _period_arg("1492")
    assert _months((2018, 11), (2019, 2)) == [(2018, 11), (2018, 12), (2019, 1), (2019, 2)]
    assert _period_of_run('{"year": 2019, "month": 3}', None) == (2019, 3)
    assert _period_of_run('{"year": 2019, "month": null}', None) == 2019
    assert _period_of_run(None, "2019-01-01T00:00:00") == 2018
    # bts_monthly_pipeline: a scheduled run (no conf) processes the month it is dated
    assert _period_of_run({}, "2019-03-01T00:00:00+00:00", monthly=True) == (2019, 3)
    assert _period_of_run({"year": 2016, "month": 1}, "2026-12-07T06:00:00+00:00",
                          monthly=True) == (2016, 1)
    assert period_label((2019, 3)) == "2019-03" and period_label(2019) == "2019"


def test_mixed_periods_are_a_clear_error(capsys):
    assert airflow_local.main(["backfill", "--from", "2018", "--to", "2019-03"]) == 2
    assert "both as years (FROM=2009 TO=2018) or both as months" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_backfill_of_months_runs_the_monthly_dag_and_stops_at_a_missing_month(
        pg_conn, lake, manifest, tmp_path, monkeypatch):  # noqa: F811
    generate_year(2016, rows=60_000, seed=4, lake=Lake(str(lake)), airports=20, fmt="bts",
                  months={1, 2})
    monkeypatch.setenv("LAKEHOUSE_DBT_MANIFEST", str(manifest))
    # The monthly calendar starts at 2016-02: January is before the DAG's start_date.
    monkeypatch.setenv("LAKEHOUSE_BTS_FIRST_MONTH", "2016-02")
    home = tmp_path / "airflow"
    results = airflow_local.backfill([(2016, 1), (2016, 2), (2016, 3)], home=home)
    assert [(r["label"], r["status"]) for r in results] == [
        ("2016-01", "succeeded"), ("2016-02", "succeeded"), ("2016-03", "failed")], results
    assert results[2]["failed_task"] == "check_bronze"
    assert "transtats.bts.gov/PREZIP" in (results[2]["error"] or "")
    months = pg_conn.execute("select distinct line_no / 100000000 from staging.flights "
                             "order by 1").fetchall()
    assert months == [(1,), (2,)]
    gold_months = pg_conn.execute(
        "select distinct extract(month from fl_date)::int from gold.agg_dep_delay_by_date "
        "order by 1").fetchall()
    assert gold_months == [(1,), (2,)]
    assert pg_conn.execute("select month from ml.model_runs where status = 'succeeded' "
                           "order by month").fetchall() == [(1,), (2,)]

    # The runs are bts_monthly_pipeline's: February and March dated the first of their month
    # (the scheduler's run of that month), January (before start_date) dated when it ran.
    env = airflow_local.airflow_env(home)
    runs = {r["run_id"]: r for r in airflow_local.dag_runs(env, airflow_local.MONTHLY_DAG_ID)}
    assert set(runs) == {r["run_id"] for r in results}
    by_label = {r["label"]: runs[r["run_id"]] for r in results}
    assert by_label["2016-02"]["logical_date"].startswith("2016-02-01T00:00:00")
    assert by_label["2016-03"]["logical_date"].startswith("2016-03-01T00:00:00")
    assert by_label["2016-01"]["logical_date"][:4] > "2016"
    assert airflow_local.dag_runs(env) == []  # nothing ran through etl_ml_pipeline

    again = airflow_local.backfill([(2016, 1), (2016, 2)], home=home)
    assert [r["status"] for r in again] == ["skipped", "skipped"]
    assert [r["run_id"] for r in again] == [r["run_id"] for r in results[:2]]
    # FORCE re-runs a month: its run of the same date is replaced, not added.
    forced = airflow_local.backfill([(2016, 2)], force=True, home=home)
    assert [r["status"] for r in forced] == ["succeeded"]
    dated_feb = [r for r in airflow_local.dag_runs(env, airflow_local.MONTHLY_DAG_ID)
                 if r["logical_date"].startswith("2016-02-01")]
    assert len(dated_feb) == 1 and dated_feb[0]["state"] == "success"
