"""`ml.detectors.arma_one_step` against statsmodels' own ARIMA filter.

The scorer's ARIMA detector runs its own one-step Kalman filter instead of statsmodels'
(docs/ml.md, "Scoring cost"); this pins its predictions to statsmodels' on series shaped like
the scorer's (weekday-adjusted, centred delays with missing and blanked days, runs of them
included), for every order the search can pick and the parameters it would pick them with.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.signal import lfilter

from ml import detectors


def statsmodels_predictions(x, ar, ma, params, exact=False):
    """statsmodels' one-step predictions; `exact` turns off its convergence shortcut (once the
    forecast variance changes by less than 1e-19 it keeps the gain as it is, which moves later
    predictions by up to ~1e-9 of the series' spread: the detector's filter does not)."""
    from statsmodels.tsa.arima.model import ARIMA

    model = ARIMA(x, order=(ar, 0, ma), trend="n")
    if exact:
        model.ssm.tolerance = 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = model.filter(params, cov_type="none")
    return np.asarray(res.fittedvalues)


def delay_like(days, seed):
    """A centred delay series: ARMA noise with heavy-tailed days, gaps (single missing days,
    runs of up to three weeks, a leading run) as a small airport's series has."""
    rng = np.random.default_rng(seed)
    phi = rng.uniform(-0.5, 0.9)
    theta = rng.uniform(-0.5, 0.6)
    e = rng.standard_t(4, days + 50) * rng.uniform(2, 15)
    x = lfilter([1.0, theta], [1.0, -phi], e)[50:]
    x[rng.random(days) < rng.uniform(0, 0.15)] = np.nan
    for _ in range(rng.integers(0, 4)):
        first = rng.integers(0, days)
        x[first: first + rng.integers(1, 22)] = np.nan
    if seed % 5 == 0:
        x[: rng.integers(1, 10)] = np.nan
    return x


CASES = [(days, seed) for days in (30, 45, 90, 150, 240, 420, 500) for seed in range(6)]


@pytest.mark.parametrize("days,seed", CASES)
def test_the_own_filter_predicts_what_statsmodels_filter_does(days, seed):
    x = delay_like(days, seed)
    filled = np.nan_to_num(x, nan=0.0)
    checked = 0
    candidates = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for ar in range(3):
            for ma in range(3):
                try:
                    params = detectors._hannan_rissanen(filled, ar, ma, {})
                except (ValueError, np.linalg.LinAlgError):
                    continue
                if (detectors._stationary_and_invertible(params[:ar], params[ar:ar + ma])
                        and params[-1] > 0):
                    candidates[(ar, ma)] = params
        # the order and parameters the detector itself picks
        ar, ma, params = detectors._select_arma_order(filled, 2, 2)
        candidates[(ar, ma)] = params
    for (ar, ma), params in candidates.items():
        got = detectors.arma_one_step(x, params[:ar], params[ar:ar + ma], params[-1])
        expected = statsmodels_predictions(x, ar, ma, params)
        # rtol 1e-9, and for predictions near 0 (where rounding in the sums decides the
        # digits) 1e-9 of the series' own spread
        np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-9 * np.nanstd(x),
                                   err_msg=f"ARMA({ar}, {ma}) {params}")
        # without statsmodels' convergence shortcut the two agree to rounding
        exact = statsmodels_predictions(x, ar, ma, params, exact=True)
        np.testing.assert_allclose(got, exact, rtol=1e-11, atol=1e-12 * np.nanstd(x),
                                   err_msg=f"ARMA({ar}, {ma}) {params}, exact")
        checked += 1
    assert checked >= 1


@pytest.mark.parametrize("phi,theta", [([0.995], []), ([1.2, -0.3], [0.5]), ([], [0.98, -0.1]),
                                       ([0.5, -0.3], [0.4, 0.3]), ([], [])])
def test_the_own_filter_matches_at_the_edges_of_stationarity(phi, theta):
    if phi and np.any(np.abs(np.roots([1.0, *(-np.asarray(phi))])) >= 1):
        pytest.skip("not stationary")
    x = delay_like(200, 99)
    params = np.array([*phi, *theta, 40.0])
    got = detectors.arma_one_step(x, np.array(phi), np.array(theta), 40.0)
    np.testing.assert_allclose(got, statsmodels_predictions(x, len(phi), len(theta), params),
                               rtol=1e-9, atol=1e-9 * np.nanstd(x))


def test_every_day_missing_predicts_zero():
    x = np.full(40, np.nan)
    got = detectors.arma_one_step(x, np.array([0.5]), np.array([0.3]), 2.0)
    np.testing.assert_array_equal(got, statsmodels_predictions(x, 1, 1, [0.5, 0.3, 2.0]))


@pytest.mark.parametrize("x", [np.zeros(60), np.r_[np.full(30, np.nan), np.zeros(30)]])
def test_a_constant_series_searched_to_zero_variance_predicts_what_statsmodels_does(x):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ar, ma, params = detectors._select_arma_order(np.nan_to_num(x), 2, 2)
    assert params[-1] == 0.0  # the search's fallback
    got = detectors.arma_one_step(x, params[:ar], params[ar:ar + ma], params[-1])
    np.testing.assert_array_equal(got, statsmodels_predictions(x, ar, ma, params))
