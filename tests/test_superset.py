"""Superset against a warehouse built by the real pipeline, under least-privilege roles.

One module-scoped warehouse in a cluster of its own (the roles are cluster-wide): the roles are
applied first, then a small generated year goes through the real loader (as lakehouse_loader),
dbt (as lakehouse_transform), the anomaly scoring (as lakehouse_ml) and the dbt anomaly view.
Superset is installed from superset/requirements.lock by the same make rule users run, the
bundle is imported by `superset/manage.py start`, and every chart's saved query is fetched
through the REST API as the dashboards would. Takes a few minutes.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg
import pytest
import requests
import yaml

from lakehouse import localdb

REPO = Path(__file__).resolve().parents[1]
SUPERSET_PY = REPO / ".venv-superset" / "bin" / "python"
MANAGE = REPO / "superset" / "manage.py"
BUNDLE = REPO / "superset" / "bundle"
YEAR = 2018

pytestmark = [pytest.mark.slow, pytest.mark.superset]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(cmd: list[str], env: dict[str, str], timeout: int = 900) -> str:
    proc = subprocess.run(cmd, check=False, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


@pytest.fixture(scope="module")
def warehouse():
    """PG* env of a database holding one demo year built by the real pipeline."""
    base = Path(tempfile.mkdtemp(prefix="lakehouse-test-superset-"))
    os.chmod(base, 0o755)
    cluster = localdb.start(base / "pg", port=_free_port())
    try:
        profiles = base / "dbt"
        profiles.mkdir()
        shutil.copy(REPO / "profiles.yml.example", profiles / "profiles.yml")
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("PG")},
            **cluster.env(),
            "LAKE_URL": str(base / "lake"),
            "DBT_PROFILES_DIR": str(profiles),
            "DBT_ROLE": "lakehouse_transform",
            "DO_NOT_TRACK": "1",
        }
        py = sys.executable
        dbt = [str(Path(py).with_name("dbt")), "build", "--project-dir", "dbt_project",
               "--target-path", str(base / "dbt-target"), "--log-path", str(base / "dbt-logs"),
               "--vars", json.dumps({"year": YEAR})]
        _run([py, "-m", "lakehouse.roles", "apply", "--superset-login"], env)
        _run([py, "-m", "loaders", "generate", "--year", str(YEAR), "--rows", "120000"], env)
        _run([py, "-m", "loaders", "load", "--year", str(YEAR)], env)
        _run(dbt + ["--exclude", "tag:ml"], env)
        _run([py, "-m", "ml", "score", "--year", str(YEAR)], env)
        _run(dbt + ["--select", "tag:ml"], env)  # gold.daily_delay_anomalies
        yield env
    finally:
        localdb.destroy(base / "pg")
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def superset(warehouse, tmp_path_factory):
    """A running Superset set up by `superset/manage.py start`; yields (url, admin password)."""
    env = {k: v for k, v in warehouse.items() if not k.startswith("DBT_")}
    _run(["make", "-s", ".venv-superset/.synced"], env, timeout=1800)
    home = tmp_path_factory.mktemp("superset-home")
    env["SUPERSET_HOME"] = str(home)
    port = _free_port()
    started = time.perf_counter()
    out = _run([str(SUPERSET_PY), str(MANAGE), "start", "--port", str(port)], env, timeout=900)
    print(f"superset set-up + import + start: {time.perf_counter() - started:.0f} s")
    url = f"http://127.0.0.1:{port}"
    assert url in out and "admin" in out
    pid = int((home / "superset.pid").read_text())
    try:
        yield url, (home / "admin_password").read_text().strip()
    finally:
        _run([str(SUPERSET_PY), str(MANAGE), "stop"], env)
        with pytest.raises(ProcessLookupError):
            os.killpg(pid, 0)


def _api(url: str, password: str) -> requests.Session:
    s = requests.Session()
    token = s.post(f"{url}/api/v1/security/login", json={
        "username": "admin", "password": password, "provider": "db", "refresh": False,
    }, timeout=30).json()["access_token"]
    s.headers["Authorization"] = f"Bearer {token}"
    s.headers["X-CSRFToken"] = s.get(f"{url}/api/v1/security/csrf_token/", timeout=30).json()["result"]
    s.headers["Referer"] = url
    return s


def test_pipeline_under_least_privilege_owned_its_tables(warehouse):
    with psycopg.connect(host=warehouse["PGHOST"], port=warehouse["PGPORT"],
                         user=warehouse["PGUSER"], dbname=warehouse["PGDATABASE"]) as c:
        owners = dict(c.execute(
            "select n.nspname || '.' || c.relname, pg_get_userbyid(c.relowner) from pg_class c "
            "join pg_namespace n on n.oid = c.relnamespace where c.relname in "
            "('flights', 'agg_dep_delay_by_date', 'dep_delay_anomalies', 'daily_delay_anomalies')"
        ).fetchall())
    assert owners == {
        "staging.flights": "lakehouse_loader",
        "silver.flights": "lakehouse_transform",
        "gold.agg_dep_delay_by_date": "lakehouse_transform",
        "gold.daily_delay_anomalies": "lakehouse_transform",
        "ml.dep_delay_anomalies": "lakehouse_ml",
    }


def test_every_chart_of_the_bundle_returns_rows(superset):
    url, password = superset
    s = _api(url, password)
    charts = s.get(f"{url}/api/v1/chart/", params={"q": "(page_size:100)"}, timeout=30).json()["result"]
    sources = {yaml.safe_load(p.read_text())["slice_name"] for p in (BUNDLE / "charts").glob("*.yaml")}
    assert {c["slice_name"] for c in charts} == sources
    rows = {}
    for chart in charts:
        resp = s.get(f"{url}/api/v1/chart/{chart['id']}/data/", timeout=300)
        assert resp.status_code == 200, f"{chart['slice_name']}: {resp.text[:500]}"
        results = resp.json()["result"]
        rows[chart["slice_name"]] = [r["rowcount"] for r in results]
    print(json.dumps(rows, indent=1))
    empty = {name: counts for name, counts in rows.items() if not all(counts)}
    assert not empty, f"charts without rows: {empty}"


def test_dashboard_has_year_and_airport_filters_on_every_chart(superset):
    url, password = superset
    s = _api(url, password)
    dash = s.get(f"{url}/api/v1/dashboard/flight-delays", timeout=30).json()["result"]
    filters = json.loads(dash["json_metadata"])["native_filter_configuration"]
    assert {f["name"]: f["targets"][0]["column"]["name"] for f in filters} == {
        "Year": "year", "Airport": "origin"}
    dash_charts = s.get(f"{url}/api/v1/dashboard/flight-delays/charts", timeout=30).json()["result"]
    assert len(dash_charts) == len(list((BUNDLE / "charts").glob("*.yaml")))
    # A native filter only narrows a chart whose dataset has the filtered column.
    datasets = s.get(f"{url}/api/v1/dataset/", params={"q": "(page_size:100)"}, timeout=30).json()["result"]
    for ds in datasets:
        detail = s.get(f"{url}/api/v1/dataset/{ds['id']}", timeout=30).json()["result"]
        names = {c["column_name"] for c in detail["columns"]}
        assert {"year", "origin"} <= names, detail["table_name"]


def test_superset_reads_the_warehouse_as_the_read_only_role(superset):
    url, password = superset
    s = _api(url, password)
    db = s.get(f"{url}/api/v1/database/", timeout=30).json()["result"][0]
    conn = s.get(f"{url}/api/v1/database/{db['id']}/connection", timeout=30).json()["result"]
    assert conn["sqlalchemy_uri"].startswith("postgresql+psycopg2://lakehouse_superset@")
    ok = s.post(f"{url}/api/v1/sqllab/execute/", json={
        "database_id": db["id"], "sql": "select count(*) as n from gold.agg_dep_delay_by_date",
        "runAsync": False}, timeout=120)
    assert ok.status_code == 200 and ok.json()["data"][0]["n"] > 0
    denied = s.post(f"{url}/api/v1/sqllab/execute/", json={
        "database_id": db["id"], "sql": "select count(*) from staging.load_audit",
        "runAsync": False}, timeout=120)
    assert "permission denied for schema staging" in denied.text
