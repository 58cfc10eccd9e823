"""Decade benchmark: ten full-size generated years backfilled through the DAG, then measured.

    .venv/bin/python bench/bench_decade.py [--rows 6500000] [--years 2009-2018] [--dir DIR]
        [--keep-db] [--no-disk-check]                      # or: make bench-decade

1. generates each year into DIR/lake/01_bronze (DIR defaults to .local/bench-decade; a year
   already there is reused, so generation is paid once);
2. backfills the years oldest first in a fresh database on the server the PG* variables
   point at (`make bench-decade` starts the local one) with `devtools.airflow_local.backfill`
   (the code of `make backfill`: one `airflow dags test` per year), sampling the RSS of every
   process of the run (the DAG runs, dbt, joblib workers, the PostgreSQL backends) twice a second;
3. prints per-year wall time and the ratio last year / first year (goal <= 1.2: a year's
   cost must not grow with the years already loaded), the total, the peak RSS per process,
   the warehouse size per schema (pg_total_relation_size), the lake size per zone, and the
   dashboard's queries over all the years (median of 5 runs, goal <= 200 ms each) with the
   top of each plan (which index serves it).

Disk: the bronze CSVs (~120 B per row), the silver/gold Parquet and the warehouse (staging,
silver, gold, ml) all stay until the end; the estimate printed first is checked against the
free space. The database is dropped at the end unless --keep-db.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import threading
import time
from pathlib import Path

import psutil
import psycopg
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench_load import loadavg
from scratch import scratch_database, scratch_dir

from devtools import airflow_local
from lakehouse import warehouse
from lakehouse.lake import Lake, bronze_key

# Disk per generated row, measured on ten 6.5 M-row years (docs/airflow.md): the lake = bronze
# CSV (~123 B) + silver Parquet (~33 B); the warehouse = staging.flights (~191 B, text) +
# silver.flights (~230 B), gold and ml being per airport-day (~12 B a row at 6.5 M rows a
# year). WAL and temporary files come on top (max_wal_size, sorts).
DISK_BYTES_PER_ROW = {"lake": 156, "warehouse": 433}
SCHEMAS = ("staging", "silver", "gold", "ml")
ZONES = ("01_bronze", "02_silver", "03_gold")
DATASETS = REPO / "superset" / "bundle" / "datasets"
# The datasets of the map and of the impact ranking, by table_name in Superset's export format
MAP_TABLE = "airport_year_anomalies"
RANKED_TABLE = "anomalies_ranked"


def parse_years(spec: str) -> list[int]:
    first, _, last = spec.partition("-")
    return list(range(int(first), int(last or first) + 1))


class RssSampler(threading.Thread):
    """Peak RSS of every process of this run (children of this process, recursively, and the
    PostgreSQL server's processes), sampled every `interval` seconds."""

    def __init__(self, extra_roots: list[int], interval: float = 0.5):
        super().__init__(daemon=True)
        self.roots = [os.getpid(), *extra_roots]
        self.interval = interval
        self.peaks: dict[int, tuple[int, str]] = {}
        self.peak_total = 0
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            total = 0
            for root in self.roots:
                try:
                    top = psutil.Process(root)
                    procs = [top, *top.children(recursive=True)]
                except psutil.NoSuchProcess:
                    continue
                for proc in procs:
                    try:
                        rss = proc.memory_info().rss
                        label = self.peaks.get(proc.pid, (0, None))[1] or _label(proc)
                    except (psutil.NoSuchProcess, psutil.AccessDenied):
                        continue
                    total += rss
                    if rss > self.peaks.get(proc.pid, (0, ""))[0]:
                        self.peaks[proc.pid] = (rss, label)
            self.peak_total = max(self.peak_total, total)
            self._halt.wait(self.interval)

    def stop(self) -> None:
        self._halt.set()
        self.join()


def _label(proc: psutil.Process) -> str:
    cmd = proc.cmdline()
    if not cmd:
        return proc.name()
    if proc.name().startswith("postgres"):
        return "postgres: " + " ".join(cmd)[:60] if len(cmd) > 1 else "postgres (postmaster)"
    text = " ".join(Path(cmd[0]).name if i == 0 else c for i, c in enumerate(cmd))
    return text[:110]


def _du(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.exists() else 0


def _gb(n: float) -> str:
    return f"{n / 1e9:,.2f} GB" if n >= 1e9 else f"{n / 1e6:,.1f} MB"


def _dataset_source(table_name: str) -> str:
    """What Superset's query of a dataset selects from: its SQL as a subquery (virtual) or its table."""
    dataset = next(d for d in map(yaml.safe_load, map(Path.read_text, sorted(DATASETS.rglob("*.yaml"))))
                   if d.get("table_name") == table_name)
    if dataset.get("sql"):
        # a literal % in the SQL (format('%s', ...)) must not read as a query parameter
        return f"({dataset['sql'].replace('%', '%%')}) as virtual_table"
    return f'"{dataset["schema"]}"."{dataset["table_name"]}"'


def _queries(last_year: int, origin: str) -> list[tuple[str, str, tuple]]:
    map_source = _dataset_source(MAP_TABLE)
    # The charts' own query shapes: Superset selects from the dataset and groups or sorts it.
    map_all = (f"select latitude, longitude, origin, sum(scheduled_flights) as scheduled_flights_sum "
               f"from {map_source} group by latitude, longitude, origin "
               "order by scheduled_flights_sum desc limit 5000")
    map_year = (f"select latitude, longitude, origin, sum(scheduled_flights) as scheduled_flights_sum "
                f"from {map_source} where year = %s "
                "group by latitude, longitude, origin order by scheduled_flights_sum desc limit 5000")
    ranked = (f"select impact_rank, airport_day, flights, impact_minutes, detectors, "
              f"min(sort_key) as first_sort_key from {_dataset_source(RANKED_TABLE)} where year = %s "
              "group by impact_rank, airport_day, flights, impact_minutes, detectors "
              "order by first_sort_key limit 500")
    return [
        (f"daily series of {origin}, every year",
         ("select fl_date, mean_dep_delay, expected_dep_delay, dep_delay_band_high, is_anomaly "
         "from gold.daily_delay_anomalies where origin = %s order by fl_date"), (origin,)),
        (f"top 50 anomalies of {last_year}",
         ("select id, origin, fl_date, anomaly_kind, severity, greatest(coalesce(delay_score, 0), "
         "coalesce(cancel_score, 0), coalesce(late_score, 0)) as max_score "
         "from ml.dep_delay_anomalies where year = %s and is_anomaly "
         "order by max_score desc limit 50"), (last_year,)),
        (f"anomalies ranked by impact, year filter {last_year}", ranked, (last_year,)),
        ("airport map, every year", map_all, ()),
        (f"airport map, year filter {last_year}", map_year, (last_year,)),
    ]


def _time_query(conn: psycopg.Connection, query: str, params: tuple, runs: int = 5) -> tuple[float, int, list[str]]:
    conn.execute(query, params).fetchall()  # warm the cache as a dashboard in use would be
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        rows = conn.execute(query, params).fetchall()
        times.append((time.perf_counter() - started) * 1000)
    plan = [r[0] for r in conn.execute("explain (analyze, costs off, timing off, summary off) " + query,
                                       params).fetchall()]
    return statistics.median(times), len(rows), plan


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=6_500_000, help="rows per year (default 6.5 M)")
    parser.add_argument("--years", default="2009-2018")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--dir", type=Path, default=REPO / ".local" / "bench-decade",
                        help="cache of the generated lake (kept between runs)")
    parser.add_argument("--keep-db", action="store_true", help="keep the benchmark database")
    parser.add_argument("--no-disk-check", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON here")
    parser.add_argument("--measure-only", action="store_true",
                        help="only measure the database PGDATABASE names (e.g. one kept with "
                        "--keep-db) and the lake in --dir: sizes and dashboard queries")
    args = parser.parse_args()
    years = parse_years(args.years)
    if args.measure_only:
        warehouse.apply_env()
        figures: dict = {"years": years}
        measure(figures, years, args.rows, args.dir.resolve() / "lake")
        if args.json:
            args.json.write_text(json.dumps(figures, indent=2, default=str) + "\n")
        return

    base = args.dir.resolve()
    lake_dir = base / "lake"
    lake_dir.mkdir(parents=True, exist_ok=True)
    lake = Lake(str(lake_dir))
    to_generate = [y for y in years if not lake.exists(bronze_key(y))]
    need = args.rows * len(years) * sum(DISK_BYTES_PER_ROW.values()) - sum(
        lake.size(bronze_key(y)) for y in years if y not in to_generate)
    free = shutil.disk_usage(base).free
    print(f"{len(years)} years {years[0]}-{years[-1]} x {args.rows:,} rows; lake {base / 'lake'}; "
          f"disk needed ~{_gb(need)} (estimate), free {_gb(free)}; load average {loadavg()}",
          flush=True)
    if need > free and not args.no_disk_check:
        raise SystemExit(f"error: ~{_gb(need)} of disk needed, {_gb(free)} free under {base}: "
                         "free some, use fewer --years/--rows, or --no-disk-check")

    pg_env = warehouse.apply_env()
    with psycopg.connect(autocommit=True) as admin:
        backend = admin.execute("select pg_backend_pid()").fetchone()[0]
        # the server's processes are its children (read while this backend still exists)
        postmaster = psutil.Process(backend).ppid()
    with (scratch_database("bench_decade", keep=args.keep_db) as bench_db,
          scratch_dir("bench-decade-", base=base) as work):
        os.environ.update({"PGDATABASE": bench_db, "LAKE_URL": str(lake_dir)})
        _run(args, years, to_generate, lake_dir, work, postmaster, pg_env)


def _run(args, years, to_generate, lake_dir: Path, work: Path, postmaster: int, pg_env) -> None:
    for year in to_generate:
        started = time.perf_counter()
        print(f"generating {year} ({args.rows:,} rows) ...", end=" ", flush=True)
        from loaders.generate import generate_year

        generate_year(year, rows=args.rows, seed=args.seed + year, lake=Lake(str(lake_dir)))
        print(f"{time.perf_counter() - started:.0f} s", flush=True)

    os.environ["LAKEHOUSE_DBT_MANIFEST"] = str(airflow_local.dbt_parse(work / "dbt-target"))
    sampler = RssSampler([postmaster])
    sampler.start()
    print("backfill, oldest first (make backfill's code):", flush=True)
    started = time.perf_counter()
    results = airflow_local.backfill(years, force=True, home=work / "airflow",
                                     on_year=lambda r: print(
                                         f"  {r['year']}  {r['status']:<9} {r['seconds']:8.1f} s",
                                         flush=True))
    total = time.perf_counter() - started
    sampler.stop()
    failed = [r for r in results if r["status"] == "failed"]
    if failed:
        raise SystemExit(f"error: year {failed[0]['year']} failed at {failed[0]['failed_task']}: "
                         f"{failed[0]['error']} (log {failed[0]['log']})")

    first, last = results[0]["seconds"], results[-1]["seconds"]
    figures = {"years": years, "rows_per_year": args.rows,
               "year_seconds": {r["year"]: r["seconds"] for r in results},
               "total_seconds": round(total, 1), "ratio_last_first": round(last / first, 2)}
    print("\nper year: " + ", ".join(f"{r['year']} {r['seconds']:.0f} s" for r in results))
    print(f"year {years[-1]} / year {years[0]}: {last:.1f} / {first:.1f} s = "
          f"{last / first:.2f} (goal <= 1.2)")
    print(f"total: {total:,.0f} s = {total / 3600:.2f} h for {len(years)} years")

    print(f"\npeak RSS per process (top 12 of {len(sampler.peaks)}; peak of all at once "
          f"{sampler.peak_total / 2**20:,.0f} MiB):")
    top = sorted(sampler.peaks.values(), reverse=True)[:12]
    for rss, label in top:
        print(f"  {rss / 2**20:8,.0f} MiB  {label}")
    figures["peak_rss_mib"] = {label: round(rss / 2**20) for rss, label in top}
    figures["peak_rss_all_mib"] = round(sampler.peak_total / 2**20)

    measure(figures, years, args.rows, lake_dir)
    print(f"\nload average after: {loadavg()}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2, default=str) + "\n")


def measure(figures: dict, years: list[int], rows_per_year: int, lake_dir: Path) -> None:
    """Warehouse size per schema, lake size per zone, dashboard query times (the database of
    the PG* variables)."""
    with warehouse.connect() as conn:
        sizes = dict(conn.execute(
            "select n.nspname, sum(pg_total_relation_size(c.oid))::bigint from pg_class c "
            "join pg_namespace n on n.oid = c.relnamespace "
            "where c.relkind in ('r', 'm') and n.nspname = any(%s) group by 1", (list(SCHEMAS),)).fetchall())
        db_size = conn.execute("select pg_database_size(current_database())").fetchone()[0]
        print("\nwarehouse size per schema (pg_total_relation_size of tables, indexes, TOAST):")
        for schema in SCHEMAS:
            print(f"  {schema:<8} {_gb(sizes.get(schema) or 0)}")
        print(f"  database {_gb(db_size)} (pg_database_size)")
        figures["warehouse_bytes"] = {s: int(sizes.get(s) or 0) for s in SCHEMAS} | {"database": db_size}

        zones = {z: _du(lake_dir / z) for z in ZONES}
        print("\nlake size per zone:")
        for zone, size in zones.items():
            print(f"  {zone:<10} {_gb(size)}")
        figures["lake_bytes"] = zones
        rows = rows_per_year * len(years)
        print(f"  per generated row: lake {sum(zones.values()) / rows:.0f} B, warehouse "
              f"{db_size / rows:.0f} B")

        origin = conn.execute("select origin from gold.agg_dep_delay_by_date group by origin "
                              "order by sum(scheduled_flights) desc limit 1").fetchone()[0]
        print("\ndashboard queries over the years (median of 5 after one warm-up; goal <= 200 ms):")
        figures["queries_ms"] = {}
        for label, query, params in _queries(years[-1], origin):
            ms, n, plan = _time_query(conn, query, params)
            figures["queries_ms"][label] = round(ms, 1)
            print(f"  {ms:8.1f} ms  {n:>6} rows  {label}{'' if ms <= 200 else '  (over the goal)'}")
            for line in [p for p in plan if "Scan" in p or "Index" in p][:4]:
                print(f"               {line.strip()}")


if __name__ == "__main__":
    main()
