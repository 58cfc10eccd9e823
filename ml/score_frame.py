"""Score a year of gold rows: every detector on every airport, in parallel, then the ensemble.

Pure with respect to the warehouse: takes a DataFrame of gold rows (the scored year plus
earlier years as history) and returns one DataFrame row per airport-day of the scored year,
plus the list of per-airport failures and warnings. `ml.score` does the I/O around it.
"""

from __future__ import annotations

import collections
import importlib
import threading
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
from ml.series import DAY, TARGET, AirportSeries, target_mask

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


def month_window(gold: pd.DataFrame, first, params: Params) -> pd.DataFrame:
    """The rows of `gold` (every airport's) that a month's detectors see: each airport's
    from `month_window_start`, or further back for an airport that flies so rarely that the
    window would hold fewer than `params.min_history_days` days with flights (as many as its
    history has, then: from the earliest of its last `min_history_days` days with flights).
    One pass over all airports: per airport in pandas it cost ~1 s of a month's run."""
    days = gold[DAY] if DAY in gold else pd.to_datetime(gold["fl_date"])
    flown = pd.DataFrame({"origin": gold["origin"], "day": days})[
        gold["flights"].fillna(0).to_numpy() > 0]
    recent = (flown.sort_values("day", ascending=False, kind="stable")
              .groupby("origin", sort=False).head(params.min_history_days))
    earliest_needed = recent.groupby("origin", sort=False)["day"].min()
    window_start = pd.Timestamp(month_window_start(first, params))
    start = gold["origin"].map(earliest_needed.clip(upper=window_start)).fillna(window_start)
    return gold[(days >= start).to_numpy()]


def detect_airport(origin: str, frame: pd.DataFrame, year: int, params: Params,
                   originals: bool = False, timings: dict | None = None,
                   only_originals: bool = False, period: tuple | None = None,
                   has_prior: bool | None = None) -> tuple[dict, list[dict]]:
    """All detectors on one airport; returns its computed columns and its problems.

    `frame`: the airport's gold rows (with `period`, its window: `month_window`). Each column
    holds a value per target row (the year's rows, or with `period` = (first, end) the year's
    days in [first, end)) in fl_date order, or one value for all of them; `score_frame` joins
    them to the gold rows once for every airport. `timings`, when given, accumulates each
    detector's seconds. `has_prior` says whether the airport has gold rows before the year
    (default: whether `frame` has)."""
    out: dict = {}
    for name in [*DETECTORS, *(ORIGINAL_DETECTORS if originals else ())]:
        out[flag_column(name)] = False
    for name in MEMBERS:
        out[strength_column(name)] = np.nan  # not judged (too little history)
    problems: list[dict] = []
    days_with_flights = int((frame["flights"].fillna(0).to_numpy() > 0).sum())
    series = None
    if days_with_flights >= params.min_history_days:
        series = AirportSeries.from_frame(origin, frame, year, period)
    if series is None or not series.target.any():
        out["history_status"] = "insufficient_history"
        return out, problems
    # the first year of a backfill (or a user with one file) is judged on in-year days only
    if has_prior is None:
        has_prior = bool((pd.to_numeric(frame["year"]) < year).any())
    out["history_status"] = "scored" if has_prior else "scored_in_year"

    pos = np.flatnonzero(series.target)  # the target rows' days, in order
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
        out[flag_column(name)] = det.flag[pos]
    if "isolation_forest" in results:
        fitted = results["isolation_forest"].fitted
        for i, col in enumerate(IFOREST_FEATURES):
            out[col] = fitted["features"][pos, i]
        out["_iforest_train"] = fitted["train"][pos]
    return out, problems


def _score_chunk(chunk: list[tuple[str, pd.DataFrame, bool | None]], year: int, params: Params,
                 originals: bool, only_originals: bool = False, period: tuple | None = None,
                 ) -> tuple[dict[str, dict], list[dict], dict]:
    columns, problems, timings = {}, [], {}
    for origin, frame, has_prior in chunk:
        columns[origin], probs = detect_airport(origin, frame, year, params, originals, timings,
                                                only_originals, period, has_prior)
        problems.extend(probs)
    return columns, problems, timings


def _score_beside_workers(chunks: list, n_workers: int, args: tuple) -> list:
    """`_score_chunk` of every chunk, by this process and `n_workers` worker processes
    together, each taking the next chunk (biggest first) as it finishes one.

    This process scores too instead of waiting: a worker spends ~1.5 s starting (a fresh
    interpreter importing pandas and the detectors) before its first chunk, which this
    process, with all that imported, does not; a month's detectors are ~5 s of CPU. Every
    process runs BLAS on one thread (as loky's workers do with one per core), so a chunk's
    result does not depend on where it ran. scikit-learn (the pooled forest's, after the
    chunks; ~1.5 s to import) loads here once this process has no chunk left."""
    from joblib.externals.loky import get_reusable_executor
    from threadpoolctl import threadpool_limits

    one_thread = {name: "1" for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                         "MKL_NUM_THREADS")}
    executor = get_reusable_executor(max_workers=n_workers, env=one_thread)
    pending = collections.deque(range(len(chunks)))
    submitted: list[tuple[int, object]] = []
    lock = threading.Lock()

    def submit_next(_finished=None) -> None:
        # also the done-callback of each worker's chunk: the worker takes the next one
        with lock:
            if pending:
                i = pending.popleft()
                future = executor.submit(_score_chunk, chunks[i], *args)
                submitted.append((i, future))
            else:
                return
        future.add_done_callback(submit_next)

    for _ in range(n_workers):
        submit_next()
    parts: list = [None] * len(chunks)
    with threadpool_limits(limits=1):
        while True:
            with lock:
                i = pending.popleft() if pending else None
            if i is None:
                break
            parts[i] = _score_chunk(chunks[i], *args)
    importlib.import_module("sklearn.ensemble")
    with lock:
        taken_by_workers = list(submitted)
    for i, future in taken_by_workers:
        parts[i] = future.result()
    return parts


def _join_columns(base: pd.DataFrame, columns: dict[str, dict]) -> pd.DataFrame:
    """`base` (the target rows, ordered by origin and fl_date) with every airport's computed
    columns: one DataFrame built once (one per airport, then concatenated, was a fifth of a
    month's scoring time). A column an airport lacks is NaN on its rows."""
    origins, sizes = np.unique(base["origin"].to_numpy(dtype=object), return_counts=True)
    names = list(dict.fromkeys(name for origin in origins for name in columns[origin]))
    joined = {}
    for name in names:
        parts = []
        for origin, n in zip(origins, sizes, strict=True):
            value = columns[origin].get(name, np.nan)
            if np.ndim(value) == 0:
                value = np.full(n, value, dtype=object if isinstance(value, str) else None)
            parts.append(value)
        joined[name] = np.concatenate(parts)
    kept = base[[c for c in base.columns if c not in joined]].reset_index(drop=True)
    return pd.concat([kept, pd.DataFrame(joined)], axis=1)


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
    params = params or Params()
    scored_origins = sorted(gold.loc[target_mask(gold, year, period), "origin"].unique())
    gold = gold[gold["origin"].isin(scored_origins)]
    if prior_origins is None:
        prior_origins = set(gold.loc[pd.to_numeric(gold["year"]) < year, "origin"])
    if period is not None:
        gold = gold[gold["fl_date"] < period[1]]
    gold = gold.assign(**{DAY: pd.to_datetime(gold["fl_date"]).to_numpy()})
    if period is not None:
        gold = month_window(gold, period[0], params)
    # one order for the rows (and the forest's training rows), whatever the workers
    gold = gold.sort_values(["origin", "fl_date"], kind="stable")
    target = target_mask(gold, year, period)
    gold[TARGET] = target
    groups = dict(tuple(gold.groupby("origin", sort=True)))
    # Big airports first, dealt round-robin, so both workers finish at about the same time.
    order = sorted(scored_origins, key=lambda o: -len(groups[o]))
    n_chunks = max(1, min(len(order), params.n_jobs * 4))
    chunks = [[(o, groups[o], o in prior_origins) for o in order[i::n_chunks]]
              for i in range(n_chunks)]
    args = (year, params, originals, only_originals, period)
    if params.n_jobs == 1 or len(chunks) == 1:
        parts = [_score_chunk(c, *args) for c in chunks]
    else:
        parts = _score_beside_workers(chunks, params.n_jobs - 1, args)
    columns = {origin: cols for part in parts for origin, cols in part[0].items()}
    seconds: dict[str, float] = {}
    for part in parts:
        for name, sec in part[2].items():
            seconds[name] = seconds.get(name, 0.0) + sec
    problems = sorted((p for part in parts for p in part[1]),
                      key=lambda p: (p["origin"], p["detector"], p["message"]))
    if not columns:
        return pd.DataFrame(columns=OUTPUT_COLUMNS), problems
    base = gold.loc[target, [c for c in OUTPUT_COLUMNS if c in gold.columns]]
    scored = _join_columns(base, columns)
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
    scored.attrs["detector_seconds"] = {k: round(v, 3) for k, v in seconds.items()}
    return scored, problems
