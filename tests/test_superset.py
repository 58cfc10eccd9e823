"""Superset against a warehouse built by the real pipeline, under least-privilege roles.

One module-scoped warehouse in a cluster of its own (the roles are cluster-wide): the roles are
applied first, then a generated year shaped like the demo's (the busiest airports only) goes
through the real loader (as lakehouse_loader), dbt (as lakehouse_transform), the anomaly
scoring (as lakehouse_ml) and the dbt anomaly models. Superset is installed from
superset/requirements.lock by the same make rule users run, the bundle is imported by
`superset/manage.py start`, and every chart's saved query is run through the REST API as the
dashboards run it. Takes a few minutes.
"""

from __future__ import annotations

import json
import os
import re
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

from devtools import localdb
from devtools.superset_api import api_session

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
        _run([py, "-m", "loaders", "generate", "--year", str(YEAR), "--rows", "300000",
              "--airports", "20"], env)
        _run([py, "-m", "loaders", "load", "--year", str(YEAR)], env)
        _run(dbt + ["--exclude", "tag:ml"], env)
        _run([py, "-m", "ml", "score", "--year", str(YEAR)], env)
        _run(dbt + ["--select", "tag:ml"], env)  # gold.daily_delay_anomalies, anomaly_carrier_share, airport_year_anomalies
        yield env
    finally:
        localdb.destroy(base / "pg")
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def superset(warehouse, tmp_path_factory):
    """A running Superset set up by `superset/manage.py start`; yields (url, admin password,
    SUPERSET_HOME)."""
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
        yield url, (home / "admin_password").read_text().strip(), home
    finally:
        _run([str(SUPERSET_PY), str(MANAGE), "stop"], env)
        with pytest.raises(ProcessLookupError):
            os.killpg(pid, 0)


def test_pipeline_under_least_privilege_owned_its_tables(warehouse):
    with psycopg.connect(host=warehouse["PGHOST"], port=warehouse["PGPORT"],
                         user=warehouse["PGUSER"], dbname=warehouse["PGDATABASE"]) as c:
        owners = dict(c.execute(
            "select n.nspname || '.' || c.relname, pg_get_userbyid(c.relowner) from pg_class c "
            "join pg_namespace n on n.oid = c.relnamespace where c.relname in "
            "('flights', 'agg_dep_delay_by_date', 'dep_delay_anomalies', 'daily_delay_anomalies', "
            "'anomaly_carrier_share', 'airport_year_anomalies', 'detectors', 'daily_detector_flags')"
        ).fetchall())
    assert owners == {
        "staging.flights": "lakehouse_loader",
        "silver.flights": "lakehouse_transform",
        "gold.agg_dep_delay_by_date": "lakehouse_transform",
        "gold.daily_delay_anomalies": "lakehouse_transform",
        "gold.anomaly_carrier_share": "lakehouse_transform",
        "gold.airport_year_anomalies": "lakehouse_transform",
        "gold.daily_detector_flags": "lakehouse_transform",
        "ml.dep_delay_anomalies": "lakehouse_ml",
        "ml.detectors": "lakehouse_ml",
    }


def test_every_chart_of_the_bundle_returns_rows(superset):
    url, password, _ = superset
    s = api_session(url, password)
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


def _bundle(kind: str) -> dict[str, dict]:
    return {yaml.safe_load(p.read_text())["uuid"]: yaml.safe_load(p.read_text())
            for p in (BUNDLE / kind).rglob("*.yaml")}


def _chart_ids(s: requests.Session, url: str, slug: str) -> dict[str, int]:
    charts = s.get(f"{url}/api/v1/dashboard/{slug}/charts", timeout=30).json()["result"]
    return {c["slice_name"]: c["id"] for c in charts}


def _chart_data(s: requests.Session, url: str, chart_id: int, extra_filters=()) -> list[list[dict]]:
    """The chart's saved query context run through /api/v1/chart/data, with extra filters."""
    chart = s.get(f"{url}/api/v1/chart/{chart_id}", timeout=30).json()["result"]
    qc = json.loads(chart["query_context"])
    qc["force"] = True
    for q in qc["queries"]:
        q["filters"] = [*q.get("filters", []), *extra_filters]
    resp = s.post(f"{url}/api/v1/chart/data", json=qc, timeout=300)
    assert resp.status_code == 200, f"{chart['slice_name']}: {resp.text[:500]}"
    return [r["data"] for r in resp.json()["result"]]


def _busiest(env: dict[str, str]) -> str:
    with psycopg.connect(host=env["PGHOST"], port=env["PGPORT"], user=env["PGUSER"],
                         dbname=env["PGDATABASE"]) as c:
        return c.execute("select origin from gold.agg_dep_delay_by_date group by origin "
                         "order by sum(scheduled_flights) desc limit 1").fetchone()[0]


def test_the_ranked_anomalies_name_the_registrys_detectors(warehouse):
    """The ranked anomalies' "Detectors that agreed" and "Members agreeing" come from the
    registry's rows (gold.daily_detector_flags), not from a list in the dataset: run the
    dataset's SQL as the dashboards' read-only role and compare with the registry."""
    from ml.detectors import DETECTORS

    ranked = next(d for d in _bundle("datasets").values() if d["table_name"] == "anomalies_ranked")
    assert "gold.daily_detector_flags" in ranked["sql"]
    assert not re.search(r"flag_\w+|'seasonal z'|'ARIMA'", ranked["sql"]), "a detector listed by hand"
    labels = {d.label if d.member else f"{d.label} (not counted)" for d in DETECTORS.values()}
    with psycopg.connect(host=warehouse["PGHOST"], port=warehouse["PGPORT"],
                         user=warehouse["PGUSER"], dbname=warehouse["PGDATABASE"]) as c:
        c.execute("set role lakehouse_reader")
        rows = c.execute(f"select id, detectors, members_agreeing from ({ranked['sql']}) r").fetchall()
        flagged = dict(c.execute(
            "select id, count(*) filter (where flagged and is_member) from gold.daily_detector_flags"
            " where id = any(%s) group by id", ([r[0] for r in rows],)).fetchall())
    assert rows, "the demo year has anomalies"
    for id_, detectors, agreeing in rows:
        named = set(detectors.split(", "))
        assert named <= labels, named - labels
        # an anomaly always has a member at strength >= 1 (one strong signal is enough)
        assert agreeing == flagged[id_] >= 1, id_
        assert agreeing == len(named - {lab for lab in labels if lab.endswith("(not counted)")})


def test_airport_dashboard_filter_narrows_every_chart(superset, warehouse):
    url, password, _ = superset
    s = api_session(url, password)
    dash = s.get(f"{url}/api/v1/dashboard/airport", timeout=30).json()["result"]
    filters = {f["name"]: f for f in json.loads(dash["json_metadata"])["native_filter_configuration"]}
    airport = filters["Airport"]
    assert airport["targets"][0]["column"]["name"] == "origin"
    assert not airport["controlValues"]["multiSelect"] and airport["controlValues"]["searchAllOptions"]
    # options listed busiest first; the default is the busiest airport of the data
    assert airport["sortMetric"] == "scheduled_flights_sum"
    assert airport["controlValues"]["sortAscending"] is False
    busiest = _busiest(warehouse)
    assert airport["defaultDataMask"]["filterState"]["value"] == [busiest]
    assert airport["defaultDataMask"]["extraFormData"]["filters"] == [
        {"col": "origin", "op": "IN", "val": [busiest]}]
    assert airport["scope"] == {"rootPath": ["ROOT_ID"], "excluded": []}
    ids = _chart_ids(s, url, "airport")
    assert sorted(airport["chartsInScope"]) == sorted(ids.values())
    narrowed = {}
    for name, chart_id in ids.items():
        everything = _chart_data(s, url, chart_id)
        one = _chart_data(s, url, chart_id, [{"col": "origin", "op": "IN", "val": [busiest]}])
        assert one != everything, f"{name}: the airport filter did not change its data"
        for rows in one:
            for row in rows:
                if "airport_day" in row:
                    assert row["airport_day"].startswith(busiest + " "), (name, row)
        narrowed[name] = [len(r) for r in one]
    print(json.dumps(narrowed, indent=1))


def test_ranked_anomalies_put_days_with_enough_flights_first(superset):
    url, password, _ = superset
    s = api_session(url, password)
    ranked = next(d for d in _bundle("datasets").values() if d["table_name"] == "anomalies_ranked")
    minimum = int(re.search(r"scheduled_flights >= (\d+) AS ranked", ranked["sql"]).group(1))
    assert f"fewer than {minimum} scheduled departures" in ranked["sql"]
    assert f"under {minimum} scheduled departures" in (REPO / "docs" / "superset.md").read_text()
    ids = _chart_ids(s, url, "flight-delays")
    rows = _chart_data(s, url, ids["Anomalies ranked by impact"])[0]
    ranked_rows = [r for r in rows if r["impact_rank"] is not None]
    assert len(ranked_rows) >= 5, "the demo-shaped year should have ranked anomalies"
    assert rows[: len(ranked_rows)] == ranked_rows, "unranked days must come after ranked ones"
    assert all(r["scheduled_flights"] >= minimum for r in ranked_rows)
    assert all(r["scheduled_flights"] < minimum for r in rows[len(ranked_rows):])
    impacts = [float(r["impact_minutes"]) for r in ranked_rows]
    assert impacts == sorted(impacts, reverse=True)
    assert [r["impact_rank"] for r in ranked_rows] == sorted(r["impact_rank"] for r in ranked_rows)
    for r in rows[:10]:
        assert r["detectors"] and r["anomaly_kind"] in ("delay", "cancellation", "both")
        assert r["flights"] is not None and r["expected_band"]
    # the "why": the carrier shares of the top day add up to the whole of its excess delay
    top = ranked_rows[0]["airport_day"]
    why = _chart_data(s, url, ids["Why: carriers' share of the day"],
                      [{"col": "airport_day", "op": "IN", "val": [top]}])[0]
    assert {r["airport_day"] for r in why} == {top} and len(why) >= 2
    if ranked_rows[0]["excess_delay_minutes"] > 0:
        assert sum(r["excess_share"] for r in why) == pytest.approx(1.0)


def _normalised(root: Path) -> dict[str, object]:
    """An export keyed by object uuid, without what only says which Superset wrote it: the
    timestamp, and the ids that Superset gave its objects (in file names, query contexts and
    the dashboards' chart references, which are mapped back to chart uuids)."""
    out = {}
    for path in sorted(root.rglob("*.yaml")):
        doc = yaml.safe_load(path.read_text())
        if path.name == "metadata.yaml":
            doc.pop("timestamp")
            out["metadata"] = doc
            continue
        if doc.get("query_context"):
            qc = json.loads(doc["query_context"])
            qc.pop("datasource", None)
            for key in ("datasource", "slice_id"):
                qc.get("form_data", {}).pop(key, None)
            doc["query_context"] = qc
        if isinstance(doc.get("params"), dict):
            doc["params"].pop("datasource", None)
            doc["params"].pop("slice_id", None)
        if "position" in doc:
            by_id = {}
            for item in doc["position"].values():
                if isinstance(item, dict) and item.get("type") == "CHART":
                    by_id[item["meta"].pop("chartId")] = item["meta"]["uuid"]
            for flt in doc["metadata"].get("native_filter_configuration", []):
                flt["chartsInScope"] = sorted(by_id[i] for i in flt.get("chartsInScope", []))
        out[f"{path.parent.name}/{doc['uuid']}"] = doc
    return out


def test_export_then_import_round_trips_and_restarts_keep_ui_edits(superset, warehouse, tmp_path):
    url, password, home = superset
    env = {k: v for k, v in warehouse.items() if not k.startswith("DBT_")}
    env["SUPERSET_HOME"] = str(home)
    # what this Superset exports after importing the committed bundle is the committed bundle
    _run([str(SUPERSET_PY), str(MANAGE), "export", "--dest", str(tmp_path / "exported")], env)
    exported, committed = _normalised(tmp_path / "exported"), _normalised(BUNDLE)
    assert exported.keys() == committed.keys()
    for key in committed:
        assert exported[key] == committed[key], key

    # an edit made in the UI survives a restart; --force puts the bundle back
    s = api_session(url, password)
    chart_id = _chart_ids(s, url, "flight-delays")["Anomalous airport-days"]
    assert s.put(f"{url}/api/v1/chart/{chart_id}", json={"slice_name": "Edited in the UI"},
                 timeout=30).status_code == 200
    out = subprocess.run([str(SUPERSET_PY), str(MANAGE), "setup"], check=False, cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=900)
    assert out.returncode == 0 and "already imported" in out.stderr, out.stderr[-2000:]
    names = {c["slice_name"] for c in s.get(f"{url}/api/v1/chart/", params={"q": "(page_size:100)"},
                                            timeout=30).json()["result"]}
    assert "Edited in the UI" in names
    api_session(url, password)  # the admin password was not reset by the second start
    _run([str(SUPERSET_PY), str(MANAGE), "setup", "--force"], env)
    names = {c["slice_name"] for c in s.get(f"{url}/api/v1/chart/", params={"q": "(page_size:100)"},
                                            timeout=30).json()["result"]}
    assert "Edited in the UI" not in names and "Anomalous airport-days" in names


def test_superset_reads_the_warehouse_as_the_read_only_role(superset):
    url, password, _ = superset
    s = api_session(url, password)
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
