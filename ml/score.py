"""`score_year(year)`: read gold, score every airport-day of the year, upsert into ml.*.

This is the function the Airflow DAG calls. Importing it is cheap (numpy/pandas only); the
model libraries load when scoring starts.
"""

from __future__ import annotations

import time
import uuid

from ml import MODEL_VERSION
from ml.params import Params


def score_year(year: int, params: Params | None = None, month: int | None = None) -> dict:
    """Score `year` and upsert it into ml.dep_delay_anomalies; returns the run summary
    (run_id, year, airports, airport_days, anomalies, insufficient_history, failures,
    warnings, seconds, model_version).

    With `month`, only that month's airport-days are scored and upserted (the year's other
    months keep their rows), on the trailing history: the `params.month_history_days` days
    before the month, from the earlier years and the year alike (later days in gold, if any,
    are left out, as they would not have existed when the month was current)."""
    from lakehouse.warehouse import connect
    from ml import store
    from ml.score_frame import score_frame

    params = params or Params()
    started = store.utcnow()
    t0 = time.perf_counter()
    run_id = uuid.uuid4()
    with connect(part="ml") as conn:
        store.ensure_schema(conn)
        period = None
        if month is not None:
            import datetime as dt

            # the month and the history before it (score_frame cuts each airport's window)
            period = (dt.date(year, month, 1), dt.date(year + month // 12, month % 12 + 1, 1))
            gold = store.read_gold(conn, year, params.history_years, (None, period[1]))
            in_month = (gold["year"] == year) & (gold["fl_date"] >= period[0])
        else:
            gold = store.read_gold(conn, year, params.history_years)
            in_month = gold["year"] == year
        if not in_month.any():
            from lakehouse.errors import UserError

            what = str(year) if month is None else f"{year}-{month:02d}"
            how = f"--year {year}" + (f" --month {month}" if month is not None else "")
            raise UserError(
                f"gold.agg_dep_delay_by_date has no rows for {what}: load and build it "
                f"first (`python -m loaders load {how}`, then dbt build)"
            )
        conn.commit()
        scored, problems = score_frame(gold, year, params, period=period)
        scored["model_version"] = MODEL_VERSION
        scored["run_id"] = run_id
        scored["scored_at"] = started
        errors = [p for p in problems if p["level"] == "error"]
        run = {
            "run_id": run_id,
            "year": year,
            "month": month,
            "model_version": MODEL_VERSION,
            "params": params.as_dict(),
            "airports": int(scored["origin"].nunique()),
            "airport_days": len(scored),
            "anomalies": int(scored["is_anomaly"].sum()),
            "failures": problems,
            "status": "succeeded",
            "detector_seconds": scored.attrs.get("detector_seconds", {}),
            "started_at": started,
        }
        run["finished_at"] = store.utcnow()
        run["seconds"] = round(time.perf_counter() - t0, 3)
        store.upsert_year(conn, year, scored, run, month=month)
    return {
        "run_id": str(run_id),
        "year": year,
        "month": month,
        "model_version": MODEL_VERSION,
        "airports": run["airports"],
        "airport_days": run["airport_days"],
        "anomalies": run["anomalies"],
        "insufficient_history": int((scored["history_status"] == "insufficient_history").sum()),
        "failures": len(errors),
        "warnings": len(problems) - len(errors),
        "seconds": round(time.perf_counter() - t0, 3),
        "detector_seconds": run["detector_seconds"],
    }
