"""The ensemble decision: `anomaly_score`, `is_anomaly`, and how a flagged day is described.

Every member detector reports a strength per day (its score divided by its own threshold,
0 where the rest of its flag's conditions fail), so a strength of 1 is "this detector alone
would flag the day". Strengths are grouped by the evidence they carry (the two delay models
are one piece of evidence, cancellations and the collapse in flights flown are another);
within a group the strongest counts. `anomaly_score` combines the groups by a rule, and
`is_anomaly = anomaly_score >= 1` on scored days: one strong signal is always enough.
`python -m ml evaluate` compares the rules; `Params.ensemble_rule` holds the chosen one.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ml.detectors import DETECTORS, MEMBERS, strength_column

# The evidence groups a member can vote in (`Detector.group`), and the side of the day each
# speaks for (`anomaly_kind`). Within a group the strongest member counts, so a second model
# of the same evidence does not count twice.
EVIDENCE = {"delay": "delay", "disruption": "cancellation", "late_share": "delay"}
GROUPS = {group: tuple(name for name in MEMBERS if DETECTORS[name].group == group)
          for group in EVIDENCE}
_unknown = {d.name: d.group for d in DETECTORS.values() if d.member and d.group not in EVIDENCE}
if _unknown:
    raise ValueError(f"detectors in an unknown evidence group {_unknown}: use one of "
                     f"{sorted(EVIDENCE)} or add the group to ml.ensemble.EVIDENCE")
__all__ = ["EVIDENCE", "GROUPS", "MEMBERS", "RULES", "decide", "group_strengths",
           "strength_column"]


def group_strengths(df: pd.DataFrame) -> dict[str, np.ndarray]:
    out = {}
    for group, members in GROUPS.items():
        cols = [df[strength_column(m)].to_numpy(dtype=float) for m in members
                if strength_column(m) in df]
        out[group] = (np.nan_to_num(np.max(cols, axis=0), nan=0.0) if cols
                      else np.zeros(len(df)))
    return out


RULES = {
    # the strongest piece of evidence alone
    "max": lambda g: np.max(np.column_stack(list(g.values())), axis=1),
    # Euclidean: two pieces of evidence at 0.75 each pass together
    "l2": lambda g: np.sqrt(np.sum(np.column_stack(list(g.values())) ** 2, axis=1)),
    # delay and disruption only (the delayed share as a detector of its own is left out)
    "max_delay_disruption": lambda g: np.maximum(g["delay"], g["disruption"]),
    "l2_delay_disruption": lambda g: np.hypot(g["delay"], g["disruption"]),
}


def decide(df: pd.DataFrame, rule: str) -> pd.DataFrame:
    """Add anomaly_score, is_anomaly, anomaly_kind and severity to a frame holding the
    members' strength columns (`strength_column`)."""
    if rule not in RULES:
        raise ValueError(f"unknown ensemble rule {rule!r}; choose one of {sorted(RULES)}")
    groups = group_strengths(df)
    score = RULES[rule](groups)
    is_anomaly = (score >= 1.0) & (df["history_status"].to_numpy() != "insufficient_history")
    side = {kind: np.max([groups[g] for g, k in EVIDENCE.items() if k == kind], axis=0)
            for kind in ("delay", "cancellation")}
    delay_side, cancel_side = side["delay"], side["cancellation"]
    kind = np.select(
        [(delay_side >= 1) & (cancel_side >= 1), delay_side >= cancel_side],
        ["both", "delay"], default="cancellation",
    )
    severity = np.select([score >= 3, score >= 1.5], ["high", "medium"], default="low")
    df = df.copy()
    df["anomaly_score"] = score
    df["is_anomaly"] = is_anomaly
    df["anomaly_kind"] = np.where(is_anomaly, kind, None)
    df["severity"] = np.where(is_anomaly, severity, "none")
    df["ensemble_rule"] = rule
    return df
