"""DAG benchmark: one full etl_ml_pipeline run vs `psql \\copy` vs the original pipeline.

    .venv/bin/python bench/bench_dag.py [--rows 7200000] [--keep DIR]
        [--arima-airports 4] [--original-rows N] [--skip-original] [--dag-log FILE]

In one run, on one generated year (a temporary local lake, or --keep DIR to reuse its file) and
a throw-away database on the server the PG* variables point at (`make bench-dag` starts the
local one):

1. `psql \\copy` of the bronze file into a plain 28-text-column table: the floor for anything
   that lands this file in Postgres;
2. the whole DAG (`airflow dags test etl_ml_pipeline -c '{"year": Y}'` in a subprocess: check,
   load, every dbt model and test through Cosmos, export to Parquet, ML scoring, dbt tag:ml,
   cleanup), timed end to end from outside and per task from Airflow's own records.
   Target: end to end <= 8x the copy time;
3. the original pipeline's approach on the same file (bench/original_pipeline.py: pandas,
   drop-null "cleaning", groupby, its IsolationForest and its per-airport ARIMA grid, to_sql).
   Its ARIMA grid takes hours for a whole year, so it runs on the --arima-airports busiest
   airports and that step is EXTRAPOLATED linearly to all airports (printed as such); with
   --original-rows the other steps are extrapolated linearly by rows too. Target: >= 10x.

The machine may be shared: the load average is printed before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench_load import loadavg, psql_copy_cmd  # the loader bench's copy floor
from scratch import scratch_database, scratch_dir

from devtools import airflow_local
from lakehouse import warehouse
from lakehouse.lake import Lake, bronze_key

YEAR = 2018


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=7_200_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--keep", help="lake folder to use (default: a temp folder, removed)")
    parser.add_argument("--arima-airports", type=int, default=4,
                        help="airports the original's ARIMA grid runs on (then extrapolated)")
    parser.add_argument("--original-rows", type=int, default=None,
                        help="data lines the original reads (default all; else extrapolated)")
    parser.add_argument("--skip-original", action="store_true")
    parser.add_argument("--dag-log", help="keep the DAG run's log (task and dbt output) here")
    args = parser.parse_args()

    env = {**os.environ, **warehouse.apply_env()}
    with (scratch_database("bench_dag") as bench_db, scratch_dir("bench-dag-", args.keep) as tmp,
          scratch_dir("bench-dag-work-") as work):
        _run(args, {**env, "PGDATABASE": bench_db}, tmp, work)


def _timed(cmd: list[str], env: dict[str, str]) -> tuple[float, str]:
    started = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=REPO, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:4])} ... failed: {proc.stderr.strip()[-800:]}")
    return time.perf_counter() - started, proc.stdout


def _run(args, env: dict[str, str], tmp: Path, work: Path) -> None:
    print(f"load average before: {loadavg()}")
    lake = Lake(str(tmp))
    if not lake.exists(bronze_key(YEAR)):
        print(f"generating {args.rows:,} rows into {tmp} ...", flush=True)
        subprocess.run([sys.executable, "-m", "loaders", "generate", "--year", str(YEAR),
                        "--rows", str(args.rows), "--seed", str(args.seed)],
                       env={**env, "LAKE_URL": str(tmp)}, check=True, cwd=REPO,
                       stdout=subprocess.DEVNULL)
    path = str(tmp / bronze_key(YEAR))
    size_mb = os.path.getsize(path) / 1e6
    with open(path, "rb") as fh:
        lines = sum(buf.count(b"\n") for buf in iter(lambda: fh.read(1 << 24), b"")) - 1

    copy_s, _ = _timed(psql_copy_cmd(path), env)
    print(f"psql \\copy of {YEAR}.csv ({lines:,} lines, {size_mb:,.0f} MB): {copy_s:.1f} s "
          f"({lines / copy_s:,.0f} rows/s)")

    home = work / "airflow"
    denv = airflow_local.airflow_env(home, pg_env={k: v for k, v in env.items() if k.startswith("PG")},
                                     base={**env, "LAKE_URL": str(tmp)})
    denv["LAKEHOUSE_DBT_MANIFEST"] = str(airflow_local.dbt_parse(work / "dbt-target", env))
    airflow_local.prepare_home(denv)
    started = time.perf_counter()
    code, tasks = airflow_local.run_dag(denv, {"year": YEAR}, work / "dag.log")
    dag_s = time.perf_counter() - started
    if args.dag_log:
        shutil.copy(work / "dag.log", args.dag_log)
    if code != 0:
        failed = {t: i["state"] for t, i in tasks.items() if i["state"] != "success"}
        shutil.copy(work / "dag.log", "/tmp/bench_dag_failed.log")
        raise SystemExit(f"DAG run failed: {failed} (log copied to /tmp/bench_dag_failed.log)")
    print(f"\nDAG etl_ml_pipeline, end to end: {dag_s:.1f} s = {dag_s / copy_s:.1f}x the copy time "
          f"(target <= 8x)")
    ordered = sorted(tasks.items(), key=lambda kv: kv[1]["start"] or "")
    for task_id, info in ordered:
        print(f"  {info['seconds'] or 0:8.1f} s  {task_id}")
    busy = sum(i["seconds"] or 0 for i in tasks.values())
    dbt = sum(i["seconds"] or 0 for t, i in tasks.items() if t.startswith("dbt_"))
    print(f"  sum of task times {busy:.1f} s (dbt tasks {dbt:.1f} s); Airflow's own overhead "
          f"(process start, DAG parse, scheduling between tasks) {dag_s - busy:.1f} s")

    if args.skip_original:
        print(f"\nload average after: {loadavg()}")
        return
    url = (f"postgresql+psycopg://{env.get('PGUSER', '')}@{env.get('PGHOST')}:{env.get('PGPORT')}/"
           f"{env['PGDATABASE']}")
    cmd = [sys.executable, str(REPO / "bench" / "original_pipeline.py"), "--csv", path,
           "--db-url", url, "--arima-airports", str(args.arima_airports), "--workdir", str(work),
           "--json"]
    if args.original_rows:
        cmd += ["--rows", str(args.original_rows)]
    print(f"\noriginal pipeline on the same file (ARIMA grid on the {args.arima_airports} busiest "
          "airports, extrapolated) ...", flush=True)
    wall, out = _timed(cmd, env)
    orig = json.loads(out.strip().splitlines()[-1])
    for step, secs in orig["steps"].items():
        print(f"  {secs:8.1f} s  {step}")
    scale = lines / orig["rows_read"] if args.original_rows else 1.0
    arima_all = orig["arima_grid_all_airports_seconds"]
    others = (orig["measured_seconds"] - orig["steps"]["arima_grid"]) * scale
    total = others + arima_all
    print(f"  measured {orig['measured_seconds']:.1f} s ({wall:.1f} s with interpreter start); "
          f"ARIMA grid {orig['steps']['arima_grid']:.1f} s for {orig['arima_airports_run']} of "
          f"{orig['airports']} airports -> EXTRAPOLATED {arima_all:,.0f} s for all")
    if scale != 1.0:
        print(f"  read {orig['rows_read']:,} of {lines:,} lines: other steps EXTRAPOLATED x{scale:.1f}")
    print(f"  original, whole year (extrapolated): {total:,.0f} s = {total / 3600:.1f} h")
    print(f"\nours vs original: {total / dag_s:.1f}x faster (target >= 10x); "
          f"the original's steps other than the ARIMA grid take {others:.0f} s, "
          f"ours {dag_s / others:.1f}x that (typed casts, dedup, rejects, tests, Parquet, ML)")
    print(f"\nload average after: {loadavg()}")


if __name__ == "__main__":
    main()
