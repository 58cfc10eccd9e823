"""`make docs` documents the whole project and stops cleanly: the catalog covers every model,
seed and source (the ML ones included), every column is described and typed, the ml tables
are declared exactly as they are in the warehouse, the dashboard exposure lists every table
the Superset bundle reads, and `make docs-stop` ends the server."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import time
from pathlib import Path

import pytest
import requests
import yaml

from loaders.generate import generate_year
from loaders.load import load_year
from tests.conftest import REPO, free_port
from tests.test_dbt import dbt, make_dbt_dir

pytestmark = pytest.mark.slow

BUNDLE_DATASETS = REPO / "superset" / "bundle" / "datasets"
WAREHOUSE_SCHEMAS = ("staging", "silver", "gold", "ml")


def bundle_relations() -> set[str]:
    """schema.table of everything the Superset bundle's datasets read (physical tables and
    the relations named in virtual datasets' SQL)."""
    found = set()
    for path in sorted(BUNDLE_DATASETS.rglob("*.yaml")):  # Superset exports one folder per database
        dataset = yaml.safe_load(path.read_text())
        if dataset.get("sql"):
            found |= {f"{s}.{t}" for s, t in re.findall(
                r"\b(" + "|".join(WAREHOUSE_SCHEMAS) + r")\.(\w+)", dataset["sql"])}
        else:
            found.add(f"{dataset['schema']}.{dataset['table_name']}")
    return found


def _relation(node: dict) -> str:
    return f"{node['schema']}.{node.get('alias') or node.get('identifier') or node['name']}"


def _markdown_emphasis(text: str) -> list[str]:
    """Unescaped `*` outside code spans, when there are two or more: dbt docs' Markdown renderer
    turns the text between them into italics or bold (`gold.* and ml.*` did)."""
    plain = re.sub(r"`[^`]*`", "", text or "")
    stars = re.findall(r"(?<!\\)\*", plain)
    return stars if len(stars) >= 2 else []


@pytest.fixture
def docs_site(pg_env, lake, tmp_path):
    """A scored year in the warehouse, then `make docs` with private target/pid/log paths."""
    from ml.score import score_year

    dbt_dir = make_dbt_dir(tmp_path)
    generate_year(2018, rows=3000, seed=1)
    load_year(2018)
    dbt(dbt_dir, "build", year=2018)
    score_year(2018)
    dbt(dbt_dir, "run", "--select", "tag:ml", year=2018)

    port = free_port()
    env = {**os.environ, "DO_NOT_TRACK": "1", "DBT_PROFILES_DIR": str(dbt_dir / "dbt_profiles"),
           "DBT_TARGET_PATH": str(dbt_dir / "target"), "DBT_LOG_PATH": str(dbt_dir / "logs")}
    make_vars = [f"DOCS_PORT={port}", f"DOCS_PID={tmp_path / 'docs.pid'}",
                 f"DOCS_LOG={tmp_path / 'docs.log'}"]
    proc = subprocess.run(["make", "-s", "docs", *make_vars], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while True:
            try:
                requests.get(f"{base}/index.html", timeout=2)
                break
            except requests.ConnectionError:
                assert time.time() < deadline, (tmp_path / "docs.log").read_text()
                time.sleep(0.3)
        yield base, dbt_dir / "target", pg_env
    finally:
        stop = subprocess.run(["make", "-s", "docs-stop", *make_vars], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=60, check=False)
    assert stop.returncode == 0, stop.stderr
    assert not (tmp_path / "docs.pid").exists()
    with socket.socket() as s:  # the server is gone: its port is free again
        time.sleep(0.5)
        assert s.connect_ex(("127.0.0.1", port)) != 0


def test_docs_cover_every_model_source_column_and_dashboard_table(docs_site, pg_conn):
    base, target, _ = docs_site
    index = requests.get(f"{base}/index.html", timeout=10)
    assert index.status_code == 200 and "dbt" in index.text.lower()
    # the served files are the ones checked below
    catalog = requests.get(f"{base}/catalog.json", timeout=10).json()
    manifest = requests.get(f"{base}/manifest.json", timeout=10).json()
    assert catalog == json.loads((target / "catalog.json").read_text())

    problems: list[str] = []
    documented = {**{k: v for k, v in manifest["nodes"].items()
                     if v["resource_type"] in ("model", "seed")},
                  **manifest["sources"]}
    catalog_nodes = {**catalog["nodes"], **catalog["sources"]}
    for uid, node in sorted(documented.items()):
        if not (node.get("description") or "").strip():
            problems.append(f"{uid}: no description")
        if node["resource_type"] == "source" and not (node.get("source_description") or "").strip():
            problems.append(f"{uid}: its source has no description")
        if uid not in catalog_nodes:
            problems.append(f"{uid}: not in the catalog (no types): generated without it selected?")
            continue
        live = {c.lower(): v["type"] for c, v in catalog_nodes[uid]["columns"].items()}
        declared = {c.lower(): v for c, v in node["columns"].items()}
        for col in sorted(live.keys() - declared.keys()):
            problems.append(f"{uid}.{col}: in the warehouse, not declared/described")
        for col in sorted(declared.keys() - live.keys()):
            problems.append(f"{uid}.{col}: declared, but not in the warehouse (no type)")
        for col, spec in sorted(declared.items()):
            if not (spec.get("description") or "").strip():
                problems.append(f"{uid}.{col}: no description")
            want = spec.get("data_type")
            if want and col in live and want.lower() != live[col].lower():
                problems.append(f"{uid}.{col}: declared {want}, the warehouse has {live[col]}")
        for text in [node.get("description"), *(c.get("description") for c in declared.values())]:
            if _markdown_emphasis(text):
                problems.append(f"{uid}: description renders {_markdown_emphasis(text)} as emphasis")
    assert problems == [], "\n".join(problems)

    # every model (ML ones included) and every source table is in the catalog
    models = {uid for uid, n in manifest["nodes"].items() if n["resource_type"] == "model"}
    assert "model.lakehouse.daily_delay_anomalies" in models
    assert models | set(manifest["sources"]) <= set(catalog_nodes)

    # The ml sources are declared completely: every live column typed as it is, so a column
    # added to the table without its yml entry fails here.
    for table in ("dep_delay_anomalies", "model_runs", "detectors"):
        live = dict(pg_conn.execute(
            "select column_name, data_type from information_schema.columns "
            "where table_schema = 'ml' and table_name = %s", (table,)).fetchall())
        declared = manifest["sources"][f"source.lakehouse.ml.{table}"]["columns"]
        assert {c: v["data_type"] for c, v in declared.items()} == live, table

    # The dashboard exposure depends on everything the Superset bundle reads.
    relations = {**{_relation(n): uid for uid, n in manifest["nodes"].items()
                    if n["resource_type"] in ("model", "seed")},
                 **{_relation(n): uid for uid, n in manifest["sources"].items()}}
    read = bundle_relations()
    assert {"gold.daily_delay_anomalies", "gold.daily_detector_flags",
            "gold.anomaly_carrier_share", "gold.airport_year_anomalies"} <= read
    assert read <= relations.keys(), read - relations.keys()
    dashboard = manifest["exposures"]["exposure.lakehouse.flight_delay_dashboard"]
    missing = {r for r in read if relations[r] not in dashboard["depends_on"]["nodes"]}
    assert missing == set(), f"the dashboard exposure misses {sorted(missing)}"
    for exposure in manifest["exposures"].values():
        assert exposure["description"].strip() and not _markdown_emphasis(exposure["description"])


def test_emphasis_check_catches_what_dbt_docs_would_italicise():
    assert _markdown_emphasis("Reads gold.* and ml.* as the reader")
    assert not _markdown_emphasis("Reads `gold.*` and `ml.*`; 2 * 3")


def test_makefile_docs_selects_every_model_and_source():
    recipe = (REPO / "Makefile").read_text().split("\ndocs:", 1)[1].split("\n\n", 1)[0]
    assert "docs generate" in recipe and "--select 'fqn:*' 'source:*'" in recipe
    assert Path(REPO / "Makefile").read_text().count("\ndocs-stop:") == 1
