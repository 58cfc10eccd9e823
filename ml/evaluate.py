"""`python -m ml evaluate`: every detector and ensemble rule on generated years and on real flights.

Three sets, side by side (docs/ml.md has the latest table):
- **generated years** that the pipeline has already built and scored (`make ml-evaluate`
  generates them with their labels and runs the DAG over them): the verdicts stored in
  ml.dep_delay_anomalies against the generator's `00_labels/{year}.json`. This proves the
  plumbing and what the detectors make of our own generator, not how they do on flights.
- **real flights**, January-June 2001 (`ml.real_flights`: 3 M real flights, labels by a rule
  fixed before tuning plus named, cited disruptions), scored by `ml.score_frame.score_frame` with
  no earlier year (the first-year case). Parameters are tuned on January-March only; the
  figures that count are April-June's.
- **the original pipeline's rules** on the same gold rows of both sets.
`--tune` searches the delay detectors' parameters on a criterion that includes the real set.

The evaluation reads gold, ml.* and the labels and writes nothing: building and scoring the
years is the pipeline's job.
"""

from __future__ import annotations

import itertools
import json
import sys
import time
from pathlib import Path

import pandas as pd

from lakehouse.errors import UserError
from ml.params import Params

REPO = Path(__file__).resolve().parents[1]
DBT_PROJECT = REPO / "dbt_project"
# The goals for a real year; judged here on the held-out real months.
TARGETS = {"f1": 0.82, "precision": 0.75, "flag_rate": 0.05, "clean_flag_rate": 0.03}
TUNING_GRID = {"delay_z": [5.5, 6.0], "delay_large_excess": [25.0, 30.0, 1e9],
               "delay_min_flights": [20, 50]}


def read_labels(year: int) -> dict:
    from lakehouse.lake import Lake, labels_key

    with Lake.from_env().open_read(labels_key(year)) as fh:
        return json.loads(fh.read())


def evaluate_real(params: Params | None = None, path=None, originals: bool = True,
                  hubs_only: bool = False) -> dict:
    """Score the real half-year and measure every detector and rule on the hubs' airport-days,
    January-March (the tuning months) and April-June (held out) apart."""
    from ml import real_flights
    from ml.metrics import evaluate_flags, events_found, flag_sets
    from ml.score_frame import score_frame

    params = params or Params()
    gold = real_flights.to_gold(path or real_flights.DEFAULT_PATH)
    hubs = real_flights.hubs(gold)
    if hubs_only:
        gold = gold[gold["origin"].isin(hubs)]
    t0 = time.perf_counter()
    scored, _ = score_frame(gold, real_flights.YEAR, params, originals=originals)
    seconds = time.perf_counter() - t0
    truth = set(real_flights.label(gold)["id"])
    tables = {}
    for split, months in (("tune", real_flights.TUNE_MONTHS),
                          ("holdout", real_flights.HOLDOUT_MONTHS)):
        part = scored[scored["origin"].isin(hubs)
                      & real_flights.in_months(scored["fl_date"], months)]
        table = evaluate_flags([(part, truth)], [])
        found = {name: "{}/{}".format(*events_found(part, flags, real_flights.NAMED_EVENTS))
                 for name, flags in flag_sets(part).items()}
        table["events"] = table["detector"].map(found)
        tables[split] = table
    return {"tables": tables, "scored": scored, "seconds": round(seconds, 1), "hubs": len(hubs),
            "hub_days": int(scored["origin"].isin(hubs).sum()),
            "labelled": len(truth), "airport_days": len(scored)}


def evaluate_generated(labelled: list[int], clean: list[int] = (),
                       params: Params | None = None, log=print) -> dict:
    """The stored verdicts of generated years already built and scored by the pipeline:
    `labelled` years against their labels, `clean` years (generated without disruptions) for
    the false-alarm rate. Returns {"table", "labelled", "clean", "runs"}."""
    from lakehouse.warehouse import connect
    from ml import store
    from ml.metrics import evaluate_flags, label_ids

    params = params or Params()
    labelled_frames, clean_frames, runs = [], [], []
    for year in [*labelled, *clean]:
        with connect(part="ml") as conn:
            stored = (store.read_anomalies(conn, year)
                      if store.table_exists(conn, *store.ANOMALY_TABLE) else pd.DataFrame())
        if stored.empty:
            raise UserError(f"ml.dep_delay_anomalies has no rows for {year}: build and score it "
                            f"first (make ml-evaluate does; or `make backfill FROM={year} "
                            f"TO={year}` after `python -m loaders generate --year {year}`)")
        scored = score_like_stored(year, params, stored)
        if year in labelled:
            labelled_frames.append((scored, label_ids(read_labels(year))))
        else:
            clean_frames.append(scored)
        runs.append({"year": year, "airport_days": len(stored),
                     "anomalies": int(stored["is_anomaly"].sum())})
        log(f"{year}: {len(stored)} airport-days, {runs[-1]['anomalies']} anomalies stored")
    return {"table": evaluate_flags(labelled_frames, clean_frames), "labelled": list(labelled),
            "clean": list(clean), "runs": runs}


def score_like_stored(year: int, params: Params, stored: pd.DataFrame) -> pd.DataFrame:
    """Every column of the scorer (the original rules' flags included, which the warehouse
    does not keep) for `year`, computed from the same gold rows; checked against what
    `score_year` stored, so the metrics describe the stored verdicts."""
    from lakehouse.warehouse import connect
    from ml import store
    from ml.score_frame import score_frame

    with connect(part="ml") as conn:
        gold = store.read_gold(conn, year, params.history_years)
    scored, _ = score_frame(gold, year, params, originals=True)
    check = stored[["id", "is_anomaly"]].merge(scored[["id", "is_anomaly"]], on="id")
    if len(check) != len(stored) or not (check["is_anomaly_x"] == check["is_anomaly_y"]).all():
        raise UserError(f"the stored verdicts of {year} differ from a re-score of its gold with "
                        f"these parameters: score it again (`python -m ml score --year {year}`)")
    return scored


def evaluate(labelled: list[int] = (), clean: list[int] = (), real: bool = True, real_path=None,
             params=None, log=print) -> dict:
    """Both sets; returns {"table": one row per detector/rule, "real": ..., "generated": ...}."""
    params = params or Params()
    result: dict = {"configured_rule": params.ensemble_rule, "params": params.as_dict()}
    frames = []
    if labelled or clean:
        gen = evaluate_generated(labelled, clean, params=params, log=log)
        result["generated"] = {k: v for k, v in gen.items() if k != "table"}
        frames.append(gen["table"][["detector", "precision", "recall", "f1", "clean_flag_rate"]]
                      .add_prefix("gen_").rename(columns={"gen_detector": "detector"}))
    if real:
        log("scoring the real 2001 half-year (original rules included: a few minutes)")
        rl = evaluate_real(params, real_path)
        result["real"] = {k: v for k, v in rl.items() if k not in ("tables", "scored")}
        tune = rl["tables"]["tune"][["detector", "f1", "flag_rate", "events"]]
        frames.append(tune.add_prefix("tune_").rename(columns={"tune_detector": "detector"}))
        hold = rl["tables"]["holdout"][["detector", "precision", "recall", "f1", "tp", "fp",
                                        "fn", "flag_rate", "events"]]
        frames.append(hold.add_prefix("real_").rename(columns={"real_detector": "detector"}))
    if not frames:
        raise UserError("nothing to evaluate: name generated years with --labelled/--clean "
                        "or leave out --no-real")
    table = frames[0]
    for frame in frames[1:]:
        table = table.merge(frame, on="detector", how="outer")
    result["table"] = table
    return result


def tune(real_path=None, reuse_generated_year: int | None = None, log=print) -> pd.DataFrame:
    """Grid search (TUNING_GRID) on the real January-March hubs and, when given, a generated
    labelled year already in gold. Criterion: the mean F1 of the two (the real one alone
    without a generated year), among settings whose real flag rate stays <= 5 %."""
    from ml.metrics import evaluate_flags, label_ids

    gen_gold = None
    if reuse_generated_year is not None:
        from lakehouse.warehouse import connect
        from ml import store

        with connect(part="ml") as conn:
            gen_gold = store.read_gold(conn, reuse_generated_year, Params().history_years)
        gen_truth = label_ids(read_labels(reuse_generated_year))
    rows = []
    keys = list(TUNING_GRID)
    for values in itertools.product(*TUNING_GRID.values()):
        setting = dict(zip(keys, values))
        params = Params().replace(**setting, arima_z=setting["delay_z"])
        real = evaluate_real(params, real_path, originals=False, hubs_only=True)
        row = real["tables"]["tune"].set_index("detector").loc[f"ensemble:{params.ensemble_rule}"]
        out = {**setting, "real_f1": row["f1"], "real_flag_rate": row["flag_rate"]}
        if gen_gold is not None:
            from ml.score_frame import score_frame

            scored, _ = score_frame(gen_gold, reuse_generated_year, params)
            gen = evaluate_flags([(scored, gen_truth)], []).set_index("detector")
            out["gen_f1"] = gen.loc[f"ensemble:{params.ensemble_rule}", "f1"]
        out["criterion"] = (out["real_f1"] + out.get("gen_f1", out["real_f1"])) / 2
        rows.append(out)
        log(" ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}"
                     for k, v in out.items()))
    grid = pd.DataFrame(rows)
    eligible = grid[grid["real_flag_rate"] <= TARGETS["flag_rate"]]
    grid["chosen"] = False
    if len(eligible):
        grid.loc[eligible["criterion"].idxmax(), "chosen"] = True
    return grid


def _pct(v) -> str:
    return "n/a" if pd.isna(v) else f"{100 * v:.1f} %"


def _num(v) -> str:
    return "n/a" if pd.isna(v) else f"{v:.3f}"


def format_table(result: dict) -> str:
    t = result["table"].copy()
    rule = result["configured_rule"]
    order = {"original_isolation_forest": 0, "original_arima": 1}
    t["_o"] = t["detector"].map(lambda d: order.get(d, 3 if d.startswith("ensemble:") else 2))
    t = t.sort_values(["_o", "detector"])
    cols = [c for c in t.columns if c not in ("detector", "_o")]
    head = {"gen_precision": "gen P", "gen_recall": "gen R", "gen_f1": "gen F1",
            "gen_clean_flag_rate": "gen clean flag rate", "tune_f1": "real Jan-Mar F1 (tuned on)",
            "tune_flag_rate": "Jan-Mar flag rate", "tune_events": "Jan-Mar events",
            "real_precision": "**Apr-Jun P**", "real_recall": "**Apr-Jun R**",
            "real_f1": "**Apr-Jun F1**", "real_tp": "TP", "real_fp": "FP", "real_fn": "FN",
            "real_flag_rate": "Apr-Jun flag rate", "real_events": "Apr-Jun events"}
    lines = ["| detector / rule | " + " | ".join(head.get(c, c) for c in cols) + " |",
             "|---|" + "---:|" * len(cols)]
    for _, r in t.iterrows():
        name = r["detector"] + (" **(is_anomaly)**" if r["detector"] == f"ensemble:{rule}" else "")
        cells = []
        for c in cols:
            v = r[c]
            if c.endswith("rate"):
                cells.append(_pct(v))
            elif c.endswith(("_tp", "_fp", "_fn")):
                cells.append("n/a" if pd.isna(v) else str(int(v)))
            elif c.endswith("events"):
                cells.append("n/a" if pd.isna(v) else str(v))
            else:
                cells.append(_num(v))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def verdict(result: dict) -> list[str]:
    t = result["table"].set_index("detector")
    ens = t.loc[f"ensemble:{result['configured_rule']}"]
    met = {True: "met", False: "NOT met"}
    lines = []
    if "real_f1" in t:
        seed_arima = t.loc["original_arima", "real_f1"]
        lines += [
            (f"real Apr-Jun (held out): F1 {ens['real_f1']:.3f} (goal >= {TARGETS['f1']}): "
            f"{met[bool(ens['real_f1'] >= TARGETS['f1'])]}; precision {ens['real_precision']:.3f} "
            f"(goal >= {TARGETS['precision']}): "
            f"{met[bool(ens['real_precision'] >= TARGETS['precision'])]}; flag rate "
            f"{_pct(ens['real_flag_rate'])} (goal <= 5 %): "
            f"{met[bool(ens['real_flag_rate'] <= TARGETS['flag_rate'])]}; named events "
            f"{ens['real_events']}"),
            (f"the seed's ARIMA rule on the same months: F1 {seed_arima:.3f}; ours "
            f"{ens['real_f1'] - seed_arima:+.3f}"),
        ]
    if "gen_f1" in t:
        lines.append(f"generated years: F1 {ens['gen_f1']:.3f}, clean flag rate "
                     f"{_pct(ens['gen_clean_flag_rate'])} (goal <= 3 %): "
                     f"{met[bool(ens['gen_clean_flag_rate'] <= TARGETS['clean_flag_rate'])]}")
    return lines


def cli_evaluate(args) -> int:
    def log(message):
        print(message, file=sys.stderr, flush=True)

    if args.tune:
        grid = tune(args.real_path, args.tune_generated_year, log=log)
        print(grid.to_string(index=False))
        chosen = grid[grid["chosen"]]
        if len(chosen):
            print("chosen:", json.dumps(chosen.iloc[0].drop(["chosen"]).to_dict(), default=str))
        return 0
    result = evaluate(labelled=args.labelled or [], clean=args.clean or [],
                      real=not args.no_real, real_path=args.real_path, log=log)
    parts = []
    if "generated" in result:
        g = result["generated"]
        parts.append(f"generated: labelled {g['labelled']}, clean {g['clean']} (as built and "
                     "scored by the pipeline)")
    if "real" in result:
        r = result["real"]
        parts.append(f"real: 2001-01..06, {r['airport_days']:,} airport-days scored, "
                     f"{r['hubs']} hubs ({r['hub_days']:,} airport-days judged), "
                     f"{r['labelled']} labelled")
    header = "Evaluation. " + "; ".join(parts)
    table = format_table(result)
    lines = verdict(result)
    if args.json:
        print(json.dumps({"table": result["table"].to_dict(orient="records"),
                          "verdict": lines, **{k: v for k, v in result.items()
                                               if k in ("generated", "real", "params")}},
                         default=str))
    else:
        print(header)
        print(table)
        print("\n".join(lines))
    if args.markdown:
        Path(args.markdown).write_text(header + "\n\n" + table + "\n\n" + "\n".join(
            f"- {line}" for line in lines) + "\n", encoding="utf-8")
    return 0
