"""The ensemble decision `is_anomaly`, and how a flagged day is described.

The candidate rules are all evaluated by `python -m ml evaluate`; `Params.ensemble_rule`
holds the one the evaluation chose (docs/ml.md has the table).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

FLAG_COLUMNS = {
    "seasonal_robust": "flag_seasonal_robust",
    "cancel_wave": "flag_cancel_wave",
    "delayed_share": "flag_delayed_share",
    "isolation_forest": "flag_isolation_forest",
    "arima": "flag_arima",
}


def _f(df: pd.DataFrame, name: str) -> np.ndarray:
    return df[FLAG_COLUMNS[name]].to_numpy(dtype=bool)


def _delay_votes(df: pd.DataFrame) -> np.ndarray:
    return (_f(df, "seasonal_robust").astype(int) + _f(df, "arima") + _f(df, "isolation_forest")
            + _f(df, "delayed_share"))


RULES = {
    "seasonal_or_late_or_cancel": lambda d: _f(d, "seasonal_robust") | _f(d, "delayed_share")
    | _f(d, "cancel_wave"),
    "arima_or_late_or_cancel": lambda d: _f(d, "arima") | _f(d, "delayed_share")
    | _f(d, "cancel_wave"),
    "seasonal_and_late_or_cancel": lambda d: (_f(d, "seasonal_robust") & _f(d, "delayed_share"))
    | _f(d, "cancel_wave"),
    "late_or_cancel": lambda d: _f(d, "delayed_share") | _f(d, "cancel_wave"),
    "arima_and_late_or_cancel": lambda d: (_f(d, "arima") & _f(d, "delayed_share"))
    | _f(d, "cancel_wave"),
    "seasonal_or_cancel": lambda d: _f(d, "seasonal_robust") | _f(d, "cancel_wave"),
    "arima_or_cancel": lambda d: _f(d, "arima") | _f(d, "cancel_wave"),
    "iforest_only": lambda d: _f(d, "isolation_forest"),
    "seasonal_and_arima_or_cancel": lambda d: (_f(d, "seasonal_robust") & _f(d, "arima"))
    | _f(d, "cancel_wave"),
    "vote2_delay_or_cancel": lambda d: (_delay_votes(d) >= 2) | _f(d, "cancel_wave"),
    "vote3_delay_or_cancel": lambda d: (_delay_votes(d) >= 3) | _f(d, "cancel_wave"),
    "vote2_of_4": lambda d: (_delay_votes(d) + _f(d, "cancel_wave")) >= 2,
    "any": lambda d: _delay_votes(d) + _f(d, "cancel_wave") >= 1,
}


def decide(df: pd.DataFrame, rule: str, delay_z: float, cancel_score_min: float) -> pd.DataFrame:
    """Add is_anomaly, anomaly_kind and severity to a frame holding the flag_* columns."""
    if rule not in RULES:
        raise ValueError(f"unknown ensemble rule {rule!r}; choose one of {sorted(RULES)}")
    is_anomaly = RULES[rule](df) & (df["history_status"].to_numpy() == "scored")
    delay_strength = np.nan_to_num(df["delay_score"].to_numpy(dtype=float), nan=0.0) / delay_z
    cancel_strength = (
        np.nan_to_num(df["cancel_score"].to_numpy(dtype=float), nan=0.0) / cancel_score_min
    )
    delay_side = _f(df, "seasonal_robust") | _f(df, "arima") | _f(df, "delayed_share") | (
        _f(df, "isolation_forest") & (delay_strength >= cancel_strength)
    )
    cancel_side = _f(df, "cancel_wave") | (
        _f(df, "isolation_forest") & (cancel_strength > delay_strength)
    )
    kind = np.select(
        [delay_side & cancel_side, delay_side, cancel_side], ["both", "delay", "cancellation"],
        default=None,
    )
    strength = np.maximum(delay_strength, cancel_strength)
    severity = np.select([strength >= 3, strength >= 1.5], ["high", "medium"], default="low")
    df = df.copy()
    df["is_anomaly"] = is_anomaly
    df["anomaly_kind"] = np.where(is_anomaly, kind, None)
    df["severity"] = np.where(is_anomaly, severity, "none")
    df["ensemble_rule"] = rule
    return df
