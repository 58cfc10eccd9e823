"""`dbt docs generate` works offline and `dbt docs serve` serves the site with our models in it."""

from __future__ import annotations

import os
import subprocess
import time

import pytest
import requests

from loaders.generate import generate_year
from loaders.load import load_year
from tests.conftest import free_port
from tests.test_dbt import DBT, PROJECT, dbt, make_dbt_dir

pytestmark = pytest.mark.slow


def test_docs_generate_and_serve(pg_env, lake, tmp_path):
    dbt_dir = make_dbt_dir(tmp_path)
    generate_year(2018, rows=300, seed=1)
    load_year(2018)
    dbt(dbt_dir, "build", year=2018)
    dbt(dbt_dir, "docs", "generate", year=2018)

    port = free_port()
    server = subprocess.Popen(
        [DBT, "docs", "serve", "--project-dir", str(PROJECT),
         "--profiles-dir", str(dbt_dir / "dbt_profiles"), "--target-path", str(dbt_dir / "target"),
         "--log-path", str(dbt_dir / "logs"), "--port", str(port), "--host", "127.0.0.1",
         "--no-browser"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        env={**os.environ, "DO_NOT_TRACK": "1"},
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.time() + 60
        while True:
            try:
                index = requests.get(f"{base}/index.html", timeout=2)
                break
            except requests.ConnectionError:
                if time.time() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.3)
        assert index.status_code == 200 and "dbt" in index.text.lower()
        catalog = requests.get(f"{base}/catalog.json", timeout=10).json()
        tables = {n["metadata"]["schema"] + "." + n["metadata"]["name"]: n
                  for n in catalog["nodes"].values()}
        gold = tables["gold.agg_dep_delay_by_date"]
        assert gold["columns"]["mean_dep_delay"]["type"] == "double precision"
        assert {"silver.flights", "silver.flights_rejected", "silver.stg_flights",
                "gold.airports"} <= tables.keys()
        manifest = requests.get(f"{base}/manifest.json", timeout=10).json()
        exposures = {e["name"] for e in manifest["exposures"].values()}
        assert {"flight_delay_dashboard", "anomaly_scorer"} <= exposures
        model = manifest["nodes"]["model.lakehouse.agg_dep_delay_by_date"]
        assert model["description"] and all(c["description"] for c in model["columns"].values())
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=10)
