"""Month benchmark: one BTS month end to end vs its whole year, vs `psql \\copy` of the month.

    .venv/bin/python bench/bench_month.py [--rows 7200000] [--small-rows 720000] [--month 6]
                                          [--month-runs 3] [--keep DIR]

On a generated year written as twelve BTS monthly files (a temporary local lake) and a
throw-away database on the server the PG* variables point at (`make bench-month` starts the
local one), each step a subprocess of the real command, wall time measured outside it:

1. `python -m loaders ingest` of the month's zip (as TranStats ships it) into a second lake:
   time and the child's peak RSS (the zip is streamed, never extracted);
2. `psql \\copy` of the month's CSV into a plain table of its 110 text columns: the floor
   for landing the month at all;
3. the year: `load --month M` for the twelve months, `dbt build` of year Y,
   `python -m ml score --year Y`;
4. the month again, with the year in place: `load --month M`, `dbt build` of the month,
   `python -m ml score --year Y --month M`: first once, as the first month built into a year
   built whole also lays silver's year out as month partitions (once per year); then
   --month-runs times, what every later month costs: each step's median is the month the
   ratios use (a 2-core VM's neighbours moved one month's load by 40 %).

Every timed step starts on a settled database: VACUUM (ANALYZE), untimed, runs before it, so
autovacuum's work on what the step before wrote does not land in its time (_settle).

dbt gets the period as the DAG gives it, in LAKEHOUSE_BUILD_YEAR/MONTH (the same as
`--vars '{year: Y, month: M}'`, without a full re-parse per period).

The goal (the issue's): a month costs at most 1/8 of the year end to end. The ratio is
printed per step and in total.

Then the same again on a year of --small-rows (a tenth by default), to split each step's
time into what is fixed per run (process start, imports, dbt's start and per-node overhead)
and what grows with the rows: with t = fixed + slope * rows for the year and for the month,
the two sizes give each slope, and month slope / year slope says whether the month's own work
follows the month (1/12 of the year's rows: ~0.083) or the year.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import psycopg

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench_load import loadavg, run_child  # the loader bench's helpers
from scratch import scratch_database, scratch_dir

from lakehouse import warehouse
from lakehouse.lake import bts_bronze_key
from loaders import bts_format

YEAR = 2019
PY = sys.executable
DBT = str(Path(PY).parent / "dbt")


def _timed(cmd: list[str], env: dict[str, str]) -> float:
    _settle(env["PGDATABASE"])
    started = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=REPO, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:6])} ... failed: {(proc.stdout + proc.stderr)[-1500:]}")
    return time.perf_counter() - started


SETTLE_SECONDS = [0.0]


def _settle(dbname: str) -> None:
    """VACUUM (ANALYZE) the bench database, untimed, before each timed step: what the steps
    before it wrote (the year's 1.6 GB of new silver, a month's new partitions) is vacuumed
    now instead of by autovacuum workers in the middle of the next step, which on 2 cores
    share the CPU with it. So each step is timed on its own work, and neither the year nor
    the month pays for vacuuming in the figures (the time spent here is printed apart)."""
    started = time.perf_counter()
    with psycopg.connect(autocommit=True, dbname=dbname) as conn:
        conn.execute("vacuum (analyze)")
    SETTLE_SECONDS[0] += time.perf_counter() - started


def _dbt(work: Path) -> list[str]:
    # The period comes from LAKEHOUSE_BUILD_YEAR/MONTH, as in the DAG: with `--vars` every new
    # period would cost dbt a full re-parse (macros/year_filter.sql)
    return [DBT, "build", "--project-dir", str(REPO / "dbt_project"), "--profiles-dir",
            str(work / "profiles"), "--target-path", str(work / "target"), "--log-path",
            str(work / "logs"),
            # what a DAG run builds, as it builds it: the unit tests check SQL on fixed inputs
            # and run in CI and a plain `dbt build`, not in the DAG's dbt tasks, which write
            # no JSON artifacts and no log file either (dags/etl_ml_pipeline.py)
            "--exclude", "tag:ml", "resource_type:unit_test", "--no-write-json",
            "--log-level-file", "none"]


def psql_copy_month(path: str) -> list[str]:
    cols = ", ".join(f"c{i} text" for i in range(bts_format.FIELDS))
    return ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-c", "begin",
            "-c", f"create table bench_month_copy ({cols})",
            "-c", f"\\copy bench_month_copy from '{path}' with (format csv, header true)",
            "-c", "commit", "-c", "drop table bench_month_copy"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=7_200_000, help="rows of the whole year")
    parser.add_argument("--month", type=int, default=6)
    parser.add_argument("--airports", type=int, default=None)
    parser.add_argument("--small-rows", type=int, default=None,
                        help="rows of the second, smaller year (default: --rows / 10; 0: skip)")
    parser.add_argument("--month-runs", type=int, default=3,
                        help="runs of the month after the first; each step's median counts")
    parser.add_argument("--keep", help="lake folder to use (default: a temp folder, removed)")
    args = parser.parse_args()
    small = args.rows // 10 if args.small_rows is None else args.small_rows

    env = {**os.environ, **warehouse.apply_env(), "DO_NOT_TRACK": "1"}
    results = []
    for rows, keep in [(args.rows, args.keep), *([(small, None)] if small else [])]:
        print(f"== a year of {rows:,} rows", flush=True)
        with (scratch_database("bench_month") as bench_db,
              scratch_dir("bench-month-", keep) as lake, scratch_dir("bench-month-work-") as work):
            results.append(_run(args, rows, {**env, "PGDATABASE": bench_db, "LAKE_URL": str(lake)},
                                lake, work))
    if len(results) == 2:
        print_fixed_and_slopes(*results)


def print_fixed_and_slopes(big: dict, small: dict) -> None:
    """Each step's time split into fixed per run + slope * rows, from the two sizes."""
    d_rows = big["rows_year"] - small["rows_year"]
    d_lines = big["month_lines"] - small["month_lines"]
    print(f"\nfixed per run and per-row cost, from the {big['rows_year']:,}- and "
          f"{small['rows_year']:,}-row years:")
    print(f"{'step':<6} {'year fixed s':>12} {'month fixed s':>13} {'year us/row':>11} "
          f"{'month us/row':>12} {'month slope / year slope':>25}")
    split = {}
    for step in [*big["year_s"], "total"]:
        yb, ys = (r["year_total_s"] if step == "total" else r["year_s"][step] for r in (big, small))
        mb, ms = (r["month_total_s"] if step == "total" else r["month_s"][step]
                  for r in (big, small))
        year_slope, month_slope = (yb - ys) / d_rows, (mb - ms) / d_rows
        split[step] = {"year_fixed_s": round(yb - year_slope * big["rows_year"], 1),
                       "month_fixed_s": round(mb - month_slope * big["rows_year"], 1),
                       "slope_ratio": round(month_slope / year_slope, 3) if year_slope > 0 else None}
        ratio = split[step]["slope_ratio"]
        print(f"{step:<6} {split[step]['year_fixed_s']:>12.1f} {split[step]['month_fixed_s']:>13.1f} "
              f"{year_slope * 1e6:>11.2f} {month_slope * 1e6:>12.2f} "
              f"{'n/a' if ratio is None else f'{ratio:.3f}':>25}")
    print(f"(the month's share of the year's lines: "
          f"{big['month_lines'] / big['rows_year']:.3f}; of the added lines: "
          f"{d_lines / d_rows:.3f})")
    print(json.dumps({"fixed_and_slopes": split}, indent=1))


def _run(args, rows: int, env: dict[str, str], lake: Path, work: Path) -> dict:
    m = args.month
    SETTLE_SECONDS[0] = 0.0
    print(f"load average before: {loadavg()}", flush=True)
    month_csv = lake / bts_bronze_key(YEAR, m)
    if not month_csv.exists():
        cmd = [PY, "-m", "loaders", "generate", "--year", str(YEAR), "--rows", str(rows),
               "--format", "bts"]
        if args.airports:
            cmd += ["--airports", str(args.airports)]
        print(f"generating {rows:,} rows as 12 BTS months into {lake} ...", flush=True)
        print(f"  {_timed(cmd, env):.1f} s", flush=True)
    with open(month_csv, "rb") as fh:
        lines = sum(buf.count(b"\n") for buf in iter(lambda: fh.read(1 << 24), b"")) - 1
    size_mb = month_csv.stat().st_size / 1e6
    (work / "profiles").mkdir()
    shutil.copy(REPO / "profiles.yml.example", work / "profiles" / "profiles.yml")
    result: dict = {"rows_year": rows, "month": m, "month_lines": lines,
                    "month_csv_mb": round(size_mb, 1)}

    archive = work / f"On_Time_Reporting_Carrier_On_Time_Performance_1987_present_{YEAR}_{m}.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.write(month_csv, f"On_Time_Reporting_Carrier_On_Time_Performance_(1987_present)_{YEAR}_{m}.csv")
    wall, rss, _ = run_child([PY, "-m", "loaders", "ingest", str(archive), "--json"],
                             {**env, "LAKE_URL": str(work / "ingest-lake")})
    result["ingest_zip"] = {"seconds": round(wall, 2), "peak_rss_mb": round(rss, 1),
                            "zip_mb": round(archive.stat().st_size / 1e6, 1)}
    print(f"ingest of the month's zip ({result['ingest_zip']['zip_mb']} MB zipped, "
          f"{size_mb:.0f} MB CSV): {wall:.1f} s, peak RSS {rss:.0f} MB", flush=True)

    copy_s = _timed(psql_copy_month(str(month_csv)), env)
    result["psql_copy_month_s"] = round(copy_s, 2)
    print(f"psql \\copy of the month ({lines:,} lines): {copy_s:.1f} s", flush=True)

    year: dict[str, float] = {}
    year["load"] = sum(_timed([PY, "-m", "loaders", "load", "--year", str(YEAR), "--month",
                               str(k)], env) for k in range(1, 13))
    year["dbt"] = _timed(_dbt(work), {**env, "LAKEHOUSE_BUILD_YEAR": str(YEAR)})
    year["score"] = _timed([PY, "-m", "ml", "score", "--year", str(YEAR)], env)
    print(f"year: {json.dumps({k: round(v, 1) for k, v in year.items()})}", flush=True)

    def run_month() -> dict[str, float]:
        month: dict[str, float] = {}
        month["load"] = _timed([PY, "-m", "loaders", "load", "--year", str(YEAR), "--month",
                                str(m)], env)
        month["dbt"] = _timed(_dbt(work), {**env, "LAKEHOUSE_BUILD_YEAR": str(YEAR),
                                           "LAKEHOUSE_BUILD_MONTH": str(m)})
        month["score"] = _timed([PY, "-m", "ml", "score", "--year", str(YEAR), "--month",
                                 str(m)], env)
        return month

    # The first month built into a year built whole lays silver's year out as month
    # partitions, once (docs/dbt.md, year partitions); the monthly pipeline never builds a BTS
    # year whole, so the month that counts is the next one, built as every later month is.
    first = run_month()
    print(f"month, first after the year build (lays the year out by month): "
          f"{json.dumps({k: round(v, 1) for k, v in first.items()})}", flush=True)
    result["first_month_s"] = {k: round(v, 2) for k, v in first.items()}
    runs = [run_month() for _ in range(args.month_runs)]
    for k, run in enumerate(runs, 1):
        print(f"month, run {k}: {json.dumps({step: round(v, 1) for step, v in run.items()})}",
              flush=True)
    month = {step: statistics.median(run[step] for run in runs) for step in runs[0]}
    result["month_runs_s"] = [{step: round(v, 2) for step, v in run.items()} for run in runs]
    print(f"month (median of {len(runs)}): "
          f"{json.dumps({k: round(v, 1) for k, v in month.items()})}", flush=True)
    result["year_s"] = {k: round(v, 2) for k, v in year.items()}
    result["month_s"] = {k: round(v, 2) for k, v in month.items()}
    result["year_total_s"] = round(sum(year.values()), 2)
    result["month_total_s"] = round(sum(month.values()), 2)
    result["ratio_month_to_year"] = {k: round(month[k] / year[k], 3) for k in year}
    result["ratio_total"] = round(result["month_total_s"] / result["year_total_s"], 3)
    result["load_month_vs_psql_copy"] = round(month["load"] / copy_s, 2)
    result["untimed_vacuum_s"] = round(SETTLE_SECONDS[0], 1)
    print(f"VACUUM (ANALYZE) before the timed steps, untimed: {SETTLE_SECONDS[0]:.1f} s in all")
    print(f"load average after: {loadavg()}")
    print(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
