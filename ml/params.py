"""Every tunable of the scorer in one place; recorded in `ml.model_runs.params` each run.

The defaults are the values chosen by `python -m ml evaluate` (see docs/ml.md).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace


@dataclass(frozen=True)
class Params:
    seed: int = 42
    history_years: int = 2  # earlier gold years used as training history, when they exist
    min_history_days: int = 28  # fewer days with flights than this: insufficient_history
    # a month's scoring (`--month`) fits on this many days before the month, not on the whole
    # history, so its cost follows the month (docs/ml.md, "Scoring a month")
    month_history_days: int = 120
    # seasonal robust detector (weekday profile + leave-one-out rolling median level)
    level_half_width: int = 14
    delay_z: float = 6.0
    delay_min_excess: float = 15.0  # minutes above expected: a delay flag needs a real effect
    delay_large_excess: float = 30.0  # minutes: a day this late flags at delay_large_z ...
    delay_large_z: float = 3.0  # ... a lower z (volatile airports' bad days)
    flight_delay_sd: float = 30.0  # spread of single flights' delays when gold has no sd_dep_delay
    delay_min_flights: int = 50  # below this, a delay flag also needs the delayed-share support
    late_support: float = 4.0  # ... of at least this tail score
    # volume collapse (flights flown against the weekday norm, log scale)
    volume_z: float = 4.0
    volume_min_drop: float = 0.35  # and at least 35 % fewer flights than expected
    # cancellation-wave detector (beta-binomial tail given baseline rate and volume)
    cancel_half_width: int = 28
    count_prior_flights: float = 200.0
    cancel_min_rate: float = 0.002
    cancel_score_min: float = 6.0  # -log10 tail probability
    cancel_min_excess: float = 0.1  # and at least this much above the baseline rate
    # delayed-share detector (same tail test on flights 15+ minutes late among those flown)
    late_half_width: int = 14
    late_score_min: float = 6.0
    late_min_excess: float = 0.1
    # isolation forest (done right: seeded, deseasonalised volume-aware features, one-sided)
    iforest_trees: int = 100
    iforest_threshold: float = 0.77
    # ARIMA (done right: order searched once by AIC, robust residual scale, one-sided)
    arima_max_p: int = 2
    arima_max_q: int = 2
    arima_z: float = 6.0
    # the original pipeline's rules, kept for the evaluation's comparison rows
    original_contamination: float = 0.01
    original_arima_max_pq: int = 4
    # ensemble: how the members' strengths (score / threshold) combine into anomaly_score;
    # is_anomaly = anomaly_score >= 1 (ml/ensemble.py)
    ensemble_rule: str = "max"
    n_jobs: int = 2

    def as_dict(self) -> dict:
        return asdict(self)

    def replace(self, **changes) -> Params:
        return replace(self, **changes)
