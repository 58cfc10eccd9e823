"""Before/after: bench_load, bench_dbt, bench_ml and bench_dag at a baseline commit and now.

    .venv/bin/python bench/bench_compare.py [--baseline 3ef2999] [--rows 7200000]
        [--benches load,dbt,ml,dag] [--repeat 1] [--with-originals] [--keep]

The baseline is checked out with `git worktree add --detach` into .local/bench-baseline (kept
with --keep, reused when it is already at that commit) and runs with this checkout's
virtualenv: each tree's own bench script, with PYTHONPATH and the working directory set to that
tree, so the bench, its `python -m loaders` children, dbt's project and the Airflow tasks all
use that tree's code (checked before the first run). Both trees use one server: the one PG*
points at, else this checkout's local cluster, as `make bench-*` do.

Runs are interleaved (baseline then now for each bench, --repeat rounds) so a neighbour's burst
on a shared machine hits both sides. Each run's output goes to .local/bench-compare/; the
headline figures are parsed from it (best of the rounds) and printed as a Markdown table with
now/baseline and whether that is within +-10 %. The contenders that do not run our code (the
original pandas pipeline of bench_load and bench_dag, bench_ml's faithful original ARIMA beyond
one airport) are skipped unless --with-originals.
Timings are printed, never asserted: the exit status is non-zero only when a bench failed.
"""

from __future__ import annotations

import argparse
import datetime
import os
import re
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench_load import loadavg  # bench/bench_load.py

NUM = r"([\d.]+)"
# (figure, regex on the bench's output); both versions print these lines the same way.
FIGURES = {
    "load": [
        ("loader: python -m loaders load, s", rf"^loader: python -m loaders load +[\d,]+ +{NUM}"),
        ("loader peak RSS, MB", r"^loader: python -m loaders load +[\d,]+ +[\d.]+ +[\d,]+ +(\d+)"),
        ("psql \\copy (floor, not our code), s", rf"^psql \\copy, plain 28-text table +[\d,]+ +{NUM}"),
    ],
    "dbt": [
        ("dbt build year A, s", rf"^dbt build year A \(first build[^:]*: +{NUM} s"),
        ("  its models, s", rf"^dbt build year A \(first build.*\(models {NUM} s"),
        ("dbt build year B (A kept), s", rf"^dbt build year B \(A kept\): +{NUM} s"),
        ("dbt build year A again, s", rf"^dbt build year A again[^:]*: +{NUM} s"),
        ("hand-written SQL (the limit), s", rf"^hand-written SQL[^:]*: +{NUM} s"),
    ],
    "ml": [
        ("score_frame, all detectors, s", rf"^all detectors .*: {NUM} s wall"),
        ("original rules as evaluated, s", rf"^original rules as evaluated .*: {NUM} s wall"),
    ],
    "dag": [
        ("DAG end to end, s", rf"^DAG etl_ml_pipeline, end to end: {NUM} s"),
        ("  dbt tasks, s", rf"\(dbt tasks {NUM} s\)"),
        ("  Airflow's own overhead, s", rf"Airflow's own overhead .* {NUM} s$"),
        ("psql \\copy (floor, not our code), s", rf"^psql \\copy of .*: {NUM} s"),
    ],
}
# bench_ml's faithful original ARIMA costs ~30 s per airport whatever the rows: one airport.
SKIP_ORIGINALS = {"load": ["--pandas-rows", "0"], "ml": ["--sample", "1"],
                  "dag": ["--skip-original"]}


def git(*args: str, cwd: Path = REPO) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True,
                          text=True).stdout.strip()


def baseline_tree(commit: str) -> Path:
    """The baseline's worktree, reused when it is already at `commit`."""
    path, sha = REPO / ".local" / "bench-baseline", git("rev-parse", f"{commit}^{{commit}}")
    if path.exists():
        if (path / ".git").exists() and git("rev-parse", "HEAD", cwd=path) == sha:
            return path
        git("worktree", "remove", "--force", str(path))
    git("worktree", "add", "--detach", str(path), sha)
    return path


def server_env() -> dict[str, str]:
    """The Makefile's WITH_DB: the caller's server when PGHOST is set, else the local cluster."""
    env = {**os.environ, "DO_NOT_TRACK": "1"}
    if not env.get("PGHOST"):
        local = [sys.executable, "-m", "devtools.localdb"]
        subprocess.run([*local, "start"], cwd=REPO, check=True)
        out = subprocess.run([*local, "env"], cwd=REPO, check=True, capture_output=True,
                             text=True).stdout
        env.update(re.findall(r"^export (\w+)=(.*)$", out, re.MULTILINE))
    return env


def tree_env(env: dict[str, str], tree: Path) -> dict[str, str]:
    """What `make` exports, for `tree`: its code first on the path, its own dbt profiles dir."""
    return {**env, "PYTHONPATH": str(tree), "LAKE_URL": "data/lake",
            "DBT_PROFILES_DIR": str(tree / ".local" / "dbt")}


def check_imports(env: dict[str, str], tree: Path) -> None:
    code = "import lakehouse, loaders, ml; print(lakehouse.__file__, loaders.__file__, ml.__file__)"
    paths = subprocess.run([sys.executable, "-c", code], env=tree_env(env, tree), cwd=tree,
                           check=True, capture_output=True, text=True).stdout.split()
    wrong = [p for p in paths if not Path(p).is_relative_to(tree)]
    if wrong:
        sys.exit(f"error: in {tree} the code resolves elsewhere: {wrong}")


def run_bench(bench: str, tree: Path, args, env: dict[str, str], log: Path) -> tuple[int, float]:
    cmd = [sys.executable, str(tree / "bench" / f"bench_{bench}.py"), "--rows", str(args.rows)]
    if not args.with_originals:
        cmd += SKIP_ORIGINALS.get(bench, [])
    if bench == "dag":  # the tasks' and dbt's output, where each tree's paths can be seen
        cmd += ["--dag-log", str(log.with_suffix(".airflow.log"))]
    print(f"  {log.stem:<16} load average before {loadavg()}", end="", flush=True)
    started = time.perf_counter()
    with open(log, "w") as out:
        code = subprocess.run(cmd, env=tree_env(env, tree), cwd=tree, stdout=out,
                              stderr=subprocess.STDOUT, check=False).returncode
    wall = time.perf_counter() - started
    print(f", after {loadavg()}; {wall:.0f} s{'' if code == 0 else f'  FAILED ({code})'}",
          flush=True)
    return code, wall


def figures(bench: str, text: str) -> dict[str, float]:
    found = {}
    for name, pattern in FIGURES[bench]:
        match = re.search(pattern, text, re.MULTILINE)
        if match:
            found[name] = float(match.group(1))
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", default="3ef2999", help="commit to compare with")
    parser.add_argument("--rows", type=int, default=7_200_000)
    parser.add_argument("--benches", default="load,dbt,ml,dag")
    parser.add_argument("--repeat", type=int, default=1, help="alternating rounds, best of them")
    parser.add_argument("--with-originals", action="store_true",
                        help="also run the original pandas pipeline in bench_load and bench_dag")
    parser.add_argument("--keep", action="store_true", help="keep the baseline worktree")
    args = parser.parse_args()
    benches = args.benches.split(",")
    if unknown := set(benches) - set(FIGURES):
        parser.error(f"unknown bench(es) {sorted(unknown)}: choose from {', '.join(FIGURES)}")

    base = baseline_tree(args.baseline)
    trees = {"baseline": base, "now": REPO}
    logs = REPO / ".local" / "bench-compare"
    logs.mkdir(parents=True, exist_ok=True)
    env = server_env()
    for tree in trees.values():
        check_imports(env, tree)
    dirty = " + uncommitted changes" if git("status", "--porcelain", "--untracked-files=no") else ""
    print(f"baseline {git('log', '-1', '--format=%h %s', cwd=base)[:90]}\n"
          f"now      {git('log', '-1', '--format=%h %s')[:90]}{dirty}\n"
          f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC, {args.rows:,} rows, "
          f"{os.cpu_count()} CPUs, server {env.get('PGHOST')}:{env.get('PGPORT')}, "
          f"load average {loadavg()}", flush=True)

    best: dict[tuple[str, str], dict[str, float]] = {}
    failed = []
    try:
        for bench in benches:
            for round_no in range(1, args.repeat + 1):
                for side, tree in trees.items():
                    suffix = f"-{round_no}" if args.repeat > 1 else ""
                    log = logs / f"{bench}-{side}{suffix}.log"
                    code, _ = run_bench(bench, tree, args, env, log)
                    if code != 0:
                        failed.append(f"{bench} ({side}): see {log}")
                        continue
                    seen = best.setdefault((bench, side), {})
                    for name, value in figures(bench, log.read_text()).items():
                        seen[name] = min(value, seen.get(name, value))
    finally:
        if not args.keep:
            git("worktree", "remove", "--force", str(base))

    print(f"\nload average {loadavg()}; logs in {logs}\n")
    print("| bench | figure | baseline | now | now/baseline | within ±10 % |")
    print("|---|---|---:|---:|---:|---|")
    for bench in benches:
        for name, _ in FIGURES[bench]:
            was = best.get((bench, "baseline"), {}).get(name)
            now = best.get((bench, "now"), {}).get(name)
            if was is None or now is None:
                cells = ["n/a" if was is None else was, "n/a" if now is None else now, "", ""]
            else:
                ratio = now / was if was else float("inf")
                cells = [was, now, f"{ratio:.2f}", "yes" if abs(ratio - 1) <= 0.10 else "no"]
            cells = [f"{c:g}" if isinstance(c, float) else c for c in cells]
            print(f"| bench_{bench} | {name} | " + " | ".join(cells) + " |")
    for line in failed:
        print(f"FAILED: {line}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
