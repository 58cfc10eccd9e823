"""Time the sample-data generator and show that its memory does not grow with the year's size.

    .venv/bin/python bench/bench_generate.py [--rows 7200000] [--small 720000] [--keep DIR]

Runs the generator twice in fresh subprocesses (a small year and the full one) into a
temporary local lake and prints seconds, rows/s, MB/s and peak RSS for each, then the ratios:
rows ×N should cost about ×N time but nearly ×1 memory (it writes in chunks of days).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

CHILD = """
import json, resource, sys, time
sys.path.insert(0, {repo!r})
from lakehouse.lake import Lake
from loaders.generate import generate_year
from loaders.airports import universe
universe()  # the airportsdata import is a one-off start-up cost, not generation speed
rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
cpu = time.process_time()
t = time.perf_counter()
summary = generate_year(2018, rows={rows}, seed=42, lake=Lake({lake!r}))
summary["wall"] = time.perf_counter() - t
summary["cpu"] = time.process_time() - cpu
summary["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
summary["startup_rss_mb"] = rss_before / 1024
print(json.dumps(summary))
"""


def run(rows: int, lake: str) -> dict:
    proc = subprocess.run([sys.executable, "-c", CHILD.format(repo=str(REPO), rows=rows, lake=lake)],
                          check=True, capture_output=True, text=True)
    return json.loads(proc.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=7_200_000)
    parser.add_argument("--small", type=int, default=720_000)
    parser.add_argument("--keep", help="lake folder to write into (default: a temp folder)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-generate-") as tmp:
        lake = args.keep or tmp
        results = [run(args.small, lake), run(args.rows, lake)]
    # CPU seconds next to wall seconds: on a shared machine the wall clock mostly measures the
    # neighbours, rows per CPU-second measures the generator.
    print(f"{'rows':>10} {'seconds':>8} {'cpu s':>6} {'rows/s':>10} {'rows/cpu-s':>10} {'MB':>7}"
          f" {'MB/s':>6} {'peak RSS MB':>11} {'bytes/row':>9}")
    for r in results:
        print(f"{r['rows']:>10,} {r['wall']:>8.1f} {r['cpu']:>6.1f} {r['rows'] / r['wall']:>10,.0f} "
              f"{r['rows'] / r['cpu']:>10,.0f} "
              f"{r['bytes'] / 1e6:>7.0f} {r['bytes'] / 1e6 / r['wall']:>6.0f} "
              f"{r['peak_rss_mb']:>11.0f} {r['bytes'] / r['rows']:>9.1f}")
    small, full = results
    print(f"rows ratio {full['rows'] / small['rows']:.1f}x -> time ratio "
          f"{full['wall'] / small['wall']:.2f}x (cpu {full['cpu'] / small['cpu']:.2f}x), peak RSS ratio "
          f"{full['peak_rss_mb'] / small['peak_rss_mb']:.2f}x "
          f"(start-up RSS {full['startup_rss_mb']:.0f} MB)")
    loader_rows_per_s = 530_000  # psql \copy of this format, DESIGN.md
    print(f"generator vs loader ceiling (psql \\copy ~{loader_rows_per_s:,} rows/s): "
          f"{full['rows'] / full['wall'] / loader_rows_per_s:.2f}x")


if __name__ == "__main__":
    main()
