"""Query time of every chart of the dashboards, with the SQL Superset itself generates.

    python bench/bench_dashboard.py [--url http://127.0.0.1:8088] [--airport ATL] [--runs 5]

Needs a running Superset (`make superset`) and the warehouse it reads (the PG* variables, e.g.
`eval "$(make -s db-env)"`). For each chart of the national view, and of the one-airport view
filtered to --airport (default: the busiest), it asks Superset for the chart's query
(`POST /api/v1/chart/data` with `result_type: query`, from the chart's saved query context, so
exactly what the dashboard runs), then runs that SQL --runs times as the read-only reader role
after one warm-up, and prints median and worst in ms. Also times the whole round trip through
Superset (`result_type: full`, `force`: no cache). Prints figures; never asserts.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from devtools.superset_api import api_session
from lakehouse.warehouse import connect

SUPERSET_HOME = Path(os.environ.get("SUPERSET_HOME", ".local/superset"))


def _query_context(s: requests.Session, url: str, chart_id: int, filters: list[dict]) -> dict:
    chart = s.get(f"{url}/api/v1/chart/{chart_id}", timeout=30).json()["result"]
    qc = json.loads(chart["query_context"])
    qc["force"] = True
    for q in qc["queries"]:
        q["filters"] = [*q.get("filters", []), *filters]
    return qc


def _time(conn, sql: str, runs: int) -> tuple[float, float]:
    conn.execute(sql).fetchall()  # warm-up, as a dashboard in use would be
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        conn.execute(sql).fetchall()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), max(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=f"http://127.0.0.1:{os.environ.get('SUPERSET_PORT', '8088')}")
    parser.add_argument("--password", default=None,
                        help="admin password (default: SUPERSET_HOME/admin_password)")
    parser.add_argument("--airport", default=None, help="the one-airport view's filter (default: busiest)")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    password = args.password or (SUPERSET_HOME / "admin_password").read_text().strip()
    s = api_session(args.url, password)
    with connect("reader", autocommit=True) as conn:
        airport = args.airport or conn.execute(
            "select origin from gold.daily_delay_anomalies group by origin "
            "order by sum(scheduled_flights) desc limit 1").fetchone()[0]
        views = [("national", "flight-delays", []),
                 (airport, "airport", [{"col": "origin", "op": "IN", "val": [airport]}])]
        print(f"{'view':<10} {'chart':<45} {'SQL median':>10} {'SQL max':>8} {'Superset':>9}  (ms)")
        for view, slug, filters in views:
            charts = s.get(f"{args.url}/api/v1/dashboard/{slug}/charts", timeout=30).json()["result"]
            for chart in sorted(charts, key=lambda c: c["slice_name"]):
                qc = _query_context(s, args.url, chart["id"], filters)
                sql_qc = {**qc, "result_type": "query"}
                resp = s.post(f"{args.url}/api/v1/chart/data", json=sql_qc, timeout=300)
                resp.raise_for_status()
                timings = [_time(conn, r["query"], args.runs) for r in resp.json()["result"]]
                started = time.perf_counter()
                s.post(f"{args.url}/api/v1/chart/data", json=qc, timeout=300).raise_for_status()
                through = (time.perf_counter() - started) * 1000
                median = " / ".join(f"{m:.1f}" for m, _ in timings)
                worst = " / ".join(f"{w:.1f}" for _, w in timings)
                print(f"{view:<10} {chart['slice_name'][:45]:<45} {median:>10} {worst:>8} {through:>9.0f}")


if __name__ == "__main__":
    main()
