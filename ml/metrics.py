"""Airport-day precision / recall / F1 of flag columns against labelled disruptions."""

from __future__ import annotations

import pandas as pd

from ml.ensemble import FLAG_COLUMNS, RULES
from ml.scoring import ORIGINAL_FLAG_COLUMNS


def label_ids(labels: dict) -> set[str]:
    """`ORIGIN+YYYYMMDD` ids of the labelled airport-days of a labels file."""
    return {d["origin"] + d["fl_date"].replace("-", "") for d in labels.get("airport_days", [])}


def confusion(flags: pd.Series, ids: pd.Series, truth: set[str]) -> dict:
    flagged = set(ids[flags.to_numpy(dtype=bool)])
    tp = len(flagged & truth)
    fp = len(flagged - truth)
    fn = len(truth - flagged)  # labelled days missing from gold count as missed too
    return {"tp": tp, "fp": fp, "fn": fn, "flagged": len(flagged), "days": len(ids)}


def summarise(c: dict) -> dict:
    precision = c["tp"] / (c["tp"] + c["fp"]) if c["tp"] + c["fp"] else 0.0
    recall = c["tp"] / (c["tp"] + c["fn"]) if c["tp"] + c["fn"] else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


def flag_sets(scored: pd.DataFrame, params) -> dict[str, pd.Series]:
    """Every detector's flags, the originals' and every candidate ensemble rule's decision."""
    from ml.ensemble import decide

    out = {name: scored[col] for name, col in FLAG_COLUMNS.items()}
    for name, col in ORIGINAL_FLAG_COLUMNS.items():
        if col in scored:
            out[name] = scored[col]
    for rule in RULES:
        out[f"ensemble:{rule}"] = decide(scored, rule, params.delay_z,
                                         params.cancel_score_min)["is_anomaly"]
    return out


def evaluate_flags(labelled: list[tuple[pd.DataFrame, set[str]]],
                   clean: list[pd.DataFrame], params) -> pd.DataFrame:
    """One row per detector / rule: P, R, F1 over the labelled years, flag rate on clean ones."""
    rows = {}
    for scored, truth in labelled:
        for name, flags in flag_sets(scored, params).items():
            c = confusion(flags, scored["id"], truth)
            acc = rows.setdefault(name, {"tp": 0, "fp": 0, "fn": 0, "flagged": 0, "days": 0,
                                         "clean_flagged": 0, "clean_days": 0})
            for k in ("tp", "fp", "fn", "flagged", "days"):
                acc[k] += c[k]
    for scored in clean:
        for name, flags in flag_sets(scored, params).items():
            acc = rows.setdefault(name, {"tp": 0, "fp": 0, "fn": 0, "flagged": 0, "days": 0,
                                         "clean_flagged": 0, "clean_days": 0})
            acc["clean_flagged"] += int(flags.to_numpy(dtype=bool).sum())
            acc["clean_days"] += len(flags)
    table = []
    for name, acc in rows.items():
        s = summarise(acc)
        table.append({
            "detector": name, **s, "tp": acc["tp"], "fp": acc["fp"], "fn": acc["fn"],
            "clean_flag_rate": acc["clean_flagged"] / acc["clean_days"] if acc["clean_days"] else float("nan"),
        })
    return pd.DataFrame(table)
