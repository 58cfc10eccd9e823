"""Scoring speed: every detector on a full generated year vs the original pipeline's rules.

    python bench/bench_ml.py [--rows 7200000] [--seed 42] [--jobs 2] [--sample 20]

Generates two years (history + the scored one) with `loaders.generate.generate_year` into a
temporary lake and aggregates them to gold's columns with pyarrow (same definitions as
gold.agg_dep_delay_by_date), so the benchmark needs neither a warehouse nor dbt. Then times:
1. `ml.score_frame.score_frame` with every detector (parallel across airports, --jobs workers);
2. the original rules as evaluated (Isolation Forest contamination 0.01; ARIMA order by AIC
   over p, q < 5, squared residual > mean + 1 sigma), same workers;
3. the original ARIMA exactly as it ran (25 maximum-likelihood fits per airport, searched
   twice) on --sample airports, extrapolated to all airports.
Prints figures and ratios; never asserts.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def gold_from_bronze(path: Path, year: int) -> pd.DataFrame:
    import pyarrow.csv as pcsv

    table = pcsv.read_csv(path, convert_options=pcsv.ConvertOptions(
        include_columns=["FL_DATE", "ORIGIN", "DEP_DELAY", "CANCELLED"]))
    t = table.to_pandas()
    flown = t["DEP_DELAY"].notna() & (t["CANCELLED"] == 0)
    t["delay"] = t["DEP_DELAY"].where(flown)
    t["late"] = (t["delay"] >= 15).astype(float).where(flown)
    g = t.groupby(["ORIGIN", "FL_DATE"]).agg(
        flights=("delay", "count"), mean_dep_delay=("delay", "mean"),
        scheduled_flights=("CANCELLED", "size"), cancelled_flights=("CANCELLED", "sum"),
        delayed_15_flights=("late", "sum")).reset_index()
    g = g.rename(columns={"ORIGIN": "origin", "FL_DATE": "fl_date"})
    g["fl_date"] = pd.to_datetime(g["fl_date"]).dt.date
    g["year"] = year
    g["cancel_rate"] = g["cancelled_flights"] / g["scheduled_flights"]
    g["id"] = g["origin"] + pd.to_datetime(g["fl_date"]).dt.strftime("%Y%m%d")
    return g


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=7_200_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--year", type=int, default=2018)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--sample", type=int, default=20,
                        help="airports for the faithful original ARIMA timing")
    parser.add_argument("--gold-parquet", help="use this gold-shaped Parquet instead of generating")
    args = parser.parse_args()

    from lakehouse.lake import Lake, bronze_key
    from loaders.generate import generate_year
    from ml.detectors import original_arima
    from ml.params import Params
    from ml.score_frame import score_frame
    from ml.series import AirportSeries

    if args.gold_parquet:
        gold = pd.read_parquet(args.gold_parquet)
        gold = gold[gold["year"].between(args.year - 1, args.year)]
    else:
        with tempfile.TemporaryDirectory(prefix="bench-ml-") as tmp:
            lake = Lake(tmp)
            frames = []
            for year in (args.year - 1, args.year):
                t0 = time.perf_counter()
                generate_year(year, rows=args.rows, seed=args.seed, lake=lake)
                frames.append(gold_from_bronze(Path(tmp) / bronze_key(year), year))
                print(f"prepared {year}: {args.rows:,} rows -> {len(frames[-1]):,} airport-days "
                      f"({time.perf_counter() - t0:.1f} s)", flush=True)
            gold = pd.concat(frames, ignore_index=True)
    target = gold[gold["year"] == args.year]
    airports = target["origin"].nunique()
    print(f"scored year {args.year}: {airports} airports, {len(target):,} airport-days, "
          f"history {args.year - 1}; {args.jobs} workers")

    params = Params(n_jobs=args.jobs)
    score_frame(gold[gold["origin"].isin(sorted(target["origin"].unique())[:4])], args.year,
                params)  # warm-up: imports and worker start
    t0 = time.perf_counter()
    scored, _ = score_frame(gold, args.year, params)
    ours = time.perf_counter() - t0
    print(f"all detectors (robust seasonal, delayed share, cancel wave, isolation forest, "
          f"ARIMA) + ensemble: {ours:.1f} s wall  ({scored['is_anomaly'].sum()} anomalies)")
    cpu = scored.attrs["detector_seconds"]
    print("  CPU s per detector: " + ", ".join(f"{k} {v:.1f}" for k, v in sorted(cpu.items())))

    t0 = time.perf_counter()
    orig, _ = score_frame(gold, args.year, params, originals=True, only_originals=True)
    original = time.perf_counter() - t0
    ocpu = orig.attrs["detector_seconds"]
    print(f"original rules as evaluated (IF 0.01 + ARIMA AIC grid p,q<5 picked by "
          f"Hannan-Rissanen): {original:.1f} s wall; CPU s: "
          + ", ".join(f"{k} {v:.1f}" for k, v in sorted(ocpu.items())))

    rng = np.random.default_rng(0)
    sample = rng.choice(sorted(target["origin"].unique()), size=min(args.sample, airports),
                        replace=False)
    t0 = time.perf_counter()
    for origin in sample:
        series = AirportSeries.from_frame(origin, target[target["origin"] == origin], args.year)
        original_arima(series, params, {}, faithful=True)
    per_airport = (time.perf_counter() - t0) / len(sample)
    faithful = 2 * per_airport * airports / args.jobs  # it searched the grid twice
    print(f"original ARIMA as it ran (25 MLE fits/airport, twice): {per_airport:.2f} s per "
          f"airport on {len(sample)} airports -> ~{faithful:.0f} s for {airports} airports "
          f"on {args.jobs} workers (extrapolated)")
    print(f"ratio: ours / original-as-evaluated = {ours / original:.2f}x; "
          f"original-as-it-ran / ours = {faithful / ours:.1f}x")
    print(f"target: all detectors <= 30 s on 2 cores: {'met' if ours <= 30 else 'NOT met'} "
          f"({ours:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
