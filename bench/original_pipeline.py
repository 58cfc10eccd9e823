"""The ORIGINAL pipeline's approach, re-implemented for timing comparisons only. Do not use it.

    .venv/bin/python bench/original_pipeline.py --csv 2018.csv --db-url postgresql+psycopg://... \
        [--rows N] [--arima-airports K] [--json]

What the old Airflow 2 DAG did per year, step by step (S3 and RDS replaced by a local file and
the PostgreSQL the URL names; everything else as it was):

1. read the whole CSV into one pandas DataFrame;
2. "clean": drop the rows whose DEP_DELAY is null (nothing else), write silver Parquet;
3. group by (ORIGIN, FL_DATE), mean DEP_DELAY, id = ORIGIN + YYYYMMDD, write gold Parquet;
4. "upsert" gold into the database: DELETE the year's ids, then DataFrame.to_sql (append);
5. anomalies: IsolationForest(contamination=0.01) on the one feature mean_dep_delay, over all
   airport-days at once;
6. per airport, an ARIMA(p, 0, q) grid search over p, q in 0..4 by AIC, done twice (once to
   pick the order, once more inside the forecasting step, as the original did), then the
   residuals beyond 3 sigma are flagged;
7. DataFrame.to_sql of the scored rows.

The ARIMA grid costs ~50 model fits per airport and dominates: with --arima-airports K it runs
on the K busiest airports only and the per-airport time is EXTRAPOLATED linearly to all of
them (reported as such). --rows reads only the first N data lines (the other steps then scale
with rows; bench_dag.py extrapolates those linearly too, and says so).
"""

from __future__ import annotations

import argparse
import json
import time
import warnings


def run(csv: str, db_url: str, rows: int | None = None, arima_airports: int | None = None,
        workdir: str = ".") -> dict:
    import numpy as np
    import pandas as pd
    from sklearn.ensemble import IsolationForest
    from sqlalchemy import create_engine, text
    from statsmodels.tsa.arima.model import ARIMA

    times: dict[str, float] = {}
    t = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal t
        now = time.perf_counter()
        times[name] = round(now - t, 3)
        t = now

    df = pd.read_csv(csv, nrows=rows)
    lap("read_csv")
    df = df.dropna(subset=["DEP_DELAY"])
    df.to_parquet(f"{workdir}/silver.parquet")
    lap("clean_and_write_silver")
    gold = df.groupby(["ORIGIN", "FL_DATE"], as_index=False)["DEP_DELAY"].mean()
    gold = gold.rename(columns={"ORIGIN": "origin", "FL_DATE": "fl_date", "DEP_DELAY": "mean_dep_delay"})
    gold["id"] = gold["origin"] + gold["fl_date"].str.replace("-", "")
    gold.to_parquet(f"{workdir}/gold.parquet")
    lap("groupby_and_write_gold")

    engine = create_engine(db_url)
    with engine.begin() as conn:
        conn.execute(text("create table if not exists agg_dep_delay_by_date "
                          "(id text, origin text, fl_date text, mean_dep_delay float8)"))
        # the original's delete-then-insert "upsert" (it built this IN list with an f-string)
        conn.execute(text("delete from agg_dep_delay_by_date where id = any(:ids)"),
                     {"ids": gold["id"].tolist()})
    gold.to_sql("agg_dep_delay_by_date", engine, if_exists="append", index=False)
    lap("upsert_gold_to_sql")

    forest = IsolationForest(contamination=0.01, random_state=42)
    gold["if_anomaly"] = forest.fit_predict(gold[["mean_dep_delay"]]) == -1
    lap("isolation_forest")

    def grid_search(series: np.ndarray):
        best = (np.inf, None)
        for p in range(5):
            for q in range(5):
                try:
                    fit = ARIMA(series, order=(p, 0, q)).fit()
                except (ValueError, np.linalg.LinAlgError):  # the original skipped such orders
                    fit = None
                if fit is not None and fit.aic < best[0]:
                    best = (fit.aic, fit)
        return best[1]

    by_airport = gold.groupby("origin").size().sort_values(ascending=False)
    airports = list(by_airport.index)
    chosen = airports[:arima_airports] if arima_airports else airports
    gold["arima_anomaly"] = False
    fits = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the grid's convergence warnings, as in the original logs
        for origin in chosen:
            part = gold[gold["origin"] == origin].sort_values("fl_date")
            series = part["mean_dep_delay"].to_numpy(dtype=float)
            if len(series) < 10:
                continue
            grid_search(series)                    # search 1: pick the order
            model = grid_search(series)            # search 2: again, inside "forecast"
            fits += 50
            if model is None:
                continue
            resid = np.asarray(model.resid)
            flag = np.abs(resid) > 3 * resid.std()
            gold.loc[part.index, "arima_anomaly"] = flag
    lap("arima_grid")
    arima_measured = times["arima_grid"]
    arima_all = arima_measured * len(airports) / max(len(chosen), 1)

    gold.to_sql("dep_delay_anomalies_original", engine, if_exists="replace", index=False)
    lap("scores_to_sql")
    engine.dispose()

    measured_total = round(sum(times.values()), 3)
    return {
        "rows_read": len(df), "gold_rows": len(gold), "airports": len(airports),
        "arima_airports_run": len(chosen), "arima_fits": fits, "steps": times,
        "arima_grid_all_airports_seconds": round(arima_all, 3),
        "arima_extrapolated": len(chosen) < len(airports),
        "measured_seconds": measured_total,
        "total_seconds_all_airports": round(measured_total - arima_measured + arima_all, 3),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--csv", required=True)
    parser.add_argument("--db-url", required=True, help="SQLAlchemy URL, e.g. postgresql+psycopg://u@h:p/db")
    parser.add_argument("--rows", type=int, default=None, help="read only the first N data lines")
    parser.add_argument("--arima-airports", type=int, default=None,
                        help="run the ARIMA grid on the K busiest airports and extrapolate")
    parser.add_argument("--workdir", default=".")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = run(args.csv, args.db_url, args.rows, args.arima_airports, args.workdir)
    print(json.dumps(result) if args.json else json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
