"""Score a year of gold rows: every detector on every airport, in parallel, then the ensemble.

Pure with respect to the warehouse: takes a DataFrame of gold rows (the scored year plus
earlier years as history) and returns one DataFrame row per airport-day of the scored year,
plus the list of per-airport failures and warnings. `ml.score` does the I/O around it.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from ml.detectors import (
    DETECTORS,
    MEMBERS,
    ORIGINAL_DETECTORS,
    flag_column,
    isolation_forest_panel,
    run_detectors,
    strength_column,
)
from ml.ensemble import decide
from ml.params import Params
from ml.series import AirportSeries, target_mask

OUTPUT_COLUMNS = [
    "id", "origin", "fl_date", "year", "flights", "scheduled_flights", "cancelled_flights",
    "mean_dep_delay", "cancel_rate", "expected_dep_delay", "dep_delay_band_low",
    "dep_delay_band_high", "expected_cancel_rate", "cancel_rate_band_high", "delay_score",
    "cancel_score", "iforest_score", "arima_score", "late_score", "expected_late_share",
    "expected_flights", "flights_band_low", "volume_score",
    # one flag per registered detector and one strength per member: ml.store writes them as
    # the detector_flags / detector_strengths maps
    *map(flag_column, DETECTORS), *map(strength_column, MEMBERS),
    "anomaly_score", "is_anomaly", "anomaly_kind", "severity", "history_status", "ensemble_rule",
]
IFOREST_FEATURES = ["_if_delay_z", "_if_late", "_if_cancel", "_if_volume_drop"]


def month_window_start(first, params: Params):
    """The first day a month's detectors see: `params.month_history_days` before the month."""
    import datetime as dt

    return first - dt.timedelta(days=params.month_history_days)


def _month_window(frame: pd.DataFrame, first, params: Params) -> pd.DataFrame:
    """An airport's rows a month's detectors see: from `month_window_start`, or further back
    for an airport that flies so rarely that the window would hold fewer than
    `params.min_history_days` days with flights (as many as its history has, then)."""
    start = month_window_start(first, params)
    flown = np.sort(frame.loc[frame["flights"].fillna(0) > 0, "fl_date"].to_numpy())
    if len(flown) >= params.min_history_days:
        start = min(start, flown[-params.min_history_days])
    elif len(flown):
        start = min(start, flown[0])
    return frame[frame["fl_date"] >= start]


def score_airport(origin: str, frame: pd.DataFrame, year: int, params: Params,
                  originals: bool = False, timings: dict | None = None,
                  only_originals: bool = False, period: tuple | None = None,
                  has_prior: bool | None = None) -> tuple[pd.DataFrame, list[dict]]:
    """All detectors on one airport; returns its scored rows (the year's, or with `period` =
    (first, end) the year's days in [first, end)) and its problems.

    `timings`, when given, accumulates each detector's seconds. `has_prior` says whether the
    airport has gold rows before the year (default: whether `frame` has)."""
    target_rows = frame[target_mask(frame, year, period)].sort_values("fl_date")
    base = target_rows[[c for c in OUTPUT_COLUMNS if c in target_rows.columns]]
    # the computed columns, in order, joined to `base` once: column-by-column assignment to
    # the frame was a fifth of a month's scoring time
    out: dict = {}
    for name in [*DETECTORS, *(ORIGINAL_DETECTORS if originals else ())]:
        out[flag_column(name)] = False
    for name in MEMBERS:
        out[strength_column(name)] = np.nan  # not judged (too little history)
    problems: list[dict] = []
    days_with_flights = int((frame["flights"].fillna(0) > 0).sum())
    if days_with_flights < params.min_history_days or target_rows.empty:
        out["history_status"] = "insufficient_history"
        return _with_columns(base, out), problems
    # the first year of a backfill (or a user with one file) is judged on in-year days only
    if has_prior is None:
        has_prior = bool((pd.to_numeric(frame["year"]) < year).any())
    out["history_status"] = "scored" if has_prior else "scored_in_year"

    series = AirportSeries.from_frame(origin, frame, year, period)
    pos = series.dates.get_indexer(pd.to_datetime(target_rows["fl_date"]))
    detectors = dict(DETECTORS, **(ORIGINAL_DETECTORS if originals else {}))
    if only_originals:
        detectors = dict(ORIGINAL_DETECTORS)
    run = run_detectors(series, params, detectors, timings)
    problems += run.problems
    if run.baseline_failed:
        out["history_status"] = "insufficient_history"
        return _with_columns(base, out), problems
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
        out[flag_column(name)] = det.flag[pos]
    if "isolation_forest" in results:
        fitted = results["isolation_forest"].fitted
        for i, col in enumerate(IFOREST_FEATURES):
            out[col] = fitted["features"][pos, i]
        out["_iforest_train"] = fitted["train"][pos]
    return _with_columns(base, out), problems


def _with_columns(base: pd.DataFrame, columns: dict) -> pd.DataFrame:
    added = pd.DataFrame(columns, index=base.index)
    # gold rarely carries a computed column; an empty drop still cost 1 ms an airport
    replaced = [c for c in columns if c in base.columns]
    if replaced:
        base = base.drop(columns=replaced)
    return pd.concat([base, added], axis=1)


def _score_chunk(chunk: list[tuple[str, pd.DataFrame, bool | None]], year: int, params: Params,
                 originals: bool, only_originals: bool = False, period: tuple | None = None,
                 ) -> tuple[list[pd.DataFrame], list[dict], dict]:
    frames, problems, timings = [], [], {}
    for origin, frame, has_prior in chunk:
        rows, probs = score_airport(origin, frame, year, params, originals, timings,
                                    only_originals, period, has_prior)
        frames.append(rows)
        problems.extend(probs)
    return frames, problems, timings


def score_frame(gold: pd.DataFrame, year: int, params: Params | None = None,
                originals: bool = False, only_originals: bool = False,
                period: tuple | None = None, prior_origins: set[str] | None = None,
                ) -> tuple[pd.DataFrame, list[dict]]:
    """Score the `year` rows of `gold` (other years are history). Deterministic.

    With `period` = (first, end) (dates), only the year's days in [first, end) are scored,
    and the detectors see only `params.month_history_days` days of history before `first`
    (none after `end`; more for an airport with fewer than `params.min_history_days` days
    with flights in them): a month's cost follows the month, not the history. `prior_origins`,
    when given, are the airports with gold rows before the year (`gold` may then hold only
    the window); otherwise `gold` says.

    `scored.attrs["detector_seconds"]` holds each detector's summed CPU seconds (the pooled
    Isolation Forest under "isolation_forest_panel")."""
    from joblib import Parallel, delayed

    params = params or Params()
    scored_origins = sorted(gold.loc[target_mask(gold, year, period), "origin"].unique())
    gold = gold[gold["origin"].isin(scored_origins)]
    if prior_origins is None:
        prior_origins = set(gold.loc[pd.to_numeric(gold["year"]) < year, "origin"])
    if period is not None:
        gold = gold[gold["fl_date"] < period[1]]
    groups = dict(tuple(gold.groupby("origin", sort=True)))
    if period is not None:
        groups = {o: _month_window(g, period[0], params) for o, g in groups.items()}
    # Big airports first, dealt round-robin, so both workers finish at about the same time.
    order = sorted(scored_origins, key=lambda o: -len(groups[o]))
    n_chunks = max(1, min(len(order), params.n_jobs * 4))
    chunks = [[(o, groups[o], o in prior_origins) for o in order[i::n_chunks]]
              for i in range(n_chunks)]
    if params.n_jobs == 1 or len(chunks) == 1:
        parts = [_score_chunk(c, year, params, originals, only_originals, period)
                 for c in chunks]
    else:
        parts = Parallel(n_jobs=params.n_jobs)(
            delayed(_score_chunk)(c, year, params, originals, only_originals, period)
            for c in chunks
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
        iforest = flag_column("isolation_forest")
        scored.loc[ok, iforest] = flag
        scored[iforest] = scored[iforest].astype(bool)
        scored = scored.drop(columns=[*IFOREST_FEATURES, "_iforest_train"])
    scored = decide(scored, params.ensemble_rule)
    scored = scored.sort_values(["origin", "fl_date"]).reset_index(drop=True)
    scored.attrs["detector_seconds"] = {k: round(v, 3) for k, v in seconds.items()}
    return scored, problems
