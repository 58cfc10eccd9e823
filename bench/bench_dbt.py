"""dbt benchmark: `dbt build` vs the same SQL run by hand, and the cost of adding a year.

    .venv/bin/python bench/bench_dbt.py [--rows 7200000]

In one run, in a throw-away database on the server the PG* variables point at (`make
bench-dbt` starts the local one) and a temporary local lake:

1. generate and load year A (not timed here: bench_load.py covers it);
2. `dbt build --vars '{year: A}'`: seed, staging view, silver.flights_duplicates,
   silver.flights, silver.flights_rejected, gold.agg_dep_delay_by_date, and every data, unit
   and reconciliation test;
3. the limit: the same SELECTs (dbt's compiled SQL: the casts, the deduplication, the reject
   split and the aggregation) run by hand as plain CREATE TABLE AS, no dbt, no tests;
4. generate and load year B, then `dbt build --vars '{year: B}'`: one partition per year, so
   year A is not rebuilt and B should cost about what A did;
5. rebuild A again (its partition replaced in a table that holds two).

Prints wall times, dbt's own split (models vs tests, from run_results.json) and the ratios.
The machine may be shared: the load average is printed before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from scratch import scratch_database, scratch_dir

from lakehouse import warehouse
from lakehouse.lake import Lake
from loaders.generate import generate_year
from loaders.load import load_year

PROJECT = REPO / "dbt_project"
DBT = str(Path(sys.executable).parent / "dbt")
YEAR_A, YEAR_B = 2016, 2017


def run_dbt(work: Path, *args: str) -> tuple[float, dict]:
    cmd = [DBT, *args, "--project-dir", str(PROJECT), "--profiles-dir", str(work),
           "--target-path", str(work / "target"), "--log-path", str(work / "logs")]
    if args[0] == "build":
        cmd += ["--exclude", "tag:ml"]  # the ML views read ml.*, which exists after scoring
    started = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False,
                          env={**os.environ, "DO_NOT_TRACK": "1"})
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        sys.exit(f"error: {' '.join(args)} failed:\n{proc.stdout[-4000:]}")
    split = {"model": 0.0, "test": 0.0, "unit_test": 0.0, "seed": 0.0}
    if (work / "target" / "run_results.json").exists() and args[0] == "build":
        results = json.loads((work / "target" / "run_results.json").read_text())
        for r in results["results"]:
            kind = r["unique_id"].split(".")[0]
            split[kind] = split.get(kind, 0.0) + r["execution_time"]
    return seconds, split


def hand_sql(work: Path, year: int) -> str:
    """dbt's compiled SELECTs, wrapped in plain CREATE TABLE AS into a schema of their own."""
    compiled = work / "target" / "compiled" / "lakehouse" / "models"
    duplicates = (compiled / "silver" / "flights_duplicates.sql").read_text()
    silver = (compiled / "silver" / "flights.sql").read_text()
    rejected = (compiled / "silver" / "flights_rejected.sql").read_text()
    gold = (compiled / "gold" / "agg_dep_delay_by_date.sql").read_text()
    gold = re.sub(r'"[^"]+"\."silver"\."flights"', "hand.flights", gold)
    assert "hand.flights" in gold, "compiled gold SQL does not read silver.flights any more"
    # What silver.flights' build tries first (create_table_as_plain_casts_first) and keeps for a
    # year whose values all parse, as the generated years do: the plain-cast path.
    return (f"drop schema if exists hand cascade; create schema hand;\n"
            f"set datestyle = 'ISO, MDY'; set lakehouse.plain_casts = 'on';\n"
            f"set parallel_tuple_cost = 0.001; set work_mem = '256MB';\n"
            f"create table hand.flights_duplicates as {duplicates};\n"
            f"create table hand.flights as {silver};\n"
            f"create table hand.flights_rejected as {rejected};\n"
            f"create table hand.agg_dep_delay_by_date as {gold};\n")


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=7_200_000)
    args = parser.parse_args()

    warehouse.apply_env()
    with scratch_database("bench_dbt") as dbname, scratch_dir("bench-dbt-") as work:
        shutil.copy(REPO / "profiles.yml.example", work / "profiles.yml")
        lake_dir = work / "lake"
        os.environ.update({"LAKE_URL": str(lake_dir), "PGDATABASE": dbname})
        print(f"bench_dbt: {args.rows:,} rows per year, database {dbname}, "
              f"load average {load_average()}", flush=True)
        _run(args, work, lake_dir)


def _run(args, work: Path, lake_dir: Path) -> None:
    lake = Lake(str(lake_dir))
    generate_year(YEAR_A, rows=args.rows, seed=1, lake=lake)
    load_year(YEAR_A, lake=lake)

    first, split_a = run_dbt(work, "build", "--vars", f"{{year: {YEAR_A}}}")
    print(f"dbt build year A (first build, CREATE TABLE AS path): {first:8.1f} s  "
          f"(models {split_a['model']:.1f} s, data tests {split_a['test']:.1f} s, "
          f"unit tests {split_a['unit_test']:.1f} s, seed {split_a['seed']:.1f} s)", flush=True)

    script = hand_sql(work, YEAR_A)
    with warehouse.connect(autocommit=True) as conn:
        started = time.perf_counter()
        conn.execute(script)
        hand = time.perf_counter() - started
        hand_rows = conn.execute("select count(*) from hand.flights").fetchone()[0]
        dbt_rows = conn.execute("select count(*) from silver.flights").fetchone()[0]
        assert hand_rows == dbt_rows, (hand_rows, dbt_rows)
        conn.execute("drop schema hand cascade")
    print(f"hand-written SQL, same SELECTs as CREATE TABLE AS (the limit): {hand:8.1f} s",
          flush=True)

    generate_year(YEAR_B, rows=args.rows, seed=2, lake=lake)
    load_year(YEAR_B, lake=lake)
    second, split_b = run_dbt(work, "build", "--vars", f"{{year: {YEAR_B}}}")
    print(f"dbt build year B (A kept): {second:8.1f} s  "
          f"(models {split_b['model']:.1f} s, data tests {split_b['test']:.1f} s)", flush=True)
    again, split_again = run_dbt(work, "build", "--vars", f"{{year: {YEAR_A}}}")
    print(f"dbt build year A again (replaces A, B kept): {again:8.1f} s  "
          f"(models {split_again['model']:.1f} s, data tests {split_again['test']:.1f} s)",
          flush=True)

    print(f"ratio dbt build / hand-written SQL (year A): {first / hand:.2f}x  (target <= 2x)")
    print(f"ratio dbt models only / hand-written SQL:     {split_a['model'] / hand:.2f}x")
    print(f"ratio year B / year A (adding a year):        {second / first:.2f}x  (target <= 1.2x)")
    print(f"ratio rebuild A / first A:                    {again / first:.2f}x")
    print(f"load average after: {load_average()}")


if __name__ == "__main__":
    main()
