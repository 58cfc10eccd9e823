"""A local Airflow for this repository: its environment, the UI, and one-shot DAG runs.

`python -m devtools.airflow_local serve|stop|demo|backfill|env`

Everything lives in a git-ignored folder (default `.local/airflow`, `LAKEHOUSE_AIRFLOW_HOME`):
the SQLite metadata DB, logs, the Cosmos cache and the admin password file. The warehouse
reaches Airflow as the `warehouse` connection (`AIRFLOW_CONN_WAREHOUSE`), built from the same
PG* variables every other part uses, and the lake through `LAKE_URL`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import secrets
import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path

from devtools.background import Background, BackgroundError, http_ok
from devtools.localdb import port_is_free
from lakehouse.airflow_support import REPO, WAREHOUSE_CONN_ID
from lakehouse.errors import UserError
from lakehouse.years import check_year

DAG_ID = "etl_ml_pipeline"
MONTHLY_DAG_ID = "bts_monthly_pipeline"
DEFAULT_HOME = Path(os.environ.get("LAKEHOUSE_AIRFLOW_HOME", REPO / ".local" / "airflow"))
ADMIN_USER = "admin"
DEFAULT_PORT = 8080


class AirflowLocalError(RuntimeError):
    """Something the user can fix; the message says how."""


def airflow_bin() -> str:
    return str(Path(sys.executable).with_name("airflow"))


def free_port(preferred: int = DEFAULT_PORT) -> int:
    if port_is_free(preferred):
        return preferred
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def passwords_file(home: Path) -> Path:
    return home / "passwords.json"


def warehouse_connection_uri(pg_env: dict[str, str]) -> str:
    """`AIRFLOW_CONN_WAREHOUSE` in Airflow's JSON form (the `schema` field is the database)."""
    conn = {"conn_type": "postgres", "host": pg_env.get("PGHOST", "127.0.0.1"),
            "port": int(pg_env.get("PGPORT", "5432")), "login": pg_env.get("PGUSER", ""),
            "schema": pg_env.get("PGDATABASE", "")}
    if pg_env.get("PGPASSWORD"):
        conn["password"] = pg_env["PGPASSWORD"]
    return json.dumps(conn)


def airflow_env(home: Path = DEFAULT_HOME, port: int | None = None,
                pg_env: dict[str, str] | None = None, base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment every Airflow command of this project runs with."""
    from lakehouse.warehouse import libpq_env

    home = Path(home).resolve()
    env = dict(os.environ if base is None else base)
    pg_env = pg_env if pg_env is not None else libpq_env()
    lake_url = env.get("LAKE_URL") or "data/lake"
    if "://" not in lake_url:
        lake_url = str((REPO / lake_url).resolve()) if not Path(lake_url).is_absolute() else lake_url
    env.update({
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN_USER}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords_file(home)),
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
        "AIRFLOW__COSMOS__CACHE_DIR": str(home / "cosmos_cache"),
        "AIRFLOW__COSMOS__ENABLE_TELEMETRY": "False",
        "AIRFLOW__USAGE_DATA_COLLECTION__ENABLED": "False",
        "DO_NOT_TRACK": "1",
        "SCARF_ANALYTICS": "false",
        "LAKE_URL": lake_url,
        "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p),
        # `airflow standalone` starts its parts as `airflow ...` from PATH.
        "PATH": os.pathsep.join(p for p in (str(Path(airflow_bin()).parent), env.get("PATH")) if p),
        f"AIRFLOW_CONN_{WAREHOUSE_CONN_ID.upper()}": warehouse_connection_uri(pg_env),
    })
    for key in ("PGHOST", "PGPORT", "PGUSER", "PGPASSWORD", "PGDATABASE"):
        if key in pg_env:
            env[key] = pg_env[key]
    if port is not None:
        env.update({
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
            # The log servers have fixed default ports; pick free ones so two homes coexist.
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port(8793)),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port(8794)),
        })
    return env


def prepare_home(env: dict[str, str]) -> Path:
    """Create the folder, the admin password file (once) and an up-to-date metadata DB."""
    home = Path(env["AIRFLOW_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    pw = Path(env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"])
    if not pw.exists():
        # Generated once and kept (git-ignored), so the login is stable but never in the repo.
        pw.write_text(json.dumps({ADMIN_USER: secrets.token_urlsafe(12)}) + "\n")
        pw.chmod(0o600)
    proc = subprocess.run([airflow_bin(), "db", "migrate"], env=env, capture_output=True,
                          text=True, check=False)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise AirflowLocalError("`airflow db migrate` failed: " + " | ".join(tail))
    return home


def admin_password(home: Path) -> str:
    return json.loads(passwords_file(home).read_text())[ADMIN_USER]


def dbt_parse(target_path: Path | None = None, env: dict[str, str] | None = None) -> Path:
    """Write the manifest Cosmos renders from (`dbt parse`, no database needed); returns it."""
    from lakehouse.airflow_support import DBT_PROFILES_EXAMPLE, DBT_PROJECT_DIR

    env = dict(os.environ if env is None else env)
    target = Path(target_path or DBT_PROJECT_DIR / "target")
    profiles = env.get("DBT_PROFILES_DIR")
    if not profiles or not (Path(profiles) / "profiles.yml").is_file():
        # dbt wants a file named profiles.yml; the example reads only PG* variables.
        scratch = target / ".profile"
        scratch.mkdir(parents=True, exist_ok=True)
        (scratch / "profiles.yml").write_text(DBT_PROFILES_EXAMPLE.read_text())
        profiles = str(scratch)
    env.setdefault("DO_NOT_TRACK", "1")
    proc = subprocess.run(
        [str(Path(sys.executable).with_name("dbt")), "parse", "--project-dir", str(DBT_PROJECT_DIR),
         "--profiles-dir", profiles, "--target-path", str(target)],
        env=env, capture_output=True, text=True, cwd=str(REPO), check=False)
    if proc.returncode != 0:
        lines = (proc.stdout.strip() or proc.stderr.strip()).splitlines()
        raise AirflowLocalError(f"`dbt parse` failed: {' | '.join(lines[-3:])}")
    return target / "manifest.json"


_CHECK_SCRIPT = r"""
import json, time
started = time.perf_counter()
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(__import__("os").environ["AIRFLOW__CORE__DAGS_FOLDER"])
report = {"import_errors": {k: str(v) for k, v in bag.import_errors.items()},
          "dagbag_seconds": round(time.perf_counter() - started, 3),
          "file_seconds": {s.file: s.duration.total_seconds() for s in bag.dagbag_stats}}
report["dag_ids"] = sorted(bag.dags)
dag = bag.dags.get(__import__("os").environ.get("LAKEHOUSE_CHECK_DAG", "etl_ml_pipeline"))
if dag is not None:
    report.update(
        schedule=dag.timetable.summary, catchup=dag.catchup, max_active_runs=dag.max_active_runs,
        is_paused_upon_creation=dag.is_paused_upon_creation,
        params={k: v.schema for k, v in dag.params.items()},
        tasks={t.task_id: {"upstream": sorted(t.upstream_task_ids),
                           "downstream": sorted(t.downstream_task_ids),
                           "trigger_rule": getattr(t.trigger_rule, "value", str(t.trigger_rule)), "retries": t.retries,
                           "is_teardown": t.is_teardown,
                           "outlets": [a.name for a in t.outlets],
                           "dbt_select": getattr(t, "select", None),
                           "dbt_exclude": getattr(t, "exclude", None),
                           "dbt_indirect_selection": getattr(t, "indirect_selection", None),
                           "dbt_flags": getattr(t, "dbt_cmd_flags", None),
                           "dbt_cache_dir": (str(t.cache_dir) if getattr(t, "cache_dir", None)
                                             else None)}
               for t in dag.tasks},
        order=[t.task_id for t in dag.topological_sort()],
        start_date=dag.start_date.isoformat())
    # The first runs the scheduler would create from the start date, from the DAG's own
    # timetable, and the period each one processes.
    from airflow.timetables.base import TimeRestriction
    from lakehouse.airflow_support import month_of_run
    restriction = TimeRestriction(earliest=dag.start_date, latest=None, catchup=dag.catchup)
    runs, last = [], None
    for _ in range(int(__import__("os").environ.get("LAKEHOUSE_CHECK_RUNS", "0"))):
        info = dag.timetable.next_dagrun_info(last_automated_data_interval=last,
                                              restriction=restriction)
        if info is None:
            break
        last = info.data_interval
        runs.append({"logical_date": info.logical_date.isoformat(),
                     "interval": [last.start.isoformat(), last.end.isoformat()],
                     "run_after": info.run_after.isoformat(),
                     "month": list(month_of_run({}, last.start, info.run_after))})
    report["first_runs"] = runs
print("DAGREPORT" + json.dumps(report))
"""


def check_dag(env: dict[str, str], dag_id: str = DAG_ID, first_runs: int = 0) -> dict:
    """Parse the dags folder in a fresh interpreter (as the dag-processor does) and describe
    one of its DAGs (with the first `first_runs` runs its timetable schedules)."""
    proc = subprocess.run([sys.executable, "-c", _CHECK_SCRIPT],
                          env={**env, "LAKEHOUSE_CHECK_DAG": dag_id,
                               "LAKEHOUSE_CHECK_RUNS": str(first_runs)}, capture_output=True,
                          text=True, cwd=str(REPO), check=False)
    for line in proc.stdout.splitlines():
        if line.startswith("DAGREPORT"):
            return json.loads(line[len("DAGREPORT"):])
    raise AirflowLocalError(f"parsing the DAG folder crashed: {proc.stderr.strip()[-500:]}")


# --- one-shot runs (make demo, tests, benchmarks) ------------------------------------------

def run_dag(env: dict[str, str], conf: dict | None = None, log_path: Path | None = None,
            timeout: float | None = None, dag_id: str = DAG_ID,
            logical_date: str | None = None) -> tuple[int, dict[str, dict]]:
    """`airflow dags test` in a subprocess; returns its exit code and the run's task states.

    `logical_date` (e.g. `2016-02-01`) dates the run: for the monthly DAG the run's data
    interval is then the month before it (Airflow infers a manual run's interval as the last
    complete one), as for the scheduler's run of that month."""
    cmd = [airflow_bin(), "dags", "test", dag_id, *([logical_date] if logical_date else [])]
    if conf:
        cmd += ["-c", json.dumps(conf)]
    with contextlib.ExitStack() as stack:
        out = stack.enter_context(open(log_path, "w")) if log_path else subprocess.DEVNULL
        proc = subprocess.run(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, timeout=timeout,
                              cwd=str(REPO), check=False)
    run_id = _logged_run_id(Path(log_path)) if log_path else None
    run_id = run_id or newest_run_id(env, dag_id)
    if run_id is None:
        return proc.returncode, {}
    remember_conf(env, run_id, conf, dag_id)
    log_folder = Path(env["AIRFLOW__LOGGING__BASE_LOG_FOLDER"])
    if log_path:
        split_task_logs(log_folder, run_id, Path(log_path), dag_id)
    return proc.returncode, run_tasks(env, run_id, dag_id)


_RUN_CREATED = re.compile(r"creating dag run .* run_id=(\S+)")


def _logged_run_id(log_path: Path) -> str | None:
    """The run `airflow dags test` created, from its log: saves a CLI call (~5 s)."""
    with open(log_path, errors="replace") as lines:
        for line in lines:
            if (match := _RUN_CREATED.search(line)) is not None:
                return match.group(1)
    return None


# `airflow dags test` runs the tasks one after another in its own process and logs each
# task's start and end with these lines; what lies between is that task's output.
_TASK_START = re.compile(r"\[DAG TEST\] starting task_id=(\S+) map_index=(-?\d+)")
_TASK_END = re.compile(r"\[DAG TEST\] end task task_id=")
# structlog's console line: `2026-12-06T20:43:44.644676Z [info     ] message [logger] key=value`
_CONSOLE_LINE = re.compile(r"^(\d{4}-\d\d-\d\dT[\d:.]+Z) \[(\w+)\s*\] (.*)$")


def _as_log_record(line: str) -> str:
    """A console log line as the JSON record Airflow's task log files hold (timestamp, level,
    event), so the Logs tab shows its level and time; other lines (tracebacks) stay text."""
    match = _CONSOLE_LINE.match(line.rstrip("\n"))
    if match is None:
        return line
    timestamp, level, event = match.groups()
    return json.dumps({"timestamp": timestamp, "level": level, "event": event}) + "\n"


def task_log_path(log_folder: Path, run_id: str, task_id: str, attempt: int,
                  map_index: int = -1, dag_id: str = DAG_ID) -> Path:
    """Where the API server looks for a task attempt's log (Airflow's default
    `log_filename_template`), so the UI's Logs tab shows it."""
    mapped = f"map_index={map_index}/" if map_index >= 0 else ""
    return (Path(log_folder) / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={task_id}"
            / f"{mapped}attempt={attempt}.log")


def split_task_logs(log_folder: Path, run_id: str, log_path: Path,
                    dag_id: str = DAG_ID) -> list[Path]:
    """Cut the log of an `airflow dags test` run into one file per task attempt, at the path
    the UI reads: without this the Logs tab of an in-process run says "Log file not found"."""
    written: list[Path] = []
    attempts: dict[tuple[str, int], int] = {}
    out = None
    try:
        with open(log_path, errors="replace") as lines:
            for line in lines:
                if (start := _TASK_START.search(line)) is not None:
                    if out is not None:
                        out.close()
                    key = (start.group(1), int(start.group(2)))
                    attempts[key] = attempts.get(key, 0) + 1
                    path = task_log_path(log_folder, run_id, key[0], attempts[key], key[1],
                                         dag_id)
                    path.parent.mkdir(parents=True, exist_ok=True)
                    out = open(path, "w")  # noqa: SIM115 -- closed at the next task or below
                    written.append(path)
                if out is not None:
                    out.write(_as_log_record(line))
                    if _TASK_END.search(line):
                        out.close()
                        out = None
    finally:
        if out is not None:
            out.close()
    return written


# --- what Airflow recorded, through its CLI (`-o json`), never its metadata tables ----------

def airflow_json(env: dict[str, str], *args: str) -> list[dict]:
    """`airflow ARGS -o json`, parsed; [] when the DAG is not in this home's metadata yet."""
    proc = subprocess.run([airflow_bin(), *args, "-o", "json"], env=env, capture_output=True,
                          text=True, cwd=str(REPO), check=False)
    if proc.returncode != 0:
        if "does not exist in 'dag' table" in proc.stderr + proc.stdout:
            return []
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise AirflowLocalError(f"`airflow {' '.join(args)}` failed: {' | '.join(tail)}")
    # Log lines may come first; the JSON document is the last line that starts one.
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(("[", "{")):
            return json.loads(line)
    return []


def dag_runs(env: dict[str, str], dag_id: str = DAG_ID, state: str | None = None) -> list[dict]:
    """The DAG's runs in this home, newest first (`airflow dags list-runs`)."""
    return airflow_json(env, "dags", "list-runs", dag_id, *(["--state", state] if state else []))


def newest_run_id(env: dict[str, str], dag_id: str = DAG_ID) -> str | None:
    runs = dag_runs(env, dag_id)
    return runs[0]["run_id"] if runs else None


def last_run_tasks(env: dict[str, str], dag_id: str = DAG_ID) -> dict[str, dict]:
    """The task states of the DAG's newest run (see `run_tasks`), {} when it has none."""
    run_id = newest_run_id(env, dag_id)
    return {} if run_id is None else run_tasks(env, run_id, dag_id)


def _seconds(start: str, end: str) -> float | None:
    from datetime import datetime

    if not start or not end:
        return None
    return round((datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds(), 3)


def run_tasks(env: dict[str, str], run_id: str, dag_id: str = DAG_ID) -> dict[str, dict]:
    """task_id -> {state, seconds, try_number, start, run_id} for one run (`airflow tasks
    states-for-dag-run`); try_number counts the task's attempt logs."""
    log_folder = Path(env["AIRFLOW__LOGGING__BASE_LOG_FOLDER"])
    tasks = {}
    for ti in airflow_json(env, "tasks", "states-for-dag-run", dag_id, run_id):
        attempts = task_log_path(log_folder, run_id, ti["task_id"], 1, dag_id=dag_id).parent
        tasks[ti["task_id"]] = {
            "state": ti["state"] or None, "seconds": _seconds(ti["start_date"], ti["end_date"]),
            "try_number": len(list(attempts.glob("attempt=*.log"))) if attempts.is_dir() else 0,
            "start": ti["start_date"] or None, "run_id": run_id}
    return tasks


def served_url(home: Path) -> str | None:
    """The URL of the Airflow `make airflow` runs on this home, or None when it is not running."""
    server = _server(home)
    if server.running_pid() is None:
        return None
    port = server.note()
    return f"http://127.0.0.1:{port}" if port else None


def _api_auth(env: dict[str, str], base_url: str) -> dict[str, str]:
    token = api_token(base_url, ADMIN_USER, admin_password(Path(env["AIRFLOW_HOME"])))
    return {"Authorization": f"Bearer {token}"}


def dag_is_paused(env: dict[str, str], base_url: str, dag_id: str = DAG_ID) -> bool:
    """Whether the DAG is paused in the running Airflow (`GET /api/v2/dags/{dag_id}`)."""
    import requests

    return bool(requests.get(f"{base_url}/api/v2/dags/{dag_id}", headers=_api_auth(env, base_url),
                             timeout=30).json().get("is_paused"))


def run_via_api(env: dict[str, str], base_url: str, conf: dict, log_path: Path,
                timeout: float | None = None, dag_id: str = DAG_ID) -> tuple[int, dict[str, dict]]:
    """Trigger a run in the running Airflow through its REST API and wait for it to end."""
    import requests

    home = Path(env["AIRFLOW_HOME"])
    auth = _api_auth(env, base_url)
    dag_url = f"{base_url}/api/v2/dags/{dag_id}"
    if requests.get(dag_url, headers=auth, timeout=30).json().get("is_paused"):
        raise AirflowLocalError(f"DAG {dag_id} is paused in the Airflow at {base_url}, so its runs "
                                "would wait forever: unpause it (the toggle in the UI) and retry")
    resp = requests.post(f"{dag_url}/dagRuns", headers=auth, timeout=30,
                         json={"logical_date": None, "conf": conf})
    if resp.status_code != 200:
        raise AirflowLocalError(f"the Airflow at {base_url} refused the run: {resp.status_code} "
                                f"{resp.text[:300]}")
    run_id = resp.json()["dag_run_id"]
    remember_conf(env, run_id, conf, dag_id)
    Path(log_path).write_text(
        f"run {run_id} of {dag_id} ({json.dumps(conf)}) ran in the Airflow at {base_url} "
        f"(make airflow): each task's log is in the UI's Logs tab and under {home / 'logs'}\n")
    deadline = time.time() + timeout if timeout else None
    state = "queued"
    while state not in ("success", "failed"):
        if deadline and time.time() > deadline:
            raise AirflowLocalError(f"run {run_id} still {state} after {timeout:.0f}s: see {base_url}")
        time.sleep(2)
        try:
            state = requests.get(f"{dag_url}/dagRuns/{run_id}", headers=auth, timeout=60).json()["state"]
        except (requests.Timeout, requests.ConnectionError):
            if _server(home).running_pid() is None:
                raise AirflowLocalError(f"the Airflow at {base_url} stopped while run {run_id} "
                                        "was in flight: start it again (make airflow)") from None
            continue  # an API server busy with the run it serves answers late: ask again
    return (0 if state == "success" else 1), run_tasks(env, run_id, dag_id)


def run_year(env: dict[str, str], year: int, log_path: Path) -> tuple[int, dict[str, dict]]:
    """One year through the DAG, recorded in this Airflow home. When `make airflow` serves the home, its scheduler runs it (triggered
    through the REST API): the DAG is unpaused there, so the scheduler would also pick up the
    tasks of an in-process `airflow dags test` run and the two would collide. Otherwise
    `airflow dags test`, in-process."""
    home = Path(env["AIRFLOW_HOME"])
    if (url := served_url(home)) is not None:
        return run_via_api(env, url, {"year": year}, log_path)
    return run_dag(env, {"year": year}, log_path)


def run_month(env: dict[str, str], year: int, month: int,
              log_path: Path) -> tuple[int, dict[str, dict]]:
    """One BTS month through `bts_monthly_pipeline`, recorded in this Airflow home.

    In-process (`airflow dags test`) the run is dated the first of the month, the logical date
    of the scheduler's run of that month, so a catch-up after it does not run the month again
    (the scheduler creates no run for a date that has one) and re-running it replaces that run.
    The month is named in the conf: Airflow dates a manual run's data interval as the last
    complete month *before* its date. A month before the DAG's `start_date`
    (`LAKEHOUSE_BTS_FIRST_MONTH`) gets no task instances when dated, so it runs dated now.
    When `make airflow` serves the home with the DAG unpaused, its scheduler runs the month
    (triggered through the REST API, dated now); the DAG paused (as it ships), no scheduler
    touches the tasks of an in-process run.
    """
    from lakehouse.airflow_support import first_bts_month

    conf = {"year": year, "month": month}
    if (url := served_url(Path(env["AIRFLOW_HOME"]))) is not None \
            and not dag_is_paused(env, url, MONTHLY_DAG_ID):
        return run_via_api(env, url, conf, log_path, dag_id=MONTHLY_DAG_ID)
    first = first_bts_month(env.get("LAKEHOUSE_BTS_FIRST_MONTH"))
    dated = (year, month) >= (first.year, first.month)
    return run_dag(env, conf, log_path, dag_id=MONTHLY_DAG_ID,
                   logical_date=f"{year}-{month:02d}-01" if dated else None)


def demo(year: int, home: Path = DEFAULT_HOME) -> int:
    from lakehouse.airflow_support import demo_summary
    from lakehouse.warehouse import apply_env

    apply_env()
    env = airflow_env(home)
    prepare_home(env)
    log = Path(env["AIRFLOW_HOME"]) / f"demo-{year}.log"
    url = served_url(Path(env["AIRFLOW_HOME"]))
    how = f"in the running Airflow at {url}" if url else "in-process (airflow dags test)"
    print(f"running DAG {DAG_ID} for {year} {how}; log: {log} ...", flush=True)
    started = time.perf_counter()
    code, tasks = run_year(env, year, log)
    elapsed = time.perf_counter() - started
    order = sorted(tasks.items(), key=lambda kv: kv[1]["start"] or "~")
    for task_id, info in order:
        secs = "" if info["seconds"] is None else f"{info['seconds']:7.1f}s"
        print(f"  {info['state'] or 'not run':<16} {secs:>8}  {task_id}")
    print(f"DAG run {'succeeded' if code == 0 else 'FAILED'} in {elapsed:.1f}s")
    if code != 0:
        print(f"error: the DAG run failed; see the failed task above and {log}", file=sys.stderr)
    print(demo_summary(year))
    return 0 if code == 0 else 1


# --- backfill: the DAG for each year, oldest first ------------------------------------------

Period = int | tuple[int, int]  # a year, or (year, month) for a BTS month


def _period_of_run(conf: str | dict | None, logical_date: str | None,
                   monthly: bool = False) -> Period | None:
    """What a recorded run processed: its `year` (and `month`) conf, else the year before its
    date (etl_ml_pipeline) or the month it is dated (bts_monthly_pipeline: a scheduled run's
    logical date is the start of its month)."""
    params = (json.loads(conf) if isinstance(conf, str) and conf else conf) or {}
    if params.get("year") not in (None, ""):
        if params.get("month") not in (None, ""):
            return int(params["year"]), int(params["month"])
        return None if monthly else int(params["year"])
    if not logical_date:
        return None
    return (int(logical_date[:4]), int(logical_date[5:7])) if monthly else int(logical_date[:4]) - 1


def period_label(period: Period) -> str:
    return str(period) if isinstance(period, int) else f"{period[0]}-{period[1]:02d}"


def _conf_cache(env: dict[str, str]) -> tuple[Path, dict]:
    path = Path(env["AIRFLOW_HOME"]) / "run_conf.json"
    try:
        return path, json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return path, {}


def remember_conf(env: dict[str, str], run_id: str, conf: dict | None,
                  dag_id: str = DAG_ID) -> None:
    path, cache = _conf_cache(env)
    cache[f"{dag_id}/{run_id}"] = conf or {}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(cache))
    os.replace(tmp, path)  # atomic: a killed backfill leaves the previous file


def run_conf(env: dict[str, str], run_id: str, dag_id: str = DAG_ID) -> dict:
    """A run's conf (`airflow dags state DAG RUN_ID` prints `state, {conf}`), remembered in
    the home's `run_conf.json`: a run's conf never changes, and each CLI call costs seconds
    (the runs this module starts are remembered as they start)."""
    _, cache = _conf_cache(env)
    if (key := f"{dag_id}/{run_id}") in cache:
        return cache[key]
    proc = subprocess.run([airflow_bin(), "dags", "state", dag_id, run_id], env=env,
                          capture_output=True, text=True, cwd=str(REPO), check=False)
    last = proc.stdout.strip().splitlines()[-1:] or [""]
    _, _, text = last[0].partition(", ")
    conf = json.loads(text) if text.startswith("{") else {}
    if proc.returncode == 0:
        remember_conf(env, run_id, conf, dag_id)
    return conf


def succeeded_runs(env: dict[str, str], dag_id: str = DAG_ID) -> dict[Period, str]:
    """year (etl_ml_pipeline) or (year, month) (bts_monthly_pipeline) -> run_id of the newest
    succeeded run of the DAG in this Airflow home (`airflow dags list-runs --state success`)."""
    done: dict[Period, str] = {}
    for run in reversed(dag_runs(env, dag_id, state="success")):  # oldest first: newest wins
        conf = run_conf(env, run["run_id"], dag_id)
        period = _period_of_run(conf, run["logical_date"], monthly=dag_id == MONTHLY_DAG_ID)
        if period is not None:
            done[period] = run["run_id"]
    return done


def _finished(query: str) -> set[tuple]:
    """The rows of a query on the warehouse's record of finished work ({} before it exists)."""
    import psycopg

    from lakehouse.warehouse import connect

    with connect(part="reader") as conn:
        try:
            return {tuple(r) for r in conn.execute(query).fetchall()}
        except (psycopg.errors.UndefinedTable, psycopg.errors.UndefinedColumn):
            return set()


def scored_years() -> set[int]:
    """Years with a succeeded scoring run in the warehouse (ml.model_runs)."""
    return {y for (y,) in _finished("select distinct year from ml.model_runs "
                                    "where status = 'succeeded'")}


def loaded_months() -> set[tuple[int, int]]:
    """BTS months with a succeeded load in the warehouse (staging.load_audit)."""
    return _finished("select distinct year, month from staging.load_audit "
                     "where status = 'succeeded' and month is not null")


def bronze_years(candidates: list[int]) -> list[int]:
    """The candidate years whose bronze object is in the lake."""
    from lakehouse.lake import Lake, bronze_key

    lake = Lake.from_env()
    return [y for y in candidates if lake.exists(bronze_key(y))]


def _failure_line(log_path: Path, run_id: str, task_id: str, log_folder: Path,
                  dag_id: str = DAG_ID) -> str:
    """The last error line of a failed task's log, to name the cause beside the task."""
    attempts = sorted(task_log_path(log_folder, run_id, task_id, 1, dag_id=dag_id).parent
                      .glob("attempt=*.log"),
                      key=lambda p: int(p.stem.split("=")[1]))
    source = attempts[-1] if attempts else log_path
    found = ""
    with open(source, errors="replace") as fh:
        for line in fh:
            if re.search(r"\b\w*(Error|Exception)\b|\bERROR\b|error:", line):
                found = line.strip()
    return found[:400]


def backfill(years: list[Period], force: bool = False, home: Path = DEFAULT_HOME,
             on_year=None) -> list[dict]:
    """Run the DAG for each year in order, one year at a time (`run_year`: in-process, or in the
    running `make airflow` of this home), stopping at the first failure. A year is finished,
    and skipped unless `force`, when this Airflow home holds a succeeded run of it AND the
    warehouse holds a succeeded scoring run of it (ml.model_runs): a new or wiped warehouse
    redoes every year. A period may be a BTS month, (year, month): `bts_monthly_pipeline`
    runs it (`run_month`), and it is finished when this home holds a succeeded run of that
    DAG for it AND the warehouse a succeeded load of it (staging.load_audit).

    Returns one dict per period: year (the period: 2019 or (2019, 1)), label, status
    (succeeded / skipped / failed), seconds, run_id, failed_task, error, log.
    `on_year(result)` is called as each period ends.
    """
    from lakehouse.warehouse import apply_env

    apply_env()
    env = airflow_env(home)
    prepare_home(env)
    home = Path(env["AIRFLOW_HOME"])
    log_folder = Path(env["AIRFLOW__LOGGING__BASE_LOG_FOLDER"])
    has_years = any(isinstance(p, int) for p in years)
    has_months = any(not isinstance(p, int) for p in years)
    done = {**(succeeded_runs(env) if has_years else {}),
            **(succeeded_runs(env, MONTHLY_DAG_ID) if has_months else {})}
    scored = scored_years() if has_years else set()
    months_loaded = loaded_months() if has_months else set()
    results = []
    for year in years:
        finished = year in (scored if isinstance(year, int) else months_loaded)
        label = period_label(year)
        if not force and year in done and finished:
            result = {"year": year, "label": label, "status": "skipped", "seconds": 0.0,
                      "run_id": done[year], "failed_task": None, "error": None, "log": None}
        else:
            log = home / "backfill" / f"{label}.log"
            log.parent.mkdir(parents=True, exist_ok=True)
            started = time.perf_counter()
            code, tasks = (run_year(env, year, log) if isinstance(year, int)
                           else run_month(env, year[0], year[1], log))
            failed = sorted((i["start"] or "~", t) for t, i in tasks.items() if i["state"] == "failed")
            run_id = next(iter(tasks.values()))["run_id"] if tasks else None
            result = {"year": year, "label": label,
                      "status": "succeeded" if code == 0 and not failed else "failed",
                      "seconds": round(time.perf_counter() - started, 1), "run_id": run_id,
                      "failed_task": failed[0][1] if failed else None, "error": None,
                      "log": str(log)}
            if result["status"] == "failed" and run_id:
                dag_id = DAG_ID if isinstance(year, int) else MONTHLY_DAG_ID
                result["error"] = _failure_line(log, run_id, result["failed_task"] or "",
                                                log_folder, dag_id) \
                    if result["failed_task"] else "the DAG run failed before any task ran"
        results.append(result)
        if on_year:
            on_year(result)
        if result["status"] == "failed":
            break
    return results


def _print_year(result: dict) -> None:
    year = result["label"]
    if result["status"] == "skipped":
        print(f"  {year}  skipped: finished (DAG run {result['run_id']} succeeded, "
              f"{'scored in ml.model_runs' if '-' not in year else 'loaded'}); FORCE=1 runs it "
              "again", flush=True)
    elif result["status"] == "succeeded":
        print(f"  {year}  succeeded in {result['seconds']:.1f}s", flush=True)
    else:
        print(f"  {year}  FAILED after {result['seconds']:.1f}s at task {result['failed_task']}",
              flush=True)


def _months(first: tuple[int, int], last: tuple[int, int]) -> list[tuple[int, int]]:
    return [(y, m) for y in range(first[0], last[0] + 1) for m in range(1, 13)
            if first <= (y, m) <= last]


def backfill_cli(first: Period | None, last: Period | None, force: bool, home: Path) -> int:
    from lakehouse.airflow_support import lake_years

    if first is not None and last is not None and isinstance(first, int) != isinstance(last, int):
        raise AirflowLocalError("give FROM and TO both as years (FROM=2009 TO=2018) or both as "
                                "months (FROM=2019-01 TO=2019-03)")
    if (first is None) != (last is None):
        raise AirflowLocalError("give both FROM and TO (years, e.g. FROM=2009 TO=2018), or neither "
                                "for every year of LAKEHOUSE_YEARS the lake holds")
    if first is None:
        from lakehouse.warehouse import apply_env

        apply_env()
        candidates = lake_years()
        years = bronze_years(candidates)
        if not years:
            raise AirflowLocalError(f"the lake ({os.environ.get('LAKE_URL', 'data/lake')}) holds no "
                                    f"bronze year of {candidates[0]}-{candidates[-1]}: "
                                    "`python -m loaders ingest PATH` puts the Kaggle files there")
    else:
        if first > last:
            raise AirflowLocalError(f"FROM={period_label(first)} is after TO={period_label(last)}: "
                                    "the first period comes first")
        years = list(range(first, last + 1)) if isinstance(first, int) else _months(first, last)
    kind = "years" if isinstance(years[0], int) else "BTS months"
    print(f"backfill of {DAG_ID if kind == 'years' else MONTHLY_DAG_ID}: {len(years)} {kind} {period_label(years[0])} to "
          f"{period_label(years[-1])}, oldest first"
          f"{' (FORCE: finished years run again)' if force else ''}", flush=True)
    started = time.perf_counter()
    results = backfill(years, force=force, home=home, on_year=_print_year)
    ran = [r for r in results if r["status"] != "skipped"]
    print(f"{kind} run: {len(ran)}, skipped as finished: "
          f"{sum(r['status'] == 'skipped' for r in results)}, {time.perf_counter() - started:.1f}s",
          flush=True)
    last_result = results[-1]
    if last_result["status"] == "failed":
        rest = years[len(results):]
        print(f"error: backfill stopped at {last_result['label']}: task "
              f"{last_result['failed_task']} failed: {last_result['error']} (full log "
              f"{last_result['log']}; the task's log is in the Airflow UI too)"
              + (f"; not run: {', '.join(map(period_label, rest))}" if rest else ""),
              file=sys.stderr)
        return 1
    return 0


# --- the UI ---------------------------------------------------------------------------------

def _server(home: Path) -> Background:
    """`airflow standalone` in the background; its pid file also holds its port."""
    return Background("Airflow", Path(home) / "standalone.pid", Path(home) / "standalone.log")


def api_token(base_url: str, username: str, password: str) -> str:
    import requests

    resp = requests.post(f"{base_url}/auth/token", json={"username": username, "password": password},
                         timeout=10)
    resp.raise_for_status()
    return resp.json()["access_token"]


def wait_for_dag(base_url: str, token: str, timeout: float = 180.0) -> dict:
    import requests

    deadline = time.time() + timeout
    while time.time() < deadline:
        resp = requests.get(f"{base_url}/api/v2/dags/{DAG_ID}",
                            headers={"Authorization": f"Bearer {token}"}, timeout=10)
        if resp.status_code == 200:
            return resp.json()
        time.sleep(2)
    raise AirflowLocalError(f"DAG {DAG_ID} did not appear in {timeout:.0f}s: see the "
                            "dag-processor log for an import error")


def serve(home: Path = DEFAULT_HOME, port: int | None = None) -> int:
    """Start `airflow standalone` in the background (own process group) and wait for the DAG."""
    from lakehouse.warehouse import apply_env

    server = _server(home)
    if (pid := server.running_pid()) is not None:
        print(f"Airflow already runs (pid {pid}); `make airflow-stop` stops it", file=sys.stderr)
        return 0
    apply_env()
    port = port or free_port(DEFAULT_PORT)
    env = airflow_env(home, port)
    prepare_home(env)
    log = server.log_file
    base_url = f"http://127.0.0.1:{port}"
    try:
        server.start([airflow_bin(), "standalone"], lambda: http_ok(f"{base_url}/api/v2/monitor/health"),
                     env=env, timeout=180.0, cwd=REPO, note=str(port))
        password = admin_password(Path(env["AIRFLOW_HOME"]))
        wait_for_dag(base_url, api_token(base_url, ADMIN_USER, password))
    except BackgroundError as exc:
        raise AirflowLocalError(str(exc)) from None
    except Exception:
        stop(home)
        print(f"see {log}", file=sys.stderr)
        raise
    print(f"Airflow UI: {base_url}  login: {ADMIN_USER} / (password in {passwords_file(Path(env['AIRFLOW_HOME']))})\n"
          f"DAG {DAG_ID}: trigger it with a year (the trigger form or the REST API), or run "
          f"years in order with `make backfill FROM=.. TO=..`; task logs are in each task's Logs tab.\n"
          f"log: {log}; stop with `make airflow-stop`")
    return 0


def stop(home: Path = DEFAULT_HOME, timeout: float = 30.0) -> bool:
    """Stop what `serve` started: its process group, then any descendant that left it."""
    return _server(home).stop(timeout)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.airflow_local",
                                     description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sv = sub.add_parser("serve", help="start the Airflow UI in the background")
    sv.add_argument("--port", type=int, default=None, help="API/UI port (default 8080 or a free one)")
    st = sub.add_parser("stop", help="stop it")
    dm = sub.add_parser("demo", help="run the DAG once in-process for a year and summarise")
    dm.add_argument("--year", type=int, required=True)
    bf = sub.add_parser("backfill", help="run etl_ml_pipeline for each year (or "
                        "bts_monthly_pipeline for each BTS month), oldest first, stopping at the "
                        "first failure; finished ones are skipped unless --force")
    bf.add_argument("--from", dest="first", type=_period_arg, default=None,
                    help="first year (2009) or BTS month (2019-01)")
    bf.add_argument("--to", dest="last", type=_period_arg, default=None,
                    help="last year or BTS month")
    bf.add_argument("--force", action="store_true", help="run finished years again")
    sub.add_parser("env", help="print the environment for running `airflow` commands by hand")
    for p in (sv, st, dm, bf):
        p.add_argument("--home", type=Path, default=DEFAULT_HOME)
    args = parser.parse_args(argv)
    try:
        return _dispatch(args)
    except AirflowLocalError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _period_arg(value: str) -> Period:
    text = value.strip()
    m = re.fullmatch(r"(\d{4})(?:-(\d{1,2}))?", text)
    if not m:
        raise argparse.ArgumentTypeError(f"{value!r}: give a year such as 2009 or a BTS month "
                                         "such as 2019-01")
    try:
        year = check_year(m.group(1), "FROM/TO")
    except UserError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if m.group(2) is None:
        return year
    if not 1 <= int(m.group(2)) <= 12:
        raise argparse.ArgumentTypeError(f"{value!r}: the month must be 01-12; give a year such "
                                         "as 2009 or a BTS month such as 2019-01")
    return year, int(m.group(2))


def _dispatch(args) -> int:
    if args.command == "serve":
        return serve(args.home, args.port)
    if args.command == "stop":
        print("stopped" if stop(args.home) else "not running", file=sys.stderr)
        return 0
    if args.command == "demo":
        return demo(args.year, args.home)
    if args.command == "backfill":
        return backfill_cli(args.first, args.last, args.force, args.home)
    for key, value in airflow_env(DEFAULT_HOME, base={}).items():
        # PATH stays the caller's; a password stays out of shell history and terminals.
        if key != "PATH" and not (key.startswith("AIRFLOW_CONN") and "password" in value) \
                and key != "PGPASSWORD":
            print(f"export {key}={shlex.quote(value)}")
    return 0


if __name__ == "__main__":
    from lakehouse.cli import run_cli

    sys.exit(run_cli(main))
