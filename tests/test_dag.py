"""The etl_ml_pipeline DAG: it parses, it is wired as designed, and real runs of it (Airflow's
`dags test` in a subprocess, real Postgres, a real lake, real dbt through Cosmos, the real
scorer) land reconciled tables, are idempotent, and fail loudly on a missing bronze file."""

from __future__ import annotations

import csv
import datetime as dt
import io
import itertools
import json
import math
import re
from collections import defaultdict
from pathlib import Path

import psycopg
import pytest

from devtools import airflow_local
from lakehouse.airflow_support import cleanup_run, lake_years, resolve_year
from lakehouse.errors import UserError
from lakehouse.lake import Lake, bronze_key, gold_key, silver_key

YEAR = 2016
ROWS = 150_000  # > one 4 MB loader block, and enough traffic per airport-day to score


@pytest.fixture(scope="session")
def manifest(tmp_path_factory) -> Path:
    return airflow_local.dbt_parse(tmp_path_factory.mktemp("dbt-target"))


@pytest.fixture(scope="session")
def airflow_home(tmp_path_factory, manifest) -> Path:
    home = tmp_path_factory.mktemp("airflow")
    airflow_local.prepare_home(_env(home, manifest, pg_env={}))
    return home


def _env(home: Path, manifest: Path, pg_env: dict[str, str], connection: bool = True) -> dict[str, str]:
    env = airflow_local.airflow_env(home, pg_env=pg_env)
    env["LAKEHOUSE_DBT_MANIFEST"] = str(manifest)
    if not connection:
        env.pop("AIRFLOW_CONN_WAREHOUSE")
    return env


@pytest.fixture
def dag_env(airflow_home, manifest, pg_env, lake):
    """The subprocess environment of a DAG run: this test's database and lake."""
    return lambda connection=True: _env(airflow_home, manifest, pg_env, connection)


# --- parsing and wiring ------------------------------------------------------------------

@pytest.fixture(scope="session")
def report(airflow_home, manifest):
    return airflow_local.check_dag(_env(airflow_home, manifest, pg_env={}))


def test_dag_imports_without_errors_and_parses_fast(report):
    assert report["import_errors"] == {}
    seconds = report["file_seconds"]["etl_ml_pipeline.py"]
    print(f"etl_ml_pipeline.py parsed in {seconds:.2f} s (DagBag total {report['dagbag_seconds']:.2f} s)")
    # Rendering from the manifest keeps parsing well under the dag-processor's 30 s timeout.
    assert seconds < 10


def _ancestors(tasks: dict, task_id: str) -> set[str]:
    seen, todo = set(), list(tasks[task_id]["upstream"])
    while todo:
        t = todo.pop()
        if t not in seen:
            seen.add(t)
            todo += tasks[t]["upstream"]
    return seen


def test_tasks_are_wired_in_order(report):
    tasks = report["tasks"]
    dbt = {t for t in tasks if t.startswith("dbt_transform.")}
    # Cosmos rendered the dbt models and the seed, each as one `dbt build` (the model, then its
    # tests): a test spanning two models runs in the build of the later one (indirect
    # selection `buildable`), so no test has a task of its own.
    assert dbt == {"dbt_transform.airports_seed_build", "dbt_transform.stg_flights_model_build",
                   "dbt_transform.flights_duplicates_model_build",
                   "dbt_transform.flights_model_build", "dbt_transform.flights_rejected_model_build",
                   "dbt_transform.agg_dep_delay_by_date_model_build"}
    assert {t for t in tasks if t.startswith("dbt_ml.")} == {
        "dbt_ml.daily_delay_anomalies_model_build", "dbt_ml.anomaly_carrier_share_model_build",
        "dbt_ml.airport_year_anomalies_model_build", "dbt_ml.daily_detector_flags_model_build"}
    all_dbt = [t for t in tasks if t.startswith(("dbt_transform.", "dbt_ml."))]
    assert {tasks[t]["dbt_indirect_selection"] for t in all_dbt} == {"buildable"}
    # the builds that read sources also select them, so the sources' tests run there
    assert set(tasks["dbt_transform.stg_flights_model_build"]["dbt_select"]) == {
        "stg_flights", "source:staging.flights", "source:staging.load_audit"}
    assert set(tasks["dbt_ml.daily_delay_anomalies_model_build"]["dbt_select"]) == {
        "daily_delay_anomalies", "source:ml.dep_delay_anomalies", "source:ml.model_runs"}
    assert {"dbt_transform.airports_seed_build", "dbt_transform.flights_duplicates_model_build",
            "dbt_transform.stg_flights_model_build"} <= _ancestors(
        tasks, "dbt_transform.flights_model_build")
    assert "dbt_transform.flights_model_build" in _ancestors(
        tasks, "dbt_transform.agg_dep_delay_by_date_model_build")
    assert tasks["check_bronze"]["upstream"] == []
    assert _ancestors(tasks, "load_staging") == {"check_bronze"}
    for t in dbt:
        assert "load_staging" in _ancestors(tasks, t)
    # A production run skips dbt's unit tests (CI runs them): every build excludes them.
    for t in (t for t in tasks if t.endswith("_model_build")):
        assert "resource_type:unit_test" in tasks[t]["dbt_exclude"], t
    # Every dbt task skips writing manifest/run_results JSON and dbt's log file (both would go
    # to the temporary project copy Cosmos deletes), and Cosmos keeps dbt's
    # partial-parse file for each task group, as it configures it (one cache per group).
    assert all(tasks[t]["dbt_flags"] == ["--no-write-json", "--log-level-file", "none"]
               for t in all_dbt), all_dbt
    for group in ("dbt_transform.", "dbt_ml."):
        cache_dirs = {tasks[t]["dbt_cache_dir"] for t in all_dbt if t.startswith(group)}
        assert len(cache_dirs) == 1 and None not in cache_dirs, cache_dirs
    assert len({tasks[t]["dbt_cache_dir"] for t in all_dbt}) == 2
    for t in ("export_lake", "score_anomalies"):
        assert {"dbt_transform.agg_dep_delay_by_date_model_build",
                "dbt_transform.flights_rejected_model_build"} <= _ancestors(tasks, t)
    for t in (t for t in tasks if t.startswith("dbt_ml.")):
        assert "score_anomalies" in _ancestors(tasks, t)
    assert not any(t.startswith("dbt_transform.") and "anomal" in t for t in tasks)
    # The cleanup comes last, runs whatever happened, and does not decide the run's state.
    cleanup = tasks["cleanup"]
    assert cleanup["is_teardown"] and cleanup["trigger_rule"] == "all_done_setup_success"
    assert _ancestors(tasks, "cleanup") == set(tasks) - {"cleanup"}
    assert report["order"][0] == "check_bronze" and report["order"][-1] == "cleanup"


def test_schedule_params_retries_and_assets(report):
    tasks = report["tasks"]
    # Unpaused, no catch-up: a triggered run starts at once and a first start launches nothing;
    # one run at a time, so a backfill's years run oldest first.
    assert report["catchup"] is False and report["is_paused_upon_creation"] is False
    assert report["max_active_runs"] == 1
    assert "2009-2018" in report["schedule"]
    assert report["params"]["year"]["type"] == ["null", "integer"]
    # Every task retries (a PostgreSQL restart or a lake hiccup costs a retry); a missing
    # bronze file fails at once all the same (AirflowFailException: see the missing-file run).
    assert {t: i["retries"] for t, i in tasks.items() if i["retries"] < 2} == {}
    assert tasks["dbt_transform.agg_dep_delay_by_date_model_build"]["outlets"] == [
        "gold.agg_dep_delay_by_date"]
    assert tasks["score_anomalies"]["outlets"] == ["ml.dep_delay_anomalies"]


def test_year_resolution():
    utc = dt.UTC
    scheduled = dt.datetime(2019, 1, 1, tzinfo=utc)
    assert resolve_year({}, scheduled, scheduled) == 2018
    assert resolve_year({"year": None}, scheduled, scheduled) == 2018
    assert resolve_year({"year": 2012}, scheduled, scheduled) == 2012
    assert resolve_year({"year": 2012}, None, dt.datetime(2026, 5, 1, tzinfo=utc)) == 2012
    assert resolve_year({}, None, dt.datetime(2026, 5, 1, tzinfo=utc)) == 2025
    assert lake_years("2009-2011,2015") == [2009, 2010, 2011, 2015]
    with pytest.raises(UserError, match="LAKEHOUSE_YEARS"):
        lake_years("2009-x")


def test_cleanup_removes_half_written_objects_of_its_year_only(tmp_path):
    lake = Lake(str(tmp_path / "lake"))
    published = Path(lake.url) / silver_key(YEAR)
    published.parent.mkdir(parents=True)
    published.write_text("good")
    orphan = published.parent / f".{published.name}.abc123"
    orphan.write_text("half")
    other_year = Path(lake.url) / bronze_key(YEAR + 1)
    other_year.parent.mkdir(parents=True)
    other_orphan = other_year.parent / f".{other_year.name}.zzz"
    other_orphan.write_text("another run's")

    result = cleanup_run("manual__2026-01-01T00:00:00+00:00", YEAR, lake)

    assert not orphan.exists()
    assert published.read_text() == "good" and other_orphan.exists()
    assert result["removed"] == [str(orphan)]


# --- real runs ------------------------------------------------------------------------------

def _add_dirty_lines(path: Path) -> dict:
    """Append what real files carry: an exact duplicate line and a truncated line."""
    with open(path, "rb") as fh:
        fh.readline()
        first = fh.readline()
    with open(path, "ab") as fh:
        fh.write(first)                      # exact duplicate: silver drops it
        fh.write(first[: len(first) // 2].rstrip(b"\n") + b"\n")  # truncated: staging rejects it
    return {"duplicates": 1, "truncated": 1}


def _independent_gold(path: Path) -> dict[str, dict]:
    """The gold aggregates computed straight from the CSV with the standard library."""
    seen: set[str] = set()
    agg: dict[str, dict] = defaultdict(lambda: {"scheduled": 0, "cancelled": 0, "delays": []})
    with open(path, newline="", encoding="utf-8-sig") as fh:
        header = next(csv.reader(io.StringIO(fh.readline())))
        for line in fh:
            fields = next(csv.reader([line]))
            if len(fields) != len(header) or line in seen:
                continue
            seen.add(line)
            row = dict(zip(header, fields))
            key = row["ORIGIN"] + row["FL_DATE"].replace("-", "")
            a = agg[key]
            a["scheduled"] += 1
            if float(row["CANCELLED"]) == 1.0:
                a["cancelled"] += 1
            elif row["DEP_DELAY"] != "":
                a["delays"].append(float(row["DEP_DELAY"]))
    return agg


def _snapshot(conn: psycopg.Connection, year: int) -> dict:
    def rows(query):
        return conn.execute(query, (year,)).fetchall()

    return {
        "staging": rows("select count(*) from staging.flights where year = %s"),
        "silver": rows("select count(*) from silver.flights where year = %s"),
        "gold": rows("select id, flights, scheduled_flights, cancelled_flights, mean_dep_delay "
                     "from gold.agg_dep_delay_by_date where year = %s order by id"),
        "anomalies": rows("select id, is_anomaly, model_version from ml.dep_delay_anomalies "
                          "where year = %s order by id"),
    }


def _assert_all_succeeded(code: int, tasks: dict, log: Path) -> None:
    failed = {t: i["state"] for t, i in tasks.items() if i["state"] != "success"}
    assert code == 0 and not failed, f"DAG run failed: {failed}; log: {log}"


@pytest.mark.slow
def test_full_run_lands_reconciled_tables_and_reruns_identically(dag_env, manifest, pg_conn, lake,
                                                                 tmp_path):
    from loaders.generate import generate_year

    generate_year(YEAR, rows=ROWS, seed=7, lake=Lake(str(lake)))
    bronze = lake / bronze_key(YEAR)
    dirty = _add_dirty_lines(bronze)

    log = tmp_path / "run1.log"
    code, tasks = airflow_local.run_dag(dag_env(connection=True), {"year": YEAR}, log)
    _assert_all_succeeded(code, tasks, log)
    assert any(t.startswith("dbt_transform.") for t in tasks) and "cleanup" in tasks
    # Every data test of the project ran inside some task's `dbt build`, and passed.
    data_tests = {n["name"] for n in json.loads(manifest.read_text())["nodes"].values()
                  if n["resource_type"] == "test"}
    passed = set(re.findall(r"\d+ of \d+ PASS (\w+) ", log.read_text()))
    assert len(data_tests) > 30 and data_tests - passed == set()

    # staging: every line accounted for
    read, loaded, rejected = pg_conn.execute(
        "select lines_read, rows_loaded, rows_rejected from staging.load_audit where year = %s "
        "order by started_at desc limit 1", (YEAR,)).fetchone()
    assert read == ROWS + dirty["duplicates"] + dirty["truncated"]
    assert loaded + rejected == read and rejected == dirty["truncated"]
    staged = pg_conn.execute("select count(*) from staging.flights where year = %s", (YEAR,)).fetchone()[0]
    assert staged == loaded
    silver = pg_conn.execute("select count(*) from silver.flights where year = %s", (YEAR,)).fetchone()[0]
    assert silver == loaded - dirty["duplicates"]

    # gold: equal to an independent computation on the CSV
    expected = _independent_gold(bronze)
    gold = {r[0]: r[1:] for r in pg_conn.execute(
        "select id, flights, scheduled_flights, cancelled_flights, mean_dep_delay "
        "from gold.agg_dep_delay_by_date where year = %s", (YEAR,))}
    assert set(gold) == set(expected)
    for key, (flights, scheduled, cancelled, mean) in gold.items():
        e = expected[key]
        assert (flights, scheduled, cancelled) == (len(e["delays"]), e["scheduled"], e["cancelled"]), key
        if e["delays"]:
            assert math.isclose(mean, sum(e["delays"]) / len(e["delays"]), rel_tol=1e-9, abs_tol=1e-9)
        else:
            assert mean is None

    # the lake got the Parquet files, the scorer its rows
    lake_obj = Lake(str(lake))
    assert lake_obj.size(silver_key(YEAR)) > 0 and lake_obj.size(gold_key(YEAR)) > 0
    scored, flagged = pg_conn.execute(
        "select count(*), count(*) filter (where is_anomaly) from ml.dep_delay_anomalies "
        "where year = %s", (YEAR,)).fetchone()
    assert scored == len(gold) and 0 < flagged < scored
    assert pg_conn.execute("select count(*) from ml.model_runs where year = %s", (YEAR,)).fetchone()[0] == 1

    first = _snapshot(pg_conn, YEAR)
    # The same year again, this time with the warehouse from the PG* variables (no connection):
    # one configuration story, same rows.
    log2 = tmp_path / "run2.log"
    code, tasks = airflow_local.run_dag(dag_env(connection=False), {"year": YEAR}, log2)
    _assert_all_succeeded(code, tasks, log2)
    assert _snapshot(pg_conn, YEAR) == first
    assert pg_conn.execute("select count(*) from staging.load_audit where year = %s", (YEAR,)).fetchone()[0] == 2


@pytest.mark.slow
def test_missing_bronze_fails_first_task_naming_the_object_and_cleans_up(dag_env, lake, tmp_path):
    missing = YEAR + 1
    log = tmp_path / "missing.log"
    code, tasks = airflow_local.run_dag(dag_env(connection=False), {"year": missing}, log)

    assert code != 0
    assert tasks["check_bronze"]["state"] == "failed"
    assert tasks["check_bronze"]["try_number"] == 1  # no retries: waiting does not make a file appear
    assert tasks["cleanup"]["state"] == "success"
    others = {t: i["state"] for t, i in tasks.items() if t not in ("check_bronze", "cleanup")}
    assert others and set(others.values()) == {"upstream_failed"}
    text = log.read_text()
    assert f"{lake / bronze_key(missing)} does not exist in the lake" in text
    assert "python -m loaders ingest PATH" in text
    assert f"python -m loaders generate --year {missing}" in text


# --- backfill -------------------------------------------------------------------------------

BACKFILL_YEARS = [2010, 2011, 2012]
BACKFILL_ROWS = 15_000


def _year_rows(conn: psycopg.Connection, table: str, year: int, skip=("run_id", "scored_at")) -> list:
    """Every row of a year, every column except `skip`, in id order (columns read from the
    live table, so columns added later are compared too)."""
    schema, name = table.split(".")
    cols = [r[0] for r in conn.execute(
        "select column_name from information_schema.columns where table_schema = %s and "
        "table_name = %s order by ordinal_position", (schema, name)) if r[0] not in skip]
    query = psycopg.sql.SQL("select {} from {}.{} where year = %s order by id").format(
        psycopg.sql.SQL(", ").join(map(psycopg.sql.Identifier, cols)),
        psycopg.sql.Identifier(schema), psycopg.sql.Identifier(name))
    # Floats to 12 significant digits: a float aggregate such as gold's stddev_samp sums in
    # whatever order the (parallel) plan reads the rows, so its last bits vary between builds.
    return [tuple(float(f"{v:.12g}") if isinstance(v, float) else v for v in row)
            for row in conn.execute(query, (year,)).fetchall()]


@pytest.mark.slow
@pytest.mark.timeout(3600)  # five DAG runs and a re-scoring: ~10 min on a quiet machine
def test_backfill_runs_years_in_order_skips_finished_ones_and_reruns_identically(
        pg_conn, lake, manifest, tmp_path, monkeypatch):
    from loaders.generate import generate_year

    for year in BACKFILL_YEARS:
        generate_year(year, rows=BACKFILL_ROWS, seed=year, lake=Lake(str(lake)))
    monkeypatch.setenv("LAKEHOUSE_DBT_MANIFEST", str(manifest))
    home = tmp_path / "airflow"

    # A missing year after the three stops the backfill at its bronze check; the year after
    # it is not run.
    missing = BACKFILL_YEARS[-1] + 1
    results = airflow_local.backfill([*BACKFILL_YEARS, missing, missing + 1], home=home)
    assert [(r["year"], r["status"]) for r in results] == [
        *((y, "succeeded") for y in BACKFILL_YEARS), (missing, "failed")], results
    assert results[-1]["failed_task"] == "check_bronze"
    assert "python -m loaders ingest PATH" in results[-1]["error"]
    # and its task log sits where the UI's Logs tab reads it
    log = airflow_local.task_log_path(home / "logs", results[-1]["run_id"], "check_bronze", 1)
    assert "python -m loaders ingest PATH" in log.read_text()
    # oldest first, one at a time: each year was scored after the one before had finished
    runs = pg_conn.execute("select year, started_at, finished_at from ml.model_runs "
                           "order by started_at").fetchall()
    assert [r[0] for r in runs] == BACKFILL_YEARS
    assert all(a[2] <= b[1] for a, b in itertools.pairwise(runs))
    before = {y: {t: _year_rows(pg_conn, t, y) for t in ("gold.agg_dep_delay_by_date",
                                                          "ml.dep_delay_anomalies")}
              for y in BACKFILL_YEARS}
    assert all(before[y]["gold.agg_dep_delay_by_date"] and before[y]["ml.dep_delay_anomalies"]
               for y in BACKFILL_YEARS)

    # A second backfill redoes nothing finished ...
    again = airflow_local.backfill(BACKFILL_YEARS, home=home)
    assert [r["status"] for r in again] == ["skipped"] * len(BACKFILL_YEARS)
    assert pg_conn.execute("select count(*) from ml.model_runs").fetchone()[0] == len(BACKFILL_YEARS)

    # ... unless forced: the middle year again leaves gold and the anomalies identical.
    middle = BACKFILL_YEARS[1]
    forced = airflow_local.backfill([middle], force=True, home=home)
    assert [(r["year"], r["status"]) for r in forced] == [(middle, "succeeded")], forced
    assert pg_conn.execute("select count(*) from ml.model_runs where year = %s",
                           (middle,)).fetchone()[0] == 2
    after = {y: {t: _year_rows(pg_conn, t, y) for t in before[y]} for y in BACKFILL_YEARS}
    assert after == before

    # Re-scoring the range after the backfill, oldest first, gives the same anomalies too: each
    # year already saw the history it sees now.
    import subprocess
    import sys

    rescore = subprocess.run([sys.executable, "-m", "ml", "score", "--years",
                              f"{BACKFILL_YEARS[0]}-{BACKFILL_YEARS[-1]}", "--json"],
                             capture_output=True, text=True, check=False, cwd=airflow_local.REPO)
    assert rescore.returncode == 0, rescore.stderr
    assert [json.loads(line)["year"] for line in rescore.stdout.splitlines()] == BACKFILL_YEARS
    assert {y: {t: _year_rows(pg_conn, t, y) for t in before[y]} for y in BACKFILL_YEARS} == before


@pytest.mark.slow
def test_postgres_restart_mid_run_costs_a_retry_not_the_run(airflow_home, manifest, tmp_path,
                                                             monkeypatch):
    """Stop the warehouse while a dbt task runs, start it again once that attempt has failed:
    the task's retry succeeds and so does the run."""
    import subprocess
    import time

    from conftest import throwaway_cluster

    from devtools import localdb
    from loaders.generate import generate_year

    lake_dir = tmp_path / "lake"
    lake_dir.mkdir()
    monkeypatch.setenv("LAKE_URL", str(lake_dir))
    generate_year(YEAR, rows=20_000, seed=3, lake=Lake(str(lake_dir)))
    victim = "dbt_transform.flights_model_build"
    with throwaway_cluster("lakehouse-test-restart-") as cluster:
        env = _env(airflow_home, manifest, pg_env=cluster.env(), connection=False)
        env["LAKE_URL"] = str(lake_dir)
        log = tmp_path / "restart.log"
        with open(log, "w") as out:
            proc = subprocess.Popen([airflow_local.airflow_bin(), "dags", "test", "etl_ml_pipeline",
                                     "-c", json.dumps({"year": YEAR})], env=env, stdout=out,
                                    stderr=subprocess.STDOUT)
        base = cluster.data_dir.parent
        stopped = False
        try:
            deadline = time.time() + 600
            # The victim's start is read from the run's own log (`airflow dags test` prints
            # it as the task starts); then the task states through Airflow's CLI, which
            # takes seconds per call, until the attempt on the stopped server has failed.
            while time.time() < deadline and proc.poll() is None and not stopped:
                if f"starting task_id={victim} " in log.read_text(errors="replace"):
                    localdb.stop(base)
                    stopped = True
                time.sleep(0.2)
            while time.time() < deadline and proc.poll() is None and stopped \
                    and not localdb.is_running(cluster):
                states = {t: i["state"] for t, i in airflow_local.last_run_tasks(env).items()}
                if "up_for_retry" in states.values():
                    localdb.start(base)  # once an attempt has failed on the stopped server
            code = proc.wait(timeout=600)
        finally:
            if proc.poll() is None:
                proc.kill()
            if not localdb.is_running(cluster):
                localdb.start(base)
        # each attempt gets its own file where the UI reads it (run_dag does this after a run),
        # and the attempts counted from them
        airflow_local.split_task_logs(airflow_home / "logs", airflow_local.newest_run_id(env), log)
        tasks = airflow_local.last_run_tasks(env)
        assert stopped, f"{victim} was never seen running"
        _assert_all_succeeded(code, tasks, log)
        retried = {t: i for t, i in tasks.items() if i["try_number"] > 1}
        assert retried, "no task needed a retry: the restart was not seen"
        for task_id, info in retried.items():
            first_try = airflow_local.task_log_path(airflow_home / "logs", info["run_id"],
                                                    task_id, 1).read_text()
            assert re.search(r"(?i)connection|server closed|terminating", first_try), first_try[-2000:]
