"""`python -m ml score` against a real PostgreSQL: DDL, the atomic upsert, re-runs, errors, plot.

Gold is written here from a synthetic frame with the contract's columns, so these tests run in
seconds; tests/test_ml_evaluate.py covers the real generate -> load -> dbt -> score path.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import psycopg
import psycopg.sql
import pytest

from ml import store
from ml.params import Params
from ml.score import score_year
from tests.test_ml_detectors import gold_frame

GOLD_DDL = """
create schema if not exists gold;
create table gold.agg_dep_delay_by_date (
    id text primary key, origin text not null, fl_date date not null, year integer not null,
    flights integer, mean_dep_delay double precision, total_dep_delay double precision,
    scheduled_flights integer, cancelled_flights integer, cancel_rate double precision,
    delayed_15_flights integer, share_delayed_15 double precision
)
"""
COLS = ["id", "origin", "fl_date", "year", "flights", "mean_dep_delay", "scheduled_flights",
        "cancelled_flights", "cancel_rate", "delayed_15_flights"]


def write_gold(conn: psycopg.Connection, frame: pd.DataFrame) -> None:
    with conn.cursor() as cur, cur.copy(
        f"copy gold.agg_dep_delay_by_date ({', '.join(COLS)}) from stdin"
    ) as copy:
        for rec in frame[COLS].itertuples(index=False, name=None):
            copy.write_row(rec)


@pytest.fixture
def gold(pg_conn):
    pg_conn.execute(GOLD_DDL)
    frame = gold_frame(origins=("AAA", "BBB", "CCC"), years=(2017, 2018))
    write_gold(pg_conn, frame)
    return frame


def table(pg_conn, year=None):
    where = "" if year is None else f" where year = {int(year)}"
    return pd.DataFrame(
        pg_conn.execute(f"select * from ml.dep_delay_anomalies{where} order by id").fetchall(),
        columns=list(store.anomaly_columns(pg_conn)),
    )


def test_score_year_upserts_every_airport_day_and_records_the_run(pg_conn, gold):
    summary = score_year(2018, Params(n_jobs=1))
    assert summary["airport_days"] == 3 * 365 and summary["airports"] == 3
    rows = table(pg_conn, 2018)
    assert len(rows) == 3 * 365 and rows["id"].is_unique
    assert (rows["history_status"] == "scored").all()
    assert rows["expected_dep_delay"].notna().all() and rows["cancel_score"].notna().all()
    run = pg_conn.execute("select year, airports, airport_days, anomalies, params->>'seed',"
                          " detector_seconds ? 'arima' from ml.model_runs").fetchall()
    assert run == [(2018, 3, 1095, summary["anomalies"], "42", True)]


def test_rescoring_is_idempotent_and_leaves_other_years_alone(pg_conn, gold):
    score_year(2017, Params(n_jobs=1, history_years=0))
    score_year(2018, Params(n_jobs=1))
    before_2017 = table(pg_conn, 2017)
    first = table(pg_conn, 2018)
    score_year(2018, Params(n_jobs=1))
    second = table(pg_conn, 2018)
    volatile = ["run_id", "scored_at"]
    assert len(second) == len(first) and second["id"].is_unique
    pd.testing.assert_frame_equal(first.drop(columns=volatile), second.drop(columns=volatile))
    assert (first["run_id"] != second["run_id"]).all()
    pd.testing.assert_frame_equal(before_2017, table(pg_conn, 2017))
    assert pg_conn.execute("select count(*) from ml.model_runs").fetchone()[0] == 3


def test_rows_that_left_gold_leave_the_year_on_rescoring(pg_conn, gold):
    score_year(2018, Params(n_jobs=1))
    pg_conn.execute("delete from gold.agg_dep_delay_by_date where origin = 'CCC' and year = 2018")
    score_year(2018, Params(n_jobs=1))
    assert set(table(pg_conn, 2018)["origin"]) == {"AAA", "BBB"}


def test_removing_rows_that_left_gold_never_plans_a_nested_loop(pg_conn, gold):
    # The hazard: a year scored for the first time into an analysed table that holds other
    # years. The planner expected no rows of the year, chose a nested-loop anti join against
    # the temp table and took 40 minutes on 117 k rows. The upsert's own settings avoid it.
    score_year(2017, Params(n_jobs=1, history_years=0))
    pg_conn.execute("analyze ml.dep_delay_anomalies")
    with psycopg.connect(**pg_conn.info.get_parameters()) as conn, conn.transaction():
        conn.execute("create temp table scored (like ml.dep_delay_anomalies) on commit drop")
        conn.execute("insert into scored select * from ml.dep_delay_anomalies")
        conn.execute("update scored set year = 2018, id = origin || to_char(fl_date + 365, "
                     "'YYYYMMDD'), fl_date = fl_date + 365")
        conn.execute("insert into ml.dep_delay_anomalies select * from scored")  # as the upsert
        conn.execute("analyze scored")
        conn.execute("set local enable_nestloop = off")
        delete = store.DELETE_LEFT_GOLD.format(target=psycopg.sql.Identifier(*store.ANOMALY_TABLE))
        plan = "\n".join(r[0] for r in conn.execute(
            psycopg.sql.SQL("explain ") + delete, (2018,)).fetchall())
    assert "Nested Loop" not in plan, plan
    assert "Anti Join" in plan, plan


def test_a_failed_upsert_leaves_the_previous_rows(pg_conn, gold, monkeypatch):
    score_year(2018, Params(n_jobs=1))
    before = table(pg_conn, 2018)

    def boom(conn, run):
        raise RuntimeError("disk full")

    monkeypatch.setattr(store, "record_run", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        score_year(2018, Params(n_jobs=1, delay_z=1.0))  # would change many rows
    pd.testing.assert_frame_equal(before, table(pg_conn, 2018))
    assert pg_conn.execute("select count(*) from ml.model_runs").fetchone()[0] == 1


def test_ddl_is_idempotent(pg_conn):
    with psycopg.connect(**pg_conn.info.get_parameters()) as conn:
        store.ensure_schema(conn)
        store.ensure_schema(conn)
    assert pg_conn.execute("select count(*) from information_schema.tables "
                           "where table_schema = 'ml'").fetchone()[0] == 3


def test_every_registered_detector_has_its_row_and_its_key_on_every_scored_day(pg_conn, gold):
    from ml.detectors import DETECTORS, MEMBERS

    score_year(2018, Params(n_jobs=1))
    registry = pg_conn.execute(
        "select name, label, is_member, evidence_group, params, is_registered"
        " from ml.detectors order by name").fetchall()
    assert [r[0] for r in registry] == sorted(DETECTORS)
    for name, label, is_member, group, params, registered in registry:
        d = DETECTORS[name]
        assert (label, is_member, group, registered) == (d.label, d.member, d.group, True)
        assert params == {p: getattr(Params(n_jobs=1), p) for p in d.reads}
    keys = pg_conn.execute(
        "select count(*), count(*) filter (where not detector_flags ?& %s),"
        " count(*) filter (where not detector_strengths ?& %s),"
        " count(*) filter (where (select count(*) from jsonb_object_keys(detector_flags)) <> %s)"
        " from ml.dep_delay_anomalies where year = 2018",
        (list(DETECTORS), MEMBERS, len(DETECTORS))).fetchone()
    assert keys == (1095, 0, 0, 0)
    # the maps hold what the scorer computed: the ensemble's flags agree with is_anomaly
    assert pg_conn.execute(
        "select count(*) from ml.dep_delay_anomalies where year = 2018 and is_anomaly and not"
        " exists (select 1 from jsonb_each_text(detector_strengths) s"
        "         where s.value::float8 >= 1)").fetchone()[0] == 0
    # a detector that left the registry keeps its row, marked
    pg_conn.execute("insert into ml.detectors (name, label, description, is_member,"
                    " model_version, run_id, updated_at) select 'retired', 'retired', 'gone.',"
                    " false, model_version, run_id, updated_at from ml.detectors limit 1")
    score_year(2018, Params(n_jobs=1))
    assert pg_conn.execute("select is_registered from ml.detectors where name = 'retired'"
                           ).fetchone() == (False,)


def test_an_old_warehouse_with_flag_columns_keeps_them_current(pg_conn, gold):
    from ml.detectors import DETECTORS

    with psycopg.connect(**pg_conn.info.get_parameters()) as conn:
        store.ensure_schema(conn)
    for name in DETECTORS:
        pg_conn.execute(psycopg.sql.SQL(
            "alter table ml.dep_delay_anomalies add column {} boolean not null default false"
        ).format(psycopg.sql.Identifier(f"flag_{name}")))
    score_year(2018, Params(n_jobs=1, delay_z=1.0, delay_min_excess=0.0))
    rows = table(pg_conn, 2018)
    for name in DETECTORS:
        assert (rows[f"flag_{name}"] == rows["detector_flags"].map(lambda m, n=name: m[n])).all()
    assert rows["flag_seasonal_robust"].any()


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "ml", *args], capture_output=True, text=True,
                          check=False, timeout=600)


def test_cli_errors_are_one_line_and_exit_2(pg_env, pg_conn):
    proc = run_cli("score", "--year", "2018")
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0
    assert "gold.agg_dep_delay_by_date does not exist" in proc.stderr and "dbt build" in proc.stderr
    pg_conn.execute(GOLD_DDL)
    proc = run_cli("score", "--year", "2018")
    assert proc.returncode == 2 and "no rows for 2018" in proc.stderr


def test_cli_score_json_and_plot(pg_conn, gold, tmp_path):
    proc = run_cli("score", "--year", "2018", "--json")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["airport_days"] == 1095 and summary["year"] == 2018
    out = tmp_path / "aaa.png"
    proc = run_cli("plot", "--origin", "aaa", "--year", "2018", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 20_000
    proc = run_cli("plot", "--origin", "ZZZ", "--year", "2018")
    assert proc.returncode == 2 and "no scored rows for ZZZ in 2018" in proc.stderr
