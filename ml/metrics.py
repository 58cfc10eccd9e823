"""Airport-day precision / recall / F1 of flag columns against labelled airport-days."""

from __future__ import annotations

import pandas as pd

from ml.detectors import DETECTORS, ORIGINAL_DETECTORS, flag_column
from ml.ensemble import RULES, decide


def label_ids(labels: dict) -> set[str]:
    """`ORIGIN+YYYYMMDD` ids of the labelled airport-days of a generator labels file."""
    return {d["origin"] + d["fl_date"].replace("-", "") for d in labels.get("airport_days", [])}


def confusion(flags: pd.Series, ids: pd.Series, truth: set[str]) -> dict:
    flagged = set(ids[flags.to_numpy(dtype=bool)])
    truth = truth & set(ids) if truth else set()
    tp = len(flagged & truth)
    return {"tp": tp, "fp": len(flagged - truth), "fn": len(truth - flagged),
            "flagged": len(flagged), "days": len(ids)}


def summarise(c: dict) -> dict:
    precision = c["tp"] / (c["tp"] + c["fp"]) if c["tp"] + c["fp"] else 0.0
    recall = c["tp"] / (c["tp"] + c["fn"]) if c["tp"] + c["fn"] else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


def flag_sets(scored: pd.DataFrame) -> dict[str, pd.Series]:
    """Every detector's flags, the originals' and every candidate ensemble rule's decision."""
    out = {name: scored[flag_column(name)] for name in [*DETECTORS, *ORIGINAL_DETECTORS]
           if flag_column(name) in scored}
    for rule in RULES:
        out[f"ensemble:{rule}"] = decide(scored, rule)["is_anomaly"]
    return out


def evaluate_flags(labelled: list[tuple[pd.DataFrame, set[str]]],
                   clean: list[pd.DataFrame]) -> pd.DataFrame:
    """One row per detector / rule: P, R, F1, flag rate over the labelled frames (airport-days
    of `ids` against `truth`), and the flag rate on clean ones."""
    rows: dict[str, dict] = {}

    def acc(name):
        return rows.setdefault(name, {"tp": 0, "fp": 0, "fn": 0, "flagged": 0, "days": 0,
                                      "clean_flagged": 0, "clean_days": 0})

    for scored, truth in labelled:
        for name, flags in flag_sets(scored).items():
            c = confusion(flags, scored["id"], truth)
            for k in ("tp", "fp", "fn", "flagged", "days"):
                acc(name)[k] += c[k]
    for scored in clean:
        for name, flags in flag_sets(scored).items():
            acc(name)["clean_flagged"] += int(flags.to_numpy(dtype=bool).sum())
            acc(name)["clean_days"] += len(flags)
    table = []
    for name, a in rows.items():
        table.append({
            "detector": name, **summarise(a), "tp": a["tp"], "fp": a["fp"], "fn": a["fn"],
            "flag_rate": a["flagged"] / a["days"] if a["days"] else float("nan"),
            "clean_flag_rate": (a["clean_flagged"] / a["clean_days"] if a["clean_days"]
                                else float("nan")),
        })
    return pd.DataFrame(table)


def events_found(scored: pd.DataFrame, flags: pd.Series, events) -> tuple[int, int]:
    """(named events with at least one flagged airport-day, named events in `scored`)."""
    ids = set(scored["id"])
    flagged = set(scored["id"][flags.to_numpy(dtype=bool)])
    present = [e for e in events if e.ids() & ids]
    return sum(bool(e.ids() & flagged) for e in present), len(present)
