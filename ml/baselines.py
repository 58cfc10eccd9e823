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


def nanmedian_rows(a: np.ndarray) -> np.ndarray:
    """`np.nanmedian(a, axis=1)` of a 2-D float array, bit for bit, without its cost.

    For rows shorter than 600 numpy takes the median through numpy.ma (`_nanmedian_small`):
    30 µs a call plus ~1 µs a row, most of a month's seasonal baselines. Here each row is
    sorted (NaN sorts last), k = its count of non-NaN values, and the median is
    (row[(k - 1) // 2] + row[k // 2]) / 2, the same sum and halving numpy.ma does (for odd k
    the same value twice: exact); rows without a value give NaN (without numpy's warning).
    A (420, 29) window: 1.4 ms in numpy, 0.14 ms here. tests/test_ml_detectors.py compares
    it with np.nanmedian.
    """
    a = np.sort(np.asarray(a, dtype=float), axis=1)
    k = a.shape[1] - np.count_nonzero(np.isnan(a), axis=1)
    rows = np.arange(a.shape[0])
    lo = a[rows, np.maximum(k - 1, 0) // 2]
    hi = a[rows, np.minimum(k // 2, a.shape[1] - 1)]
    return np.where(k > 0, (lo + hi) / 2, np.nan)


def median_by_group(values: np.ndarray, group: np.ndarray, groups: int) -> np.ndarray:
    """`np.median(values[group == g])` for g in range(groups), bit for bit (finite `values`);
    NaN for an empty group. One sort instead of a numpy call per group."""
    values = np.asarray(values, dtype=float)
    order = np.lexsort((values, group))
    counts = np.bincount(group, minlength=groups)
    first = np.concatenate(([0], np.cumsum(counts)[:-1]))
    v = values[order]
    out = np.full(groups, np.nan)
    has = counts > 0
    lo = first[has] + (counts[has] - 1) // 2
    hi = first[has] + counts[has] // 2
    # np.median's mean of the middle one or two: a / 1, or (a + b) / 2
    out[has] = (v[lo] + v[hi]) / 2
    return out


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
        out[ok] = nanmedian_rows(win[ok])
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
    known = np.isfinite(values)
    eff = median_by_group(values[known], weekday[known], 7)
    return np.nan_to_num(eff, nan=0.0)
