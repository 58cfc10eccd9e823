"""Loader benchmark: our loader vs `psql \\copy` (the physical limit) vs the original pandas way.

    .venv/bin/python bench/bench_load.py [--rows 7200000] [--pandas-rows 300000] [--repeat 1]

In one run, on one generated year (a temporary local lake) and a throw-away database on the
server the PG* variables point at (`make bench-load` starts the local one):

1. `psql \\copy` of the file into a plain 28-text-column table created in the same
   transaction (so, like the loader, it skips WAL under wal_level=minimal): the limit;
2. `python -m loaders load` on the same file, and on a quarter-size file (memory must not
   grow with the file);
3. the original pipeline: `pandas.read_csv` of the whole file then `DataFrame.to_sql` through
   SQLAlchemy with default settings. That is far too slow for a full year, so by default it
   runs on the first --pandas-rows lines and its time for the full year is EXTRAPOLATED
   linearly (labelled as such); its memory is measured, not extrapolated.

Each contender runs as its own subprocess; wall time is measured outside it and peak RSS is
the child's own ru_maxrss (os.wait4), so the client side is compared like for like (the
server's work is in the wall time, not in the RSS). The machine may be shared: the load
average is printed before and after; use --repeat N for the best of N interleaved rounds
(peak RSS is the highest seen in any round).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from scratch import scratch_database, scratch_dir  # bench/scratch.py

from lakehouse import warehouse
from lakehouse.lake import Lake, bronze_key
from loaders.bronze_format import STAGING_COLUMNS

YEAR = 2098  # a year nobody loads for real, in a database of its own anyway

PANDAS_CHILD = """
import sys, time
import pandas as pd
from sqlalchemy import create_engine
path, rows, url = sys.argv[1], int(sys.argv[2]), sys.argv[3]
df = pd.read_csv(path, nrows=rows)  # the original read the whole file into memory like this
df.to_sql("flights_pandas", create_engine(url), if_exists="replace", index=False)
"""


def _peak_rss_kb(pid: int) -> int:
    """VmHWM: the peak RSS of the process's current program (reset at exec, unlike
    ru_maxrss, which would also count the benchmark's own memory inherited at fork)."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def run_child(cmd: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """(wall seconds, peak RSS MB of the child, stdout) of one subprocess."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=err, cwd=REPO)
        peak = 0
        while True:
            # WNOWAIT leaves the exited child unreaped, so its /proc entry is still readable.
            if os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
                break
            peak = max(peak, _peak_rss_kb(proc.pid))
            time.sleep(0.02)
        wall = time.perf_counter() - started
        returncode = proc.wait()
        if returncode != 0:
            err.seek(0)
            raise SystemExit(f"{' '.join(cmd[:4])} ... failed ({returncode}): "
                             f"{err.read().decode().strip()}")
        out.seek(0)
        return wall, peak / 1024, out.read().decode()


def psql_copy_cmd(path: str) -> list[str]:
    cols = ", ".join(f"{c} text" for c in STAGING_COLUMNS)
    return ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1",
            "-c", "begin",
            "-c", f"create table bench_psql_copy ({cols})",
            "-c", f"\\copy bench_psql_copy from '{path}' with (format csv, header true)",
            "-c", "commit",
            "-c", "drop table bench_psql_copy"]


def loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=7_200_000)
    parser.add_argument("--pandas-rows", type=int, default=300_000,
                        help="lines the pandas contender loads (default %(default)s; "
                             "its full-year time is extrapolated); 0 skips it")
    parser.add_argument("--repeat", type=int, default=1, help="best of N interleaved rounds")
    parser.add_argument("--keep", help="lake folder to use (default: a temp folder, removed)")
    args = parser.parse_args()

    env = {**os.environ, **warehouse.apply_env()}
    with scratch_database("bench_load") as bench_db, scratch_dir("bench-load-", args.keep) as tmp:
        _run(args, {**env, "PGDATABASE": bench_db}, str(tmp))


def _run(args, env: dict[str, str], tmp: str) -> None:
    lake = Lake(tmp)
    quarter = max(args.rows // 4, 1)
    print(f"generating {args.rows:,} and {quarter:,} rows into {tmp} ...", flush=True)
    # In subprocesses: the generator's memory must not inflate this process (and its children).
    for year, rows in ((YEAR, args.rows), (YEAR + 1, quarter)):
        if not lake.exists(bronze_key(year)):
            subprocess.run([sys.executable, "-m", "loaders", "generate", "--year", str(year),
                            "--rows", str(rows)], env={**env, "LAKE_URL": tmp}, cwd=REPO,
                           check=True, stdout=subprocess.DEVNULL)
    path = lake.uri(bronze_key(YEAR))
    size = lake.size(bronze_key(YEAR))
    env = {**env, "LAKE_URL": tmp}
    print(f"file {size / 1e6:,.0f} MB, {args.rows:,} rows; {os.cpu_count()} CPUs; "
          f"load average before: {loadavg()}", flush=True)

    loader = [sys.executable, "-m", "loaders", "load", "--json", "--year"]
    contenders = [
        ("psql \\copy, plain 28-text table", args.rows, psql_copy_cmd(path)),
        ("loader: python -m loaders load", args.rows, [*loader, str(YEAR)]),
        ("loader, quarter-size file", quarter, [*loader, str(YEAR + 1)]),
    ]
    # Interleaved rounds, best of each: a neighbour's burst on a shared machine then hits one
    # round of every contender instead of all rounds of one.
    runs: dict[str, list[tuple[float, float, str]]] = {name: [] for name, _, _ in contenders}
    for round_no in range(args.repeat):
        for name, _, cmd in contenders:
            runs[name].append(run_child(cmd, env))
            print(f"round {round_no + 1}: {name:<34} {runs[name][-1][0]:7.1f} s", flush=True)
    results = []
    for name, rows, _ in contenders:
        wall, rss, out = min(runs[name], key=lambda r: r[0])
        note = ""
        if out.strip():
            inner = json.loads(out)
            assert inner["rows_loaded"] == rows, inner
            note = f"(its own clock: {inner['seconds']:.1f} s)"
        results.append((name, rows, wall, max(r[1] for r in runs[name]), note))
    if args.pandas_rows:
        n = min(args.pandas_rows, args.rows)
        url = ("postgresql+psycopg://" + env.get("PGUSER", "") +
               (":" + env["PGPASSWORD"] if env.get("PGPASSWORD") else "") +
               f"@{env['PGHOST']}:{env['PGPORT']}/{env['PGDATABASE']}")
        wall, rss, _ = run_child([sys.executable, "-c", PANDAS_CHILD, path, str(n), url], env)
        note = "" if n == args.rows else (
            f"(measured on {n:,} rows: {wall:.1f} s; time EXTRAPOLATED x{args.rows / n:.1f}; "
            "RSS as measured)")
        results.append(("original: pandas read_csv + to_sql", args.rows,
                        wall * args.rows / n, rss, note))
    print(f"load average after: {loadavg()}")

    limit = results[0][2]
    print(f"\n{'contender':<36} {'rows':>10} {'wall s':>8} {'rows/s':>10} {'peak RSS MB':>11} "
          f"{'time vs psql':>12}")
    for name, rows, wall, rss, note in results:
        print(f"{name:<36} {rows:>10,} {wall:>8.1f} {rows / wall:>10,.0f} {rss:>11.0f} "
              f"{wall / limit:>11.2f}x {note}")
    full, part = results[1], results[2]
    print(f"\nloader / psql \\copy time: {full[2] / limit:.2f}x (target <= 1.30x)")
    print(f"loader memory flat: {full[1] / part[1]:.0f}x the rows -> {full[3] / part[3]:.2f}x "
          f"the peak RSS ({part[3]:.0f} MB -> {full[3]:.0f} MB)")
    if len(results) > 3:
        print(f"original pandas way / loader time: {results[3][2] / full[2]:.1f}x"
              f"{' (extrapolated)' if results[3][4] else ''}")


if __name__ == "__main__":
    main()
