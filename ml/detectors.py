"""Anomaly detectors for one airport's daily series.

Every detector is a pure function `run(series, params, inputs) -> Detection`, registered as a
`Detector` with the names of the detectors whose results it reads (`needs`): `series` is an
`AirportSeries` (earlier years included) and `inputs` maps each of those names to its
Detection (e.g. the ARIMA detector reuses the seasonal one's weekday profile and exclusion
mask). `run_detectors` runs them in an order derived from `needs`. A Detection holds, per
calendar day, the expected value, a band, a score and a flag, for the ensemble's members a
strength (score over the detector's own threshold, 0 where its other conditions fail;
flag = strength >= 1), and in `fitted` what other detectors reuse.
Thresholds are in units of each series' own noise (robust scales of its residuals, tail
probabilities of its counts), so they carry from airport to airport; their values were chosen
on real flights (`python -m ml evaluate --tune`, docs/ml.md). All detectors are one-sided where
the direction matters: a late day is an anomaly, a quiet day (holiday, Saturday) is not.

The two `original_*` detectors reproduce the previous pipeline's rules for the evaluation only.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from graphlib import TopologicalSorter
from types import MappingProxyType

import numpy as np
import pandas as pd

from ml.baselines import loo_rolling_median, robust_scale, weekday_effect
from ml.counts import count_anomaly, rate_at_score
from ml.params import Params
from ml.series import AirportSeries


@dataclass
class Detection:
    expected: np.ndarray
    band_low: np.ndarray
    band_high: np.ndarray
    score: np.ndarray
    flag: np.ndarray
    warnings: list[str] = field(default_factory=list)
    # score / threshold where every other condition of the flag holds, else 0: flag == strength
    # >= 1. The ensemble combines strengths, so one strong signal is enough and two nearly
    # strong ones can be too. None for detectors that are not ensemble members.
    strength: np.ndarray | None = None
    # what later detectors reuse besides the fields above (e.g. an exclusion mask), read-only
    fitted: Mapping[str, np.ndarray] = field(default_factory=dict)

    def with_fitted(self, **arrays: np.ndarray) -> Detection:
        return replace(self, fitted=MappingProxyType(dict(self.fitted, **arrays)))

    @classmethod
    def empty(cls, length: int) -> Detection:
        nan = np.full(length, np.nan)
        return cls(nan, nan.copy(), nan.copy(), nan.copy(), np.zeros(length, dtype=bool))

    @classmethod
    def gated(cls, expected, band_low, band_high, score, threshold: float,
              conditions: np.ndarray) -> Detection:
        """A detection whose flag is `score >= threshold` and `conditions`."""
        strength = np.where(conditions, np.clip(np.nan_to_num(score, nan=0.0), 0, None), 0.0)
        strength = strength / threshold
        return cls(expected, band_low, band_high, score, strength >= 1.0, strength=strength)


# What a detector receives from the detectors it `needs`: their Detections by name.
Inputs = Mapping[str, Detection]


def _nan_gt(values: np.ndarray, threshold: float) -> np.ndarray:
    return np.nan_to_num(values, nan=-np.inf) > threshold


# --------------------------------------------------------------------------------------------
# Robust seasonal detector on the mean departure delay
# --------------------------------------------------------------------------------------------
def _seasonal_baseline(y, weekday, exclude, half_width):
    """Level (leave-one-out rolling median) + weekday profile, fitted on non-excluded days."""
    yc = np.where(exclude, np.nan, y)
    eff = np.zeros(7)
    level = np.zeros(len(y))
    for _ in range(2):  # alternate: level given weekday profile, profile given level
        level = loo_rolling_median(yc - eff[weekday], half_width)
        eff = weekday_effect(yc - level, weekday)
    return level + eff[weekday], eff


def delay_scale(residual: np.ndarray, flights: np.ndarray, exclude: np.ndarray,
                flight_sd: float) -> np.ndarray:
    """Per-day standard deviation of a daily mean delay's residual: sqrt(tau^2 + s^2 / n).

    A day's mean over n flights varies for two reasons: the day itself (weather, traffic: tau,
    the same for every day of the airport) and the sampling of its n flights (s^2 / n, s the
    spread of single flights' delays). tau comes from the series' own residuals on ordinary
    days (robust scale at the airport's typical volume minus the sampling part), so a hub's
    55-flight storm day is judged almost like its 376-flight days, and a 2-flight day at a
    small airport is judged on the noise of 2 flights.
    """
    flights = np.asarray(flights, dtype=float)
    known = (flights > 0) & np.isfinite(residual) & ~exclude
    typical = np.median(flights[known]) if known.any() else 1.0
    usual = known & (flights >= 0.5 * typical)
    total = robust_scale(np.where(usual, residual, np.nan))
    if not np.isfinite(total):
        return np.full(len(flights), np.nan)
    sampling = flight_sd**2 / typical
    tau2 = max(total**2 - sampling, (0.3 * total) ** 2)
    with np.errstate(divide="ignore"):
        return np.where(flights > 0, np.sqrt(tau2 + flight_sd**2 / np.maximum(flights, 1)),
                        np.nan)


def _delay_conditions(excess: np.ndarray, flights: np.ndarray, late: Detection, p: Params):
    """Besides its z: a delay excess that matters, and enough flights to mean it (or, on a
    small day, the delayed-share tail backing it: many late flights, not one very late)."""
    small = flights < p.delay_min_flights
    return _nan_gt(excess, p.delay_min_excess - 1e-12) & (~small | _late_support(late, p))


def _delay_detection(expected, half_band, excess, z, flights, late: Detection, p: Params,
                     z_min: float) -> Detection:
    """A delay detection with two ways to the flag: z >= z_min with an excess of at least
    delay_min_excess minutes, or, for a day that is delay_large_excess minutes late, a z of
    delay_large_z (a volatile airport's bad day, within its wide band but an hour late)."""
    ok = _delay_conditions(excess, flights, late, p)
    zz = np.clip(np.nan_to_num(z, nan=0.0), 0, None)
    strength = np.where(ok, zz / z_min, 0.0)
    large = ok & _nan_gt(excess, p.delay_large_excess - 1e-12)
    strength = np.maximum(strength, np.where(large, zz / p.delay_large_z, 0.0))
    band_high = expected + np.maximum(half_band, p.delay_min_excess)
    return Detection(expected, expected - half_band, band_high, z, strength >= 1.0,
                     strength=strength)


def _late_support(late: Detection, p: Params) -> np.ndarray:
    """Days whose delayed-share score backs a delay flag (`delayed_share`'s Detection)."""
    if not np.isfinite(late.score).any():
        return np.zeros(len(late.score), dtype=bool)  # no late counts: small days never
    return np.nan_to_num(late.score, nan=0.0) >= p.late_support


def seasonal_robust(s: AirportSeries, p: Params, inputs: Inputs) -> Detection:
    """Weekday profile + local level by leave-one-out medians; the residual is judged on the
    per-day scale of `delay_scale` (the series' own day-to-day noise plus the sampling noise of
    that day's flights). Two passes: days flagged in the first are left out of the second
    pass's baseline and scale, so a storm does not widen the band that judges it.
    """
    y = s.delay
    wd = s.weekday
    exclude = np.zeros(len(s), dtype=bool)
    for _ in range(2):
        expected, eff = _seasonal_baseline(y, wd, exclude, p.level_half_width)
        u = y - expected
        sd = delay_scale(u, s.flights, exclude, s.flight_delay_sd(p.flight_delay_sd))
        z = u / sd
        exclude = exclude | _nan_gt(np.abs(z), p.delay_z)
    half_band = p.delay_z * sd
    det = _delay_detection(expected, half_band, u, z, s.flights, inputs["delayed_share"], p,
                           p.delay_z)
    return det.with_fitted(exclude=exclude, weekday_effect=eff)


# --------------------------------------------------------------------------------------------
# Volume collapse: far fewer flights left than the airport's norm for that weekday
# --------------------------------------------------------------------------------------------
def thin_schedule_days(dates: pd.DatetimeIndex) -> np.ndarray:
    """Days on which US airlines fly a planned, much thinner schedule: New Year's Day,
    Independence Day, Thanksgiving Day, Christmas Eve and Day, New Year's Eve. Their drop in
    flights is the schedule, not a disruption (cancellations on them are still judged)."""
    month, day = dates.month.to_numpy(), dates.day.to_numpy()
    thanksgiving = (month == 11) & (dates.day_of_week.to_numpy() == 3) & (day >= 22) & (day <= 28)
    fixed = (((month == 1) & (day == 1)) | ((month == 7) & (day == 4))
             | ((month == 12) & np.isin(day, (24, 25, 31))))
    return thanksgiving | fixed


def volume_drop(s: AirportSeries, p: Params, inputs: Inputs) -> Detection:
    """Flag days on which the flights that left collapsed against the weekday norm.

    Catches a storm in a file without cancelled rows (they are simply missing: the real 2001
    set) and strengthens the cancellation signal where they are present (flown = scheduled -
    cancelled). Modelled on log(1 + flights): level by leave-one-out rolling median, weekday
    profile, robust scale of the residuals; one-sided (a busy day is not an anomaly). A flag
    needs the drop to be improbable for this airport (z) and large (at most
    1 - volume_min_drop of the expected flights) and not be one of the days airlines plan a
    thinner schedule for (`thin_schedule_days`).
    """
    flown = np.where(s.scheduled > 0, s.flights, np.nan)
    x = np.log1p(flown)
    exclude = np.zeros(len(s), dtype=bool)
    for _ in range(2):
        expected_log, _eff = _seasonal_baseline(x, s.weekday, exclude, p.level_half_width)
        resid = x - expected_log
        scale = robust_scale(np.where(exclude, np.nan, resid))
        z = -resid / scale
        exclude = exclude | _nan_gt(z, p.volume_z)
    expected = np.expm1(expected_log)
    ratio = np.divide(flown, expected, out=np.full(len(s), np.nan), where=expected > 0)
    conditions = (_nan_gt(1.0 - ratio, p.volume_min_drop - 1e-12)
                  & _nan_gt(expected, p.delay_min_flights - 1e-12)
                  & ~thin_schedule_days(s.dates))
    band_low = np.minimum(np.expm1(expected_log - p.volume_z * scale),
                          expected * (1.0 - p.volume_min_drop))
    return Detection.gated(expected, band_low, np.full(len(s), np.nan), z, p.volume_z, conditions)


# --------------------------------------------------------------------------------------------
# Count detectors: cancellation waves, and the share of flights that left late
# --------------------------------------------------------------------------------------------
def cancel_wave(s: AirportSeries, p: Params, inputs: Inputs) -> Detection:
    """Flag days whose cancelled count is improbably high for that airport and that volume.

    Catches the day a blizzard is forecast: most flights cancelled, the few that fly leave on
    time, so the delay detectors see nothing. Score: -log10 P(X >= cancelled | scheduled,
    baseline rate), overdispersed (see ml.counts).
    """
    p0, rho, score, flag, _z = count_anomaly(
        s.cancelled, s.scheduled, half_width=p.cancel_half_width, prior_n=p.count_prior_flights,
        min_rate=p.cancel_min_rate, score_min=p.cancel_score_min, min_excess=p.cancel_min_excess,
    )
    band_high = np.minimum(
        np.maximum(rate_at_score(p.cancel_score_min, s.scheduled, p0, rho, where=s.target),
                   p0 + p.cancel_min_excess), 1.0)
    rate = np.divide(s.cancelled, s.scheduled, out=np.full(len(s), np.nan), where=s.scheduled > 0)
    det = Detection.gated(p0, np.zeros(len(s)), band_high, score, p.cancel_score_min,
                          _nan_gt(rate - p0, p.cancel_min_excess - 1e-12))
    # count_anomaly's own flag (its tail and excess tests) leaves days out of the forest's training
    return det.with_fitted(exclude=flag)


def delayed_share(s: AirportSeries, p: Params, inputs: Inputs) -> Detection:
    """Flag days when improbably many of the flights that left were 15+ minutes late.

    The volume-aware companion of the mean: one flight two hours late moves a small airport's
    mean delay as much as a storm moves a hub's, but it is one late flight, and the tail
    probability of "1 of 1 late" is never small.
    """
    if s.delayed is None or not np.isfinite(s.delayed).any():
        return Detection.empty(len(s))
    p0, rho, score, _flag, _z = count_anomaly(
        s.delayed, s.flights, half_width=p.late_half_width, prior_n=p.count_prior_flights,
        min_rate=0.01, score_min=p.late_score_min, min_excess=p.late_min_excess,
    )
    band_high = np.minimum(
        np.maximum(rate_at_score(p.late_score_min, s.flights, p0, rho, where=s.target),
                   p0 + p.late_min_excess),
        1.0)
    share = np.divide(s.delayed, s.flights, out=np.full(len(s), np.nan), where=s.flights > 0)
    return Detection.gated(p0, np.zeros(len(s)), band_high, score, p.late_score_min,
                           _nan_gt(share - p0, p.late_min_excess - 1e-12))


# --------------------------------------------------------------------------------------------
# Isolation Forest, done right
# --------------------------------------------------------------------------------------------
def _one_sided_features(inputs: Inputs) -> np.ndarray:
    # Clipped at 0: a quiet day (negative z) looks exactly like a normal day to the forest.
    # The two count scores are tail probabilities, so a day of one flight cannot look extreme.
    dz = np.clip(np.nan_to_num(inputs["seasonal_robust"].score, nan=0.0), 0, None)
    late = np.nan_to_num(inputs["delayed_share"].score, nan=0.0)
    cancel = np.nan_to_num(inputs["cancel_wave"].score, nan=0.0)
    drop = np.clip(np.nan_to_num(inputs["volume_drop"].score, nan=0.0), 0, None)
    return np.column_stack([dz, late, cancel, drop])


def isolation_forest_features(s: AirportSeries, p: Params, inputs: Inputs) -> Detection:
    """Per airport, only the features and the training mask; the forest itself is fitted
    once per run on all airports' days (`isolation_forest_panel`): the features are already
    normalised per airport, and one forest over ~100 k days beats 350 forests over ~365 days
    each, in both the stability of the rare-event region and run time (~1 s instead of ~100 s).
    """
    train = ((s.scheduled > 0) & ~inputs["seasonal_robust"].fitted["exclude"]
             & ~inputs["cancel_wave"].fitted["exclude"] & ~inputs["volume_drop"].flag)
    return Detection.empty(len(s)).with_fitted(features=_one_sided_features(inputs), train=train)


def isolation_forest_panel(X: np.ndarray, train: np.ndarray, p: Params):
    """Seeded Isolation Forest on one-sided, deseasonalised, volume-aware features.

    Fitted on the days no robust detector flagged, so the anomalies it must find are not part
    of what it learns as normal; flagged by a fixed threshold on the anomaly score instead of a
    fixed share of days (contamination), so a clean year can have no flag at all.
    Returns (score, flag) for every row of X.
    """
    from sklearn.ensemble import IsolationForest

    if train.sum() < 2:
        return np.full(len(X), np.nan), np.zeros(len(X), dtype=bool)
    forest = IsolationForest(n_estimators=p.iforest_trees, random_state=p.seed)
    forest.fit(X[train])
    score = -forest.score_samples(X)
    return score, (score > p.iforest_threshold) & (X.max(axis=1) > 0)


# --------------------------------------------------------------------------------------------
# ARIMA, done right
# --------------------------------------------------------------------------------------------
ARIMA_LEAD_IN_DAYS = 56  # the filter starts this many days before the scored year


def _select_arma_order(x: np.ndarray, max_p: int, max_q: int) -> tuple[int, int, np.ndarray]:
    """Smallest-AIC stationary, invertible ARMA(p, q) by Hannan-Rissanen (one search, fast).

    Each candidate is statsmodels' `hannan_rissanen(x, ar_order=p, ma_order=q, demean=False)`,
    computed by `_hannan_rissanen` instead of calling it: statsmodels' per-call overhead and its
    long-AR first stage, redone for every candidate, made the search cost 19 ms per airport
    (420 days, p, q <= 2); sharing the first stage brings it to 1.8 ms.
    tests/test_ml_detectors.py checks the orders and parameters against statsmodels.
    """
    x = np.asarray(x, dtype=float)
    n = len(x)
    long_ar_resid: dict[int, np.ndarray] = {}
    best = None
    for ar in range(max_p + 1):
        for ma in range(max_q + 1):
            try:
                params = _hannan_rissanen(x, ar, ma, long_ar_resid)
            except (ValueError, np.linalg.LinAlgError):
                continue
            sigma2 = params[-1]
            if not _stationary_and_invertible(params[:ar], params[ar:ar + ma]) or not sigma2 > 0:
                continue
            aic = n * np.log(sigma2) + 2 * (ar + ma + 1)
            if best is None or aic < best[0]:
                best = (aic, ar, ma, params)
    if best is None:
        return 0, 0, np.array([np.nanvar(x)])
    return best[1], best[2], best[3]


def _hannan_rissanen(x: np.ndarray, ar: int, ma: int, long_ar_resid: dict) -> np.ndarray:
    """statsmodels' Hannan-Rissanen ARMA(ar, ma) estimate (demean=False): [ar..., ma..., sigma2].

    Same long-AR order, regressors, sample trimming, bias-correction rule and sigma2 as
    statsmodels, and a ValueError where it raises one (orders too large for the series,
    non-finite estimates). `long_ar_resid` keeps the first stage's residuals by long-AR order
    for the other candidates.
    """
    n = len(x)
    long_order = max(int(np.floor(np.log(n) ** 2)), 2 * max(ar, ma))
    if long_order >= n or long_order <= max(ar, ma):
        raise ValueError(f"long AR order {long_order} does not fit ARMA({ar}, {ma}) on {n} values")
    if ar == 0 and ma == 0:
        return np.array([np.var(x)])
    if ma == 0:
        coef, scale = _ols(x[ar:], _lags(x, ar, ar))
        return _finite_or_raise(np.append(coef, scale))
    # the first stage runs before this check, as in statsmodels, for the same warnings
    if long_order not in long_ar_resid:
        long_ar_resid[long_order] = _long_ar_residuals(x, long_order)
    if ma >= n - long_order:
        raise ValueError(f"MA({ma}) needs more than {n - long_order} long-AR residuals")
    first = long_order + ma
    y = x[first:]
    X = np.hstack([_lags(x, ar, first), _lags(long_ar_resid[long_order], ma, first)])
    coef, scale = _ols(y, X)
    params = _finite_or_raise(np.append(coef, scale))
    phi, theta = coef[:ar], coef[ar:]
    if not _stationary_and_invertible(phi, theta):
        return params
    # Bias correction (Brockwell and Davis 2016, 5.1.4 step 3) as statsmodels computes it: z is
    # its recursion (zero before `start`), w is z filtered by 1 - theta_1 B - ... (the book's
    # 1 / theta(B) is not what it does), sigma2 is then the step-2 regression's without ddof.
    start = max(ar, ma)
    ar_poly = np.concatenate(([1.0], -phi))
    z = np.zeros(n)
    z[start:] = _all_pole_filter(np.concatenate(([1.0], theta)), np.convolve(x, ar_poly)[start:n])
    v = _all_pole_filter(ar_poly, z)
    w = np.convolve(z, np.concatenate(([1.0], -theta)))[:n]
    correction, _ = _ols(z[start:], np.hstack([_lags(v, ar, start), _lags(w, ma, start)]))
    coef = coef + correction
    resid = y - X @ coef
    return _finite_or_raise(np.append(coef, np.inner(resid, resid) / len(resid)))


def _all_pole_filter(a: np.ndarray, x: np.ndarray) -> np.ndarray:
    """scipy.signal.lfilter([1.0], a, x) for a[0] = 1, bit for bit: its direct form II
    transposed, y[t] = x[t] + z[0], z[k] <- z[k + 1] - y[t] a[k + 1], the last z[K - 1] <-
    -y[t] a[K] (the zero numerator terms it adds change nothing). Importing scipy.signal costs
    every worker ~1-3 s (scipy 1.16 loads all of it), more than a month's whole
    Hannan-Rissanen search on one core; these filters are of order <= 4 over a few hundred
    days. tests/test_ml_detectors.py compares the two.
    """
    coef = [float(c) for c in a[1:]]
    order = len(coef)
    if order == 0:
        return np.array(x, dtype=float)
    z = [0.0] * order
    out = []
    for xt in np.asarray(x, dtype=float).tolist():
        y = z[0] + xt
        out.append(y)
        for k in range(order - 1):
            z[k] = z[k + 1] - y * coef[k]
        z[order - 1] = -(y * coef[order - 1])
    return np.array(out)


def _long_ar_residuals(x: np.ndarray, order: int) -> np.ndarray:
    """Residuals of statsmodels' first stage, indexed like x (the first `order` are unused): the
    Yule-Walker ("mle", on demeaned autocovariances) AR(order) applied to x as it is."""
    n = len(x)
    xd = x - x.mean()
    acov = np.array([(xd**2).sum()] + [(xd[:-k] * xd[k:]).sum() for k in range(1, order + 1)]) / n
    lag = np.arange(order)
    toeplitz = acov[np.abs(lag[:, None] - lag[None, :])]
    try:
        phi = np.linalg.solve(toeplitz, acov[1:])
    except np.linalg.LinAlgError as err:
        if "Singular matrix" not in str(err):
            raise
        _warn_singular("Matrix is singular. Using pinv.")
        phi = np.linalg.pinv(toeplitz) @ acov[1:]
    resid = np.zeros(n)
    resid[order:] = x[order:] - _lags(x, order, order) @ phi
    return resid


def _lags(v: np.ndarray, count: int, first: int) -> np.ndarray:
    """Rows t = first, first + 1, ...: v[t - 1], ..., v[t - count] (statsmodels' lagmat)."""
    if count == 0:
        return np.empty((len(v) - first, 0))
    return np.column_stack([v[first - lag: len(v) - lag] for lag in range(1, count + 1)])


def _ols(y: np.ndarray, X: np.ndarray) -> tuple[np.ndarray, float]:
    """statsmodels' OLS(y, X).fit(): its pseudo-inverse (singular values at or below 1e-15 of the
    largest dropped) and scale = residual sum of squares / (nobs - rank)."""
    u, s, vt = np.linalg.svd(X, full_matrices=False)
    s_inv = np.divide(1.0, s, out=np.zeros_like(s), where=s > 1e-15 * s.max())
    coef = (vt.T @ (s_inv[:, None] * u.T)) @ y
    rank = int(np.count_nonzero(s > s.max() * len(s) * np.finfo(float).eps))
    if rank < X.shape[1]:
        _warn_singular("The design matrix is rank-deficient. "
                       "The model parameters are not uniquely determined.")
    resid = y - X @ coef
    return coef, np.dot(resid, resid) / (len(y) - rank)


def _warn_singular(message: str) -> None:
    """The warning statsmodels gives, so `arima` records the same messages as before."""
    from statsmodels.tools.sm_exceptions import SingularMatrixWarning

    warnings.warn(message, SingularMatrixWarning, stacklevel=2)


def _finite_or_raise(params: np.ndarray) -> np.ndarray:
    """statsmodels refuses NaN or Inf parameters with a ValueError; so does the search."""
    if not np.isfinite(params).all():
        raise ValueError("Hannan-Rissanen estimates include NaN or Inf values")
    return params


def _stationary_and_invertible(phi: np.ndarray, theta: np.ndarray) -> bool:
    """statsmodels' test: the eigenvalues of each lag polynomial's companion matrix (the inverse
    roots) are below 1 - 1e-10 in modulus."""
    for companion_column in (phi, -theta):
        k = len(companion_column)
        if k == 0:
            continue
        companion = np.eye(k, k, 1)
        companion[:, 0] = companion_column
        if not np.all(np.abs(np.linalg.eigvals(companion)) < 1 - 1e-10):
            return False
    return True


def arma_one_step(x: np.ndarray, phi: np.ndarray, theta: np.ndarray,
                  sigma2: float) -> np.ndarray:
    """One-step-ahead predictions of a zero-mean ARMA(p, q) series, NaN = missing: what
    statsmodels' `ARIMA(x, order=(p, 0, q), trend="n").filter([*phi, *theta, sigma2],
    cov_type="none").fittedvalues` gives, without its cost (4.2 ms a call, three quarters of
    it building and initialising the state space; this loop: see docs/ml.md).

    The exact Kalman filter of SARIMAX's (Harvey) state space: state dimension
    r = max(p, q + 1), transition T with phi in its first column and ones above the diagonal,
    selection R = [1, theta...], state variance sigma2, no measurement error; the stationary
    initialisation a0 = 0, P0 solving P = T P T' + R R' sigma2. A missing day is a prediction
    step without update. Once the predicted covariance repeats exactly it stays put while days
    are observed, so the covariance steps are skipped until the next missing day.
    tests/test_ml_arma_filter.py pins it to statsmodels.
    """
    x = np.asarray(x, dtype=float)
    p, q = len(phi), len(theta)
    r = max(p, q + 1)
    ph = [float(v) for v in phi] + [0.0] * (r - p)
    rr = [1.0] + [float(v) for v in theta] + [0.0] * (r - q - 1)
    T = np.eye(r, k=1)
    T[:, 0] = ph
    rqr = sigma2 * np.outer(rr, rr)
    p0 = np.linalg.solve(np.eye(r * r) - np.kron(T, T), rqr.ravel()).reshape(r, r)
    P = ((p0 + p0.T) / 2).tolist()
    Q = rqr.tolist()
    a = [0.0] * r
    ix = range(r)
    out = np.empty(len(x))
    steady = False
    for t, (y, known) in enumerate(zip(x.tolist(), (~np.isnan(x)).tolist())):
        out[t] = a[0]
        f = P[0][0]
        # sigma2 = 0 (the search's fallback on a constant series) knows the state exactly:
        # nothing to update, statsmodels then predicts 0 throughout as well
        observed = known and f > 0
        if observed:
            k = [P[i][0] / f for i in ix]
            v = y - a[0]
            a = [a[i] + k[i] * v for i in ix]
        # predict: a <- T a (phi times the first element plus the next one)
        a = [ph[i] * a[0] + (a[i + 1] if i + 1 < r else 0.0) for i in ix]
        if steady and observed:
            continue
        if observed:
            P0 = P[0]
            U = [[P[i][j] - P[i][0] * P0[j] / f for j in ix] for i in ix]
        else:
            U = P
        # T U T' + R R' sigma2, with (T U)[i] = phi_i U[0] + U[i + 1]
        TU = [[ph[i] * U[0][j] + (U[i + 1][j] if i + 1 < r else 0.0) for j in ix] for i in ix]
        new = [[ph[j] * TU[i][0] + (TU[i][j + 1] if j + 1 < r else 0.0) + Q[i][j]
                for j in ix] for i in ix]
        new = [[(new[i][j] + new[j][i]) / 2 for j in ix] for i in ix]
        steady = observed and new == P
        P = new
    return out


def arima(s: AirportSeries, p: Params, inputs: Inputs) -> Detection:
    """One-step-ahead ARMA forecasts of the weekday-adjusted delay (a day never predicts itself).

    The order is searched once (AIC, p <= max_p, q <= max_q) on the scored year plus a lead-in,
    with earlier anomalies blanked out; the Kalman filter then treats blanked and missing days as
    missing. Residuals are judged like the seasonal detector's: on `delay_scale`, with the same
    two ways to a flag (`_delay_detection`).
    Estimation warnings (the order search's) are kept per airport rather than printed.
    """
    y = s.delay
    seasonal = inputs["seasonal_robust"]
    eff = seasonal.fitted["weekday_effect"][s.weekday]
    exclude = seasonal.fitted["exclude"]
    x = np.where(exclude, np.nan, y) - eff
    centre = np.nanmedian(x)
    x = x - centre
    out = Detection.empty(len(s))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        # Searched and filtered over the scored year and a lead-in from the year before, so
        # the year's first weeks get real one-step forecasts.
        first_target = int(np.argmax(s.target)) if s.target.any() else 0
        start = max(0, first_target - ARIMA_LEAD_IN_DAYS)
        ar, ma, params = _select_arma_order(np.nan_to_num(x[start:], nan=0.0),
                                            p.arima_max_p, p.arima_max_q)
        pred = np.full(len(s), np.nan)
        pred[start:] = arma_one_step(x[start:], params[:ar], params[ar:ar + ma], params[-1])
    out.warnings = sorted({f"{w_.category.__name__}: {w_.message}" for w_ in caught})
    expected = pred + centre + eff
    u = y - expected
    sd = delay_scale(u, s.flights, exclude, s.flight_delay_sd(p.flight_delay_sd))
    z = u / sd
    half_band = p.arima_z * sd
    gated = _delay_detection(expected, half_band, u, z, s.flights, inputs["delayed_share"], p,
                             p.arima_z)
    gated.warnings = out.warnings
    return gated


# --------------------------------------------------------------------------------------------
# The original pipeline's rules (evaluation rows only)
# --------------------------------------------------------------------------------------------
def original_isolation_forest(s: AirportSeries, p: Params, inputs: Inputs) -> Detection:
    """Its rule: IsolationForest(contamination=0.01) on the one mean-delay feature of the year.

    Seeded here only so the evaluation table is reproducible; the original had no seed.
    """
    from sklearn.ensemble import IsolationForest

    out = Detection.empty(len(s))
    rows = s.target & np.isfinite(s.delay)
    if rows.sum() < 2:
        return out
    X = s.delay[rows].reshape(-1, 1)
    forest = IsolationForest(contamination=p.original_contamination, random_state=p.seed)
    pred = forest.fit_predict(X)
    out.flag[np.flatnonzero(rows)] = pred == -1
    out.score[np.flatnonzero(rows)] = -forest.score_samples(X)
    return out


def original_arima(s: AirportSeries, p: Params, inputs: Inputs, faithful: bool = False) -> Detection:
    """Its rule: ARIMA(p, 0, q), p, q < 5 by AIC on the year alone; flag when the squared
    residual exceeds mean + 1 sigma of the squared residuals (both directions).

    The original compared 25 full maximum-likelihood fits per airport (twice). By default the
    order is picked here by Hannan-Rissanen AIC over the same grid and only the chosen order is
    fitted by maximum likelihood: the same rule, ~10x faster. `faithful=True` runs the 25-fit
    grid (the benchmark times it on a sample of airports).
    """
    from statsmodels.tsa.arima.model import ARIMA

    out = Detection.empty(len(s))
    rows = np.flatnonzero(s.target)
    if len(rows) < 10:
        return out
    y = s.delay[rows[0]: rows[-1] + 1]
    best = None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if faithful:
            orders = [(ar, ma) for ar in range(p.original_arima_max_pq + 1)
                      for ma in range(p.original_arima_max_pq + 1)]
        else:
            mean = np.nanmean(y)
            ar, ma, _ = _select_arma_order(np.nan_to_num(y - mean, nan=0.0),
                                           p.original_arima_max_pq, p.original_arima_max_pq)
            orders = [(ar, ma)]
        for ar, ma in orders:
            try:
                res = ARIMA(y, order=(ar, 0, ma)).fit(cov_type="none")
            except Exception as exc:  # noqa: BLE001 - the original skipped failing orders too
                out.warnings.append(f"order ({ar}, 0, {ma}) skipped: {type(exc).__name__}")
                continue
            if best is None or res.aic < best.aic:
                best = res
    out.warnings += sorted({f"{w_.category.__name__}: {w_.message}" for w_ in caught})
    if best is None:
        return out
    resid = np.asarray(best.resid)
    sq = resid**2
    thr = np.nanmean(sq) + np.nanstd(sq)
    idx = np.arange(rows[0], rows[-1] + 1)
    out.expected[idx] = np.asarray(best.fittedvalues)
    out.score[idx] = sq
    out.flag[idx] = _nan_gt(sq, thr)
    return out


# --------------------------------------------------------------------------------------------
# Registration, and the run over one airport
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Detector:
    """One registered detector. Everything downstream is derived from the registry: the
    scorer's `flag_<name>` / `strength_<name>` columns, the keys of the `detector_flags` and
    `detector_strengths` maps in ml.dep_delay_anomalies, the rows of `ml.detectors` (so the
    dbt docs and the dashboard name it by `label`), and its place in the ensemble (`group`)."""

    name: str
    run: Callable[[AirportSeries, Params, Inputs], Detection]
    needs: tuple[str, ...] = ()  # the detectors whose Detections `run` reads from `inputs`
    label: str = ""  # how people read it: the dashboard's "Detectors that agreed"
    description: str = ""  # one sentence for ml.detectors and the dbt docs
    # the ensemble's evidence group it votes in (ml.ensemble.EVIDENCE); None = reported only
    group: str | None = None
    reads: tuple[str, ...] = ()  # the Params fields it reads (checked by tests/test_ml_detectors.py)

    @property
    def member(self) -> bool:
        return self.group is not None


def _in_dependency_order(*detectors: Detector) -> dict[str, Detector]:
    graph = {d.name: set(d.needs) for d in detectors}
    by_name = {d.name: d for d in detectors}
    return {name: by_name[name] for name in TopologicalSorter(graph).static_order()}


# what both delay detectors' flags read (`delay_scale`, `_delay_detection`)
DELAY_FLAG_READS = ("flight_delay_sd", "delay_min_excess", "delay_large_excess", "delay_large_z",
                    "delay_min_flights", "late_support")
DETECTORS = _in_dependency_order(
    Detector("cancel_wave", cancel_wave, label="cancellation wave", group="disruption",
             description="Improbably many cancellations for the airport's rate and the day's "
                         "volume (overdispersed binomial tail).",
             reads=("cancel_half_width", "count_prior_flights", "cancel_min_rate",
                    "cancel_score_min", "cancel_min_excess")),
    Detector("delayed_share", delayed_share, label="late share", group="late_share",
             description="Improbably many flights 15+ minutes late among those flown "
                         "(overdispersed binomial tail).",
             reads=("late_half_width", "count_prior_flights", "late_score_min",
                    "late_min_excess")),
    Detector("seasonal_robust", seasonal_robust, needs=("delayed_share",), label="seasonal z",
             group="delay",
             description="Mean delay against a leave-one-out rolling median with a weekday "
                         "profile, judged on the airport's own per-day noise.",
             reads=("level_half_width", "delay_z", *DELAY_FLAG_READS)),
    Detector("volume_drop", volume_drop, label="volume drop", group="disruption",
             description="Far fewer flights left than the airport's weekday norm "
                         "(robust z on the log scale).",
             reads=("level_half_width", "volume_z", "volume_min_drop", "delay_min_flights")),
    Detector("isolation_forest", isolation_forest_features,
             needs=("seasonal_robust", "delayed_share", "cancel_wave", "volume_drop"),
             label="isolation forest",
             description="A seeded Isolation Forest over every airport's one-sided features; "
                         "reported beside the ensemble, not counted in it.",
             reads=("seed", "iforest_trees", "iforest_threshold")),
    Detector("arima", arima, needs=("seasonal_robust", "delayed_share"), label="ARIMA",
             group="delay",
             description="One-step-ahead ARMA forecasts of the weekday-adjusted mean delay, "
                         "judged like the seasonal detector.",
             reads=("arima_max_p", "arima_max_q", "arima_z", *DELAY_FLAG_READS)),
)
ORIGINAL_DETECTORS = _in_dependency_order(
    Detector("original_isolation_forest", original_isolation_forest,
             reads=("original_contamination", "seed")),
    Detector("original_arima", original_arima, reads=("original_arima_max_pq",)),
)
MEMBERS = [name for name, d in DETECTORS.items() if d.member]


def flag_column(name: str) -> str:
    """The scorer's column holding `name`'s flag (a key of ml's `detector_flags` map)."""
    return f"flag_{name}"


def strength_column(name: str) -> str:
    """The scorer's column holding member `name`'s strength (`detector_strengths` map)."""
    return f"strength_{name}"


@dataclass
class DetectorRun:
    results: dict[str, Detection]
    problems: list[dict]
    # a detector others need failed, so the airport cannot be judged
    baseline_failed: bool = False


def run_detectors(s: AirportSeries, p: Params, detectors: Mapping[str, Detector],
                  timings: dict | None = None) -> DetectorRun:
    """Every detector on one airport, in `detectors`' order (dependencies first).

    One detector's failure is recorded as a problem and does not stop the others, unless
    another detector needs its result. `timings`, when given, accumulates each one's seconds."""
    needed = {n for d in detectors.values() for n in d.needs}
    run = DetectorRun({}, [])
    for name, detector in detectors.items():
        t0 = time.perf_counter()
        try:
            det = detector.run(s, p, MappingProxyType({n: run.results[n] for n in detector.needs}))
        except Exception as exc:  # noqa: BLE001 - one airport's failed fit must not stop the run
            run.problems.append({"origin": s.origin, "detector": name, "level": "error",
                                 "message": f"{type(exc).__name__}: {exc}"[:500]})
            if name in needed:
                run.baseline_failed = True
                return run
            continue
        finally:
            if timings is not None:
                timings[name] = timings.get(name, 0.0) + time.perf_counter() - t0
        run.problems += [{"origin": s.origin, "detector": name, "level": "warning",
                          "message": message[:500]} for message in det.warnings]
        run.results[name] = det
    return run
