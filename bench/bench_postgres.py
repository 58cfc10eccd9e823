"""System vs embedded PostgreSQL binaries: cluster start time and COPY throughput.

    .venv/bin/python bench/bench_postgres.py [--rows 1500000] [--repeat 3]

For each kind of binaries (`devtools.localdb`: the system's and the embedded wheel's) a
throw-away cluster is created the way `make db-start` does (same settings, same OS user) and
timed: initdb + first start, then a stop and a restart. On each, a generated year is copied
with `COPY ... FROM STDIN (format csv)` into a plain 28-text-column table created in the same
transaction (so, like the loader, it skips WAL), streamed in 1 MiB blocks like `psql \\copy`.
Rounds alternate between the servers; the best of --repeat is kept. Besides the wall time, the
CPU time of the server backend that ran the COPY is read from /proc (Linux): on a shared
machine it moves far less than the wall time with the neighbours' load.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg
from psycopg import sql

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from devtools import localdb
from loaders.bronze_format import STAGING_COLUMNS

YEAR = 2098
BLOCK = 1 << 20


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _timed_cluster(kind: str, base: Path) -> tuple[localdb.Cluster, dict[str, float]]:
    os.environ["LAKEHOUSE_PG"] = kind
    started = time.perf_counter()
    cluster = localdb.start(base)
    first = time.perf_counter() - started
    localdb.stop(base)
    started = time.perf_counter()
    localdb.start(base)
    return cluster, {"init_and_start_s": first, "restart_s": time.perf_counter() - started}


def copy_once(cluster: localdb.Cluster, path: Path) -> tuple[float, float, int]:
    """(wall s, backend CPU s, rows) of one COPY of the file into a fresh table."""
    cols = sql.SQL(", ").join(sql.SQL("{} text").format(sql.Identifier(c.lower()))
                              for c in STAGING_COLUMNS)
    env = cluster.env()
    with psycopg.connect(host=env["PGHOST"], port=env["PGPORT"], user=env["PGUSER"],
                         dbname=env["PGDATABASE"]) as conn:
        backend = conn.execute("select pg_backend_pid()").fetchone()[0]
        conn.commit()
        cpu0, wall0 = _cpu_seconds(backend), time.perf_counter()
        conn.execute(sql.SQL("create table bench_copy ({})").format(cols))
        with conn.cursor().copy("copy bench_copy from stdin (format csv, header true)") as copy, \
                open(path, "rb") as fh:
            while block := fh.read(BLOCK):
                copy.write(block)
        rows = conn.execute("select count(*) from bench_copy").fetchone()[0]
        conn.commit()
        wall, cpu = time.perf_counter() - wall0, _cpu_seconds(backend) - cpu0
        conn.execute("drop table bench_copy")
        conn.commit()
    return wall, cpu, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_500_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    kinds = [localdb.SYSTEM, localdb.EMBEDDED]
    if localdb.system_bindir() is None:
        sys.exit("no system PostgreSQL server binaries here: nothing to compare the embedded ones with")
    tmp = Path(tempfile.mkdtemp(prefix="bench-postgres-"))
    os.chmod(tmp, 0o755)
    clusters: dict[str, localdb.Cluster] = {}
    try:
        lake = tmp / "lake"
        subprocess.run([sys.executable, "-m", "loaders", "generate", "--year", str(YEAR),
                        "--rows", str(args.rows), "--no-disruptions"], check=True, cwd=REPO,
                       env={**os.environ, "LAKE_URL": str(lake)}, stdout=subprocess.DEVNULL)
        path = lake / "01_bronze" / f"{YEAR}.csv"
        print(f"file {path.stat().st_size / 1e6:,.0f} MB, {args.rows:,} rows; "
              f"load average before: {os.getloadavg()[0]:.2f}", flush=True)
        starts = {}
        for kind in kinds:
            clusters[kind], starts[kind] = _timed_cluster(kind, tmp / kind)
            bins = localdb.cluster_binaries(tmp / kind)
            starts[kind]["version"] = localdb.server_major(bins)
            print(f"{kind:<9} PostgreSQL {starts[kind]['version']:>3}: initdb + start "
                  f"{starts[kind]['init_and_start_s']:.2f} s, restart "
                  f"{starts[kind]['restart_s']:.2f} s  ({bins.bindir})", flush=True)
        runs: dict[str, list[tuple[float, float, int]]] = {kind: [] for kind in kinds}
        for round_no in range(args.repeat):
            for kind in kinds:
                runs[kind].append(copy_once(clusters[kind], path))
                wall, cpu, rows = runs[kind][-1]
                assert rows == args.rows, (kind, rows)
                print(f"round {round_no + 1}: {kind:<9} COPY {wall:6.2f} s wall, "
                      f"{cpu:6.2f} s backend CPU", flush=True)
        print(f"load average after: {os.getloadavg()[0]:.2f}\n")
        print(f"{'binaries':<9} {'PG':>3} {'init+start s':>12} {'restart s':>9} "
              f"{'COPY wall s':>11} {'rows/s':>9} {'backend CPU s':>13} {'rows/CPU-s':>10}")
        for kind in kinds:
            wall = min(r[0] for r in runs[kind])
            cpu = min(r[1] for r in runs[kind])
            s = starts[kind]
            print(f"{kind:<9} {s['version']:>3} {s['init_and_start_s']:>12.2f} "
                  f"{s['restart_s']:>9.2f} {wall:>11.2f} {args.rows / wall:>9,.0f} "
                  f"{cpu:>13.2f} {args.rows / cpu:>10,.0f}")
    finally:
        os.environ.pop("LAKEHOUSE_PG", None)
        for kind in kinds:
            localdb.destroy(tmp / kind)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
