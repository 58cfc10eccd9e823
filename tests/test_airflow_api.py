"""The Airflow UI/API really serves the DAG: a real `airflow api-server` on a free port, the
simple auth manager's login with the password file, the DAG listed, and a run triggered."""

from __future__ import annotations

import os
import signal
import subprocess

import pytest
import requests
from conftest import free_port

from lakehouse import airflow_local


@pytest.fixture
def api_server(tmp_path):
    manifest = airflow_local.dbt_parse(tmp_path / "dbt-target")
    port = free_port()
    env = airflow_local.airflow_env(tmp_path / "airflow", port=port, pg_env={})
    env["LAKEHOUSE_DBT_MANIFEST"] = str(manifest)
    airflow_local.prepare_home(env)
    # What the dag-processor does in a running Airflow: parse the folder, store the DAG.
    subprocess.run([airflow_local.airflow_bin(), "dags", "reserialize"], env=env, check=True,
                   capture_output=True)
    with open(tmp_path / "api-server.log", "wb") as log:
        proc = subprocess.Popen([airflow_local.airflow_bin(), "api-server", "--port", str(port)],
                                env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base_url = f"http://127.0.0.1:{port}"
    try:
        airflow_local.wait_for_api(base_url, timeout=120, proc=proc)
        yield base_url, airflow_local.admin_password(tmp_path / "airflow")
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.mark.slow
def test_api_lists_the_dag_and_accepts_a_run_for_a_year(api_server):
    base_url, password = api_server
    bad = requests.post(f"{base_url}/auth/token", json={"username": "admin", "password": password + "x"},
                        timeout=10)
    assert bad.status_code == 401
    token = airflow_local.api_token(base_url, airflow_local.ADMIN_USER, password)
    auth = {"Authorization": f"Bearer {token}"}
    assert requests.get(f"{base_url}/api/v2/dags", timeout=10).status_code == 401

    dags = requests.get(f"{base_url}/api/v2/dags", headers=auth, timeout=10)
    assert dags.status_code == 200
    listed = {d["dag_id"]: d for d in dags.json()["dags"]}
    assert "etl_ml_pipeline" in listed
    assert listed["etl_ml_pipeline"]["is_paused"] is True  # no surprise catch-up on first start

    tasks = requests.get(f"{base_url}/api/v2/dags/etl_ml_pipeline/tasks", headers=auth, timeout=10)
    task_ids = {t["task_id"] for t in tasks.json()["tasks"]}
    assert {"check_bronze", "load_staging", "dbt_transform.agg_dep_delay_by_date_model_build",
            "export_lake", "score_anomalies", "cleanup"} <= task_ids

    # Triggerable with a year from the UI/API; a non-integer year is refused by the param schema.
    run = requests.post(f"{base_url}/api/v2/dags/etl_ml_pipeline/dagRuns", headers=auth, timeout=10,
                        json={"logical_date": None, "conf": {"year": 2016}})
    assert run.status_code == 200, run.text
    assert run.json()["conf"] == {"year": 2016} and run.json()["state"] == "queued"
    wrong = requests.post(f"{base_url}/api/v2/dags/etl_ml_pipeline/dagRuns", headers=auth, timeout=10,
                          json={"logical_date": None, "conf": {"year": "twenty"}})
    assert wrong.status_code == 400, wrong.text
