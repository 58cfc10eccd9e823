"""Anomaly scoring of airport-days: `python -m ml score|evaluate|plot`.

Reads only `gold.agg_dep_delay_by_date`, writes only the `ml` schema. The entry point other
parts call is `ml.score.score_year(year) -> dict`.
"""

# Bumped whenever detectors, parameters or the ensemble rule change the output for the same input.
MODEL_VERSION = "ml-2026.12.1"
