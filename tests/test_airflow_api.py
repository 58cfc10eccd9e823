"""The Airflow UI/API as a user meets it: a real `airflow standalone` (api-server, scheduler
with the LocalExecutor, dag-processor, triggerer) started by `make airflow`'s own code, the
simple auth manager's login, the DAG listed unpaused, a run triggered through the REST API
with a `year` that starts and succeeds, its task logs served by the API (the UI's Logs tab),
and the Airflow 3 native `airflow backfill create` over two years, run one at a time in order."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
import requests
from conftest import free_port

from devtools import airflow_local
from lakehouse.lake import Lake

YEARS = (2015, 2016)
ROWS = 20_000  # small: the point is the scheduling, not the data
DAG_URL = "/api/v2/dags/etl_ml_pipeline"


@pytest.fixture
def airflow_server(tmp_path, pg_env, lake, monkeypatch):
    from loaders.generate import generate_year

    for year in YEARS:
        generate_year(year, rows=ROWS, seed=year, lake=Lake(str(lake)))
    manifest = airflow_local.dbt_parse(tmp_path / "dbt-target")
    monkeypatch.setenv("LAKEHOUSE_DBT_MANIFEST", str(manifest))
    monkeypatch.setenv("LAKEHOUSE_YEARS", f"{YEARS[0]}-{YEARS[-1]}")
    home = tmp_path / "airflow"
    port = free_port()
    airflow_local.serve(home, port)
    try:
        base_url = f"http://127.0.0.1:{port}"
        yield base_url, airflow_local.admin_password(home), home
    finally:
        airflow_local.stop(home)


def _wait_run(base_url: str, auth: dict, run_id: str, timeout: float = 900) -> dict:
    deadline = time.time() + timeout
    run = {"state": "unknown"}
    while time.time() < deadline:
        try:
            run = requests.get(f"{base_url}{DAG_URL}/dagRuns/{run_id}", headers=auth, timeout=60).json()
        except requests.Timeout:  # an API server starved of CPU by the run it serves
            continue
        if run["state"] in ("success", "failed"):
            return run
        time.sleep(3)
    raise AssertionError(f"run {run_id} still {run['state']} after {timeout:.0f}s")


def _task_states(base_url: str, auth: dict, run_id: str) -> dict[str, tuple[str, int]]:
    tis = requests.get(f"{base_url}{DAG_URL}/dagRuns/{run_id}/taskInstances", headers=auth,
                       params={"limit": 100}, timeout=60).json()["task_instances"]
    return {t["task_id"]: (t["state"], t["try_number"]) for t in tis}


@pytest.mark.slow
@pytest.mark.timeout(3600)  # four runs through a real scheduler
def test_triggered_run_starts_logs_show_and_backfill_runs_years_in_order(airflow_server, pg_conn):
    base_url, password, home = airflow_server
    bad = requests.post(f"{base_url}/auth/token", json={"username": "admin", "password": password + "x"},
                        timeout=60)
    assert bad.status_code == 401
    assert requests.get(f"{base_url}/api/v2/dags", timeout=60).status_code == 401
    token = airflow_local.api_token(base_url, airflow_local.ADMIN_USER, password)
    auth = {"Authorization": f"Bearer {token}"}

    dag = requests.get(f"{base_url}{DAG_URL}", headers=auth, timeout=60).json()
    # Shipped unpaused with catch-up off: a triggered run starts, and nothing starts on its own.
    assert dag["is_paused"] is False
    tasks = requests.get(f"{base_url}{DAG_URL}/tasks", headers=auth, timeout=60).json()["tasks"]
    assert {"check_bronze", "load_staging", "dbt_transform.agg_dep_delay_by_date_model_build",
            "export_lake", "score_anomalies", "cleanup"} <= {t["task_id"] for t in tasks}

    wrong = requests.post(f"{base_url}{DAG_URL}/dagRuns", headers=auth, timeout=60,
                          json={"logical_date": None, "conf": {"year": "twenty"}})
    assert wrong.status_code == 400, wrong.text

    # A paused DAG's runs wait: the documented policy is to trigger with "unpause" ticked.
    assert requests.patch(f"{base_url}{DAG_URL}", headers=auth, json={"is_paused": True},
                          timeout=60).json()["is_paused"] is True
    year = YEARS[-1]
    run = requests.post(f"{base_url}{DAG_URL}/dagRuns", headers=auth, timeout=60,
                        json={"logical_date": None, "conf": {"year": year}})
    assert run.status_code == 200, run.text
    run_id = run.json()["dag_run_id"]
    time.sleep(8)
    assert requests.get(f"{base_url}{DAG_URL}/dagRuns/{run_id}", headers=auth,
                        timeout=60).json()["state"] == "queued"
    assert requests.patch(f"{base_url}{DAG_URL}", headers=auth, json={"is_paused": False},
                          timeout=60).json()["is_paused"] is False

    finished = _wait_run(base_url, auth, run_id)
    states = _task_states(base_url, auth, run_id)
    assert finished["state"] == "success", states
    # every task of the DAG ran and succeeded (the task list comes from the same API)
    assert set(states) == {t["task_id"] for t in tasks}, states
    assert {s for s, _ in states.values()} == {"success"}, states
    assert pg_conn.execute("select count(*) from ml.model_runs where year = %s",
                           (year,)).fetchone()[0] == 1

    # The Logs tab reads this endpoint: the task's own output is there.
    logs = requests.get(f"{base_url}{DAG_URL}/dagRuns/{run_id}/taskInstances/check_bronze/logs/1",
                        headers=auth, params={"full_content": True}, timeout=30)
    assert logs.status_code == 200, logs.text
    events = " ".join(str(line.get("event", "")) for line in logs.json()["content"])
    assert f"year {year}: bronze object" in events, events[:2000]

    # The Airflow 3 native backfill: one run per yearly event in the range, one at a time.
    for _ in range(5):  # the local home's SQLite is shared with the busy scheduler
        proc = subprocess.run(
            [airflow_local.airflow_bin(), "backfill", "create", "--dag-id", "etl_ml_pipeline",
             "--from-date", f"{YEARS[0] + 1}-01-01", "--to-date", f"{YEARS[-1] + 1}-01-01",
             "--max-active-runs", "1"],
            env=airflow_local.airflow_env(home, port=int(base_url.rsplit(":", 1)[1])),
            capture_output=True, text=True, check=False, timeout=300)
        if "database is locked" not in proc.stderr:
            break
        time.sleep(5)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    deadline = time.time() + 1800
    while True:
        try:
            runs = requests.get(f"{base_url}{DAG_URL}/dagRuns", headers=auth, timeout=60,
                                params={"run_type": "backfill", "order_by": "logical_date"}).json()["dag_runs"]
        except requests.Timeout:
            continue
        if len(runs) == len(YEARS) and all(r["state"] in ("success", "failed") for r in runs):
            break
        assert time.time() < deadline, runs
        time.sleep(5)
    assert [r["logical_date"][:10] for r in runs] == [f"{y + 1}-01-01" for y in YEARS]
    assert [r["state"] for r in runs] == ["success"] * len(YEARS), runs
    # in order: the second year started after the first had finished
    assert runs[0]["end_date"] <= runs[1]["start_date"]
    scored = dict(pg_conn.execute("select year, count(*) from ml.model_runs group by year").fetchall())
    assert scored == {YEARS[0]: 1, YEARS[1]: 2}

    # `make backfill` against the running Airflow: both years finished (the native backfill's
    # runs count), so nothing runs again; forced, the year goes through the REST API and the
    # scheduler (an in-process run would collide with this scheduler).
    again = airflow_local.backfill(list(YEARS), home=home)
    assert [(r["year"], r["status"]) for r in again] == [(y, "skipped") for y in YEARS], again
    forced = airflow_local.backfill([YEARS[0]], force=True, home=home)
    assert [(r["year"], r["status"]) for r in forced] == [(YEARS[0], "succeeded")], forced
    assert "ran in the Airflow at" in Path(forced[0]["log"]).read_text()
    via_api = requests.get(f"{base_url}{DAG_URL}/dagRuns/{forced[0]['run_id']}", headers=auth,
                           timeout=60).json()
    assert via_api["triggered_by"] == "rest_api" and via_api["conf"] == {"year": YEARS[0]}
    assert pg_conn.execute("select count(*) from ml.model_runs where year = %s",
                           (YEARS[0],)).fetchone()[0] == 2

    # no run the user did not ask for (catch-up is off)
    every = requests.get(f"{base_url}{DAG_URL}/dagRuns", headers=auth, timeout=60).json()
    assert every["total_entries"] == 1 + len(YEARS) + 1
