"""Robust baseline statistics shared by the detectors.

Two rules hold everywhere: a day never enters its own expected value (leave-one-out windows),
and days already judged anomalous are left out of baselines and spreads (`exclude` masks), so
a past storm neither raises tomorrow's expectation nor widens everyone's band.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

MAD_TO_SIGMA = 1.4826


def _windows(values: np.ndarray, half_width: int) -> np.ndarray:
    """(T, 2w+1) centred windows with the centre blanked out (leave-one-out)."""
    padded = np.concatenate([np.full(half_width, np.nan), values, np.full(half_width, np.nan)])
    win = sliding_window_view(padded, 2 * half_width + 1).copy()
    win[:, half_width] = np.nan
    return win


def loo_rolling_median(values: np.ndarray, half_width: int, min_count: int = 5) -> np.ndarray:
    """Median of the neighbours within ±half_width days, the day itself excluded.

    Where too few neighbours are known (NaN), the median of all other known values is used,
    so the first weeks of a series are still scored.
    """
    values = np.asarray(values, dtype=float)
    win = _windows(values, half_width)
    count = np.sum(~np.isnan(win), axis=1)
    out = np.full(len(values), np.nan)
    ok = count >= min_count
    if ok.any():
        out[ok] = np.nanmedian(win[ok], axis=1)
    if (~ok).any() and np.isfinite(values).any():
        out[~ok] = np.nanmedian(values)
    return out


def loo_rolling_sum(values: np.ndarray, half_width: int) -> np.ndarray:
    """Sum of the known neighbours within ±half_width days, the day itself excluded."""
    return np.nansum(_windows(np.asarray(values, dtype=float), half_width), axis=1)


def robust_scale(values: np.ndarray, floor: float = 1e-6) -> float:
    """MAD-based standard deviation of the finite values (NaN-safe, never zero)."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if len(v) < 3:
        return float("nan")
    mad = np.median(np.abs(v - np.median(v)))
    scale = MAD_TO_SIGMA * mad
    if scale <= floor:
        # Mostly-constant series: fall back to the mean absolute deviation.
        scale = 1.2533 * np.mean(np.abs(v - np.median(v)))
    return max(float(scale), floor)


def weekday_effect(values: np.ndarray, weekday: np.ndarray) -> np.ndarray:
    """Median of `values` per weekday (0 = Monday), 0 for weekdays with no known value."""
    eff = np.zeros(7)
    for d in range(7):
        v = values[(weekday == d) & np.isfinite(values)]
        if len(v):
            eff[d] = np.median(v)
    return eff
