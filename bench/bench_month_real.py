"""Month scoring on real flights: the held-out months scored one month at a time (as the
monthly DAG scores them) against the same months scored in one run over the half-year.

    make bench-month-real     (or .venv/bin/python bench/bench_month_real.py [--path FILE])

The real set is January-June 2001 (ml/real_flights.py; `make real-data` fetches it). The
months are April, May and June, the evaluation's held-out months (the scorer's thresholds
were tuned on January-March): each is scored with `score_frame(period=...)`, which sees only
`Params.month_history_days` days before the month and nothing after it. Printed side by side
for the ensemble and each detector, on the hub airports the labels are judged on:
precision, recall and F1 against the labelled airport-days, named disruptions found, and
how many flags the two ways share. No database: gold's shape comes from the file.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ml import real_flights
from ml.metrics import evaluate_flags, events_found, flag_sets
from ml.params import Params
from ml.score_frame import score_frame


def month_period(year: int, month: int) -> tuple[dt.date, dt.date]:
    return dt.date(year, month, 1), dt.date(year + month // 12, month % 12 + 1, 1)


def table(scored: pd.DataFrame, hubs: list[str], truth: set[str]) -> pd.DataFrame:
    part = scored[scored["origin"].isin(hubs)]
    out = evaluate_flags([(part, truth)], [])
    found = {name: "{}/{}".format(*events_found(part, flags, real_flights.NAMED_EVENTS))
             for name, flags in flag_sets(part).items()}
    out["events"] = out["detector"].map(found)
    return out.set_index("detector")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--path", type=Path, default=real_flights.DEFAULT_PATH)
    args = parser.parse_args()
    if not args.path.exists():
        raise SystemExit(f"{args.path} is missing: run `make real-data` first")
    params = Params()
    year = real_flights.YEAR
    gold = real_flights.to_gold(args.path)
    hubs = real_flights.hubs(gold)
    truth = set(real_flights.label(gold)["id"])

    t0 = time.perf_counter()
    whole, _ = score_frame(gold, year, params)
    whole_s = time.perf_counter() - t0
    whole = whole[real_flights.in_months(whole["fl_date"], real_flights.HOLDOUT_MONTHS)]

    months, seconds = [], {}
    for month in real_flights.HOLDOUT_MONTHS:
        t0 = time.perf_counter()
        scored, _ = score_frame(gold, year, params, period=month_period(year, month))
        seconds[month] = time.perf_counter() - t0
        months.append(scored)
    by_month = pd.concat(months, ignore_index=True)

    a, b = table(whole, hubs, truth), table(by_month, hubs, truth)
    side = pd.DataFrame({
        "P one run": a["precision"], "P by month": b["precision"],
        "R one run": a["recall"], "R by month": b["recall"],
        "F1 one run": a["f1"], "F1 by month": b["f1"],
        "events one run": a["events"], "events by month": b["events"],
    })
    rows = [r for r in side.index if not r.startswith("original_")]
    print(f"real flights {year}, held-out months {real_flights.HOLDOUT_MONTHS}, "
          f"{len(hubs)} hubs, {len(truth)} labelled airport-days in the half-year")
    print(f"one run over January-June: {whole_s:.1f} s; months one by one: "
          + ", ".join(f"{m}: {s:.1f} s" for m, s in seconds.items()))
    with pd.option_context("display.width", 200, "display.float_format", "{:.3f}".format):
        print(side.loc[rows].to_string())

    both = whole[["id", "is_anomaly"]].merge(by_month[["id", "is_anomaly"]], on="id",
                                            suffixes=("_run", "_month"))
    run_flags = set(both.loc[both["is_anomaly_run"], "id"])
    month_flags = set(both.loc[both["is_anomaly_month"], "id"])
    print(f"anomalies (all airports): one run {len(run_flags)}, by month {len(month_flags)}, "
          f"shared {len(run_flags & month_flags)}, only one run {len(run_flags - month_flags)}, "
          f"only by month {len(month_flags - run_flags)}")


if __name__ == "__main__":
    main()
