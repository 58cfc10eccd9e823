"""Score a year of gold rows: every detector on every airport, in parallel, then the ensemble.

Pure with respect to the warehouse: takes a DataFrame of gold rows (the scored year plus
earlier years as history) and returns one DataFrame row per airport-day of the scored year,
plus the list of per-airport failures and warnings. `ml.score` does the I/O around it.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from ml.detectors import DETECTORS, ORIGINAL_DETECTORS, isolation_forest_panel, run_detectors
from ml.ensemble import FLAG_COLUMNS, MEMBERS, decide, strength_column
from ml.params import Params
from ml.series import AirportSeries

OUTPUT_COLUMNS = [
    "id", "origin", "fl_date", "year", "flights", "scheduled_flights", "cancelled_flights",
    "mean_dep_delay", "cancel_rate", "expected_dep_delay", "dep_delay_band_low",
    "dep_delay_band_high", "expected_cancel_rate", "cancel_rate_band_high", "delay_score",
    "cancel_score", "iforest_score", "arima_score", "late_score", "expected_late_share",
    "expected_flights", "flights_band_low", "volume_score", *FLAG_COLUMNS.values(),
    "anomaly_score", "is_anomaly", "anomaly_kind", "severity", "history_status", "ensemble_rule",
]
ORIGINAL_FLAG_COLUMNS = {name: f"flag_{name}" for name in ORIGINAL_DETECTORS}
IFOREST_FEATURES = ["_if_delay_z", "_if_late", "_if_cancel", "_if_volume_drop"]


def score_airport(origin: str, frame: pd.DataFrame, year: int, params: Params,
                  originals: bool = False, timings: dict | None = None,
                  only_originals: bool = False) -> tuple[pd.DataFrame, list[dict]]:
    """All detectors on one airport; returns its scored-year rows and its problems.

    `timings`, when given, accumulates each detector's seconds."""
    target_rows = frame[frame["year"] == year].sort_values("fl_date")
    out = target_rows[[c for c in OUTPUT_COLUMNS if c in target_rows.columns]].copy()
    for col in FLAG_COLUMNS.values():
        out[col] = False
    if originals:
        for col in ORIGINAL_FLAG_COLUMNS.values():
            out[col] = False
    problems: list[dict] = []
    days_with_flights = int((frame["flights"].fillna(0) > 0).sum())
    if days_with_flights < params.min_history_days or target_rows.empty:
        out["history_status"] = "insufficient_history"
        return out, problems
    # the first year of a backfill (or a user with one file) is judged on in-year days only
    has_prior = bool((pd.to_numeric(frame["year"]) < year).any())
    out["history_status"] = "scored" if has_prior else "scored_in_year"

    series = AirportSeries.from_frame(origin, frame, year)
    pos = series.dates.get_indexer(pd.to_datetime(target_rows["fl_date"]))
    detectors = dict(DETECTORS, **(ORIGINAL_DETECTORS if originals else {}))
    if only_originals:
        detectors = dict(ORIGINAL_DETECTORS)
    run = run_detectors(series, params, detectors, timings)
    problems += run.problems
    if run.baseline_failed:
        out["history_status"] = "insufficient_history"
        return out, problems
    results = run.results

    def take(name, attr):
        det = results.get(name)
        return getattr(det, attr)[pos] if det is not None else np.nan

    seasonal, cancel = "seasonal_robust", "cancel_wave"
    out["expected_dep_delay"] = take(seasonal, "expected")
    out["dep_delay_band_low"] = take(seasonal, "band_low")
    out["dep_delay_band_high"] = take(seasonal, "band_high")
    out["delay_score"] = take(seasonal, "score")
    out["expected_cancel_rate"] = take(cancel, "expected")
    out["cancel_rate_band_high"] = take(cancel, "band_high")
    out["cancel_score"] = take(cancel, "score")
    out["iforest_score"] = take("isolation_forest", "score")
    out["arima_score"] = take("arima", "score")
    out["late_score"] = take("delayed_share", "score")
    out["expected_late_share"] = take("delayed_share", "expected")
    out["expected_flights"] = take("volume_drop", "expected")
    out["flights_band_low"] = take("volume_drop", "band_low")
    out["volume_score"] = take("volume_drop", "score")
    for name in MEMBERS:
        det = results.get(name)
        out[strength_column(name)] = det.strength[pos] if det is not None else 0.0
    for name, det in results.items():
        if name == "isolation_forest":
            continue  # flagged later, by the forest fitted on every airport's days
        col = FLAG_COLUMNS.get(name) or ORIGINAL_FLAG_COLUMNS[name]
        out[col] = det.flag[pos]
    if "isolation_forest" in results:
        fitted = results["isolation_forest"].fitted
        for i, col in enumerate(IFOREST_FEATURES):
            out[col] = fitted["features"][pos, i]
        out["_iforest_train"] = fitted["train"][pos]
    return out, problems


def _score_chunk(chunk: list[tuple[str, pd.DataFrame]], year: int, params: Params,
                 originals: bool, only_originals: bool = False,
                 ) -> tuple[list[pd.DataFrame], list[dict], dict]:
    frames, problems, timings = [], [], {}
    for origin, frame in chunk:
        rows, probs = score_airport(origin, frame, year, params, originals, timings,
                                    only_originals)
        frames.append(rows)
        problems.extend(probs)
    return frames, problems, timings


def score_frame(gold: pd.DataFrame, year: int, params: Params | None = None,
                originals: bool = False, only_originals: bool = False,
                ) -> tuple[pd.DataFrame, list[dict]]:
    """Score the `year` rows of `gold` (other years are history). Deterministic.

    `scored.attrs["detector_seconds"]` holds each detector's summed CPU seconds (the pooled
    Isolation Forest under "isolation_forest_panel")."""
    from joblib import Parallel, delayed

    params = params or Params()
    scored_origins = sorted(gold.loc[gold["year"] == year, "origin"].unique())
    gold = gold[gold["origin"].isin(scored_origins)]
    groups = dict(tuple(gold.groupby("origin", sort=True)))
    # Big airports first, dealt round-robin, so both workers finish at about the same time.
    order = sorted(scored_origins, key=lambda o: -len(groups[o]))
    n_chunks = max(1, min(len(order), params.n_jobs * 4))
    chunks = [[(o, groups[o]) for o in order[i::n_chunks]] for i in range(n_chunks)]
    if params.n_jobs == 1 or len(chunks) == 1:
        parts = [_score_chunk(c, year, params, originals, only_originals) for c in chunks]
    else:
        parts = Parallel(n_jobs=params.n_jobs)(
            delayed(_score_chunk)(c, year, params, originals, only_originals) for c in chunks
        )
    frames = [f for part in parts for f in part[0]]
    seconds: dict[str, float] = {}
    for part in parts:
        for name, sec in part[2].items():
            seconds[name] = seconds.get(name, 0.0) + sec
    problems = sorted((p for part in parts for p in part[1]),
                      key=lambda p: (p["origin"], p["detector"], p["message"]))
    if not frames:
        return pd.DataFrame(columns=OUTPUT_COLUMNS), problems
    scored = pd.concat(frames, ignore_index=True)
    if "_iforest_train" in scored:
        ok = scored["_iforest_train"].notna().to_numpy()
        X = scored.loc[ok, IFOREST_FEATURES].to_numpy(dtype=float)
        train = scored.loc[ok, "_iforest_train"].to_numpy(dtype=bool)
        t0 = time.perf_counter()
        score, flag = isolation_forest_panel(X, train, params)
        seconds["isolation_forest_panel"] = time.perf_counter() - t0
        scored.loc[ok, "iforest_score"] = score
        scored.loc[ok, "flag_isolation_forest"] = flag
        scored["flag_isolation_forest"] = scored["flag_isolation_forest"].astype(bool)
        scored = scored.drop(columns=[*IFOREST_FEATURES, "_iforest_train"])
    scored = decide(scored, params.ensemble_rule)
    scored = scored.sort_values(["origin", "fl_date"]).reset_index(drop=True)
    scored.attrs["detector_seconds"] = {k: round(v, 3) for k, v in seconds.items()}
    return scored, problems
