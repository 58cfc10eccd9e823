"""What the DAGs (`etl_ml_pipeline`, `bts_monthly_pipeline`) need besides the functions
they wire: the year or month a run processes and their schedules, the warehouse settings
(Airflow connection or PG* variables), the Cosmos configs, a run's cleanup of half-written
lake objects, and the summary `make demo` prints.

Kept free of heavy imports: the DAG file imports this module at parse time.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

REPO = Path(__file__).resolve().parents[1]
DBT_PROJECT_DIR = Path(os.environ.get("LAKEHOUSE_DBT_PROJECT_DIR") or REPO / "dbt_project")
DBT_PROJECT_NAME = "lakehouse"  # dbt_project.yml's `name`: the prefix of its node ids
DBT_PROFILE_NAME = "lakehouse"
DBT_TARGET_NAME = "dev"
DBT_PROFILES_EXAMPLE = REPO / "profiles.yml.example"
WAREHOUSE_CONN_ID = "warehouse"

# The PG* variable each field of an Airflow connection becomes (its `schema` is the database).
_CONN_TO_LIBPQ = {"host": "PGHOST", "port": "PGPORT", "login": "PGUSER",
                  "password": "PGPASSWORD", "schema": "PGDATABASE"}  # pragma: allowlist secret


def manifest_path() -> Path:
    """The dbt manifest Cosmos renders from (`make dbt-parse` writes it)."""
    return Path(os.environ.get("LAKEHOUSE_DBT_MANIFEST", DBT_PROJECT_DIR / "target" / "manifest.json"))


def require_manifest() -> Path:
    path = manifest_path()
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} does not exist: run `make dbt-parse` (or `dbt parse --project-dir "
            f"{DBT_PROJECT_DIR}`) so Cosmos can render the dbt models"
        )
    return path


def warehouse_conn_id() -> str | None:
    """The Airflow connection that names the warehouse, or None to use the PG* variables.

    Decided from the environment only, so parsing the DAG never queries the metadata DB:
    `AIRFLOW_CONN_WAREHOUSE` selects the `warehouse` connection; `LAKEHOUSE_WAREHOUSE_CONN_ID`
    names any other connection (one kept in the metadata DB or a secrets backend).
    """
    explicit = os.environ.get("LAKEHOUSE_WAREHOUSE_CONN_ID")
    if explicit:
        return explicit
    if os.environ.get(f"AIRFLOW_CONN_{WAREHOUSE_CONN_ID.upper()}"):
        return WAREHOUSE_CONN_ID
    return None


def libpq_env_from_connection(conn: Any) -> dict[str, str]:
    """PG* variables for an Airflow connection object (host, port, login, password, schema)."""
    env = {}
    for field, var in _CONN_TO_LIBPQ.items():
        value = getattr(conn, field, None)
        if value not in (None, ""):
            env[var] = str(value)
    return env


def apply_warehouse_env() -> dict[str, str]:
    """Point this task process's PG* variables at the warehouse (connection first).

    Called at the start of each Python task. Why the process environment: the loaders, the
    scorer and psycopg read the warehouse from the standard libpq variables (one configuration
    story for every part, inside Airflow or not), and a plain `@task` has no `env` argument
    (Cosmos' dbt tasks get theirs from the ProfileConfig). Each Airflow 3 task runs in a
    process of its own, so what is set here reaches that task only.
    """
    conn_id = warehouse_conn_id()
    if conn_id is None:
        from lakehouse.warehouse import apply_env

        return apply_env()
    from airflow.sdk import BaseHook

    env = libpq_env_from_connection(BaseHook.get_connection(conn_id))
    if "PGPASSWORD" not in env:
        os.environ.pop("PGPASSWORD", None)
    os.environ.update(env)
    return env


def profile_config():
    """Cosmos ProfileConfig: the warehouse connection when there is one, else the PG* profile.

    Both end at the same server: `apply_warehouse_env` gives the Python tasks the same one.
    """
    from cosmos import ProfileConfig

    conn_id = warehouse_conn_id()
    if conn_id is None:
        return ProfileConfig(profile_name=DBT_PROFILE_NAME, target_name=DBT_TARGET_NAME,
                             profiles_yml_filepath=pg_profiles_yml())
    # As in profiles.yml.example, role included ('' = the login itself; DBT_ROLE builds as a
    # least-privilege role): dbt's partial-parse cache is keyed on these settings, so the
    # manifest `dbt parse` wrote with that profile is reused by the first task, not re-parsed.
    profile_args: dict[str, Any] = {"schema": "silver", "threads": 2,
                                    "role": os.environ.get("DBT_ROLE", "")}
    return ProfileConfig(
        profile_name=DBT_PROFILE_NAME,
        target_name=DBT_TARGET_NAME,
        profile_mapping=_postgres_profile_mapping()(
            conn_id=conn_id, profile_args=profile_args),
    )


def pg_profiles_yml() -> Path:
    """profiles.yml.example under the name dbt looks for (it reads only PG* variables).

    Cosmos hands dbt the file's folder, and dbt opens `profiles.yml` there.
    """
    folder = Path(tempfile.gettempdir()) / f"lakehouse-dbt-profile-{os.getuid()}"
    path = folder / "profiles.yml"
    wanted = DBT_PROFILES_EXAMPLE.read_text()
    if not path.is_file() or path.read_text() != wanted:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".profiles.yml.{os.getpid()}"
        tmp.write_text(wanted)
        os.replace(tmp, path)  # atomic: parallel parsers never see half a file
    return path


def _postgres_profile_mapping():
    """Cosmos's Postgres user/password mapping, with the password optional.

    A server that authenticates by trust, peer or ~/.pgpass has no password to put in the
    connection; Cosmos's own mapping would refuse such a connection.
    """
    from cosmos.profiles import PostgresUserPasswordProfileMapping

    class PostgresProfileMapping(PostgresUserPasswordProfileMapping):
        required_fields: ClassVar[list[str]] = ["host", "user", "dbname"]

        @property
        def secret_fields(self) -> list[str]:
            return ["password"] if self.conn.password else []

        @property
        def profile(self) -> dict[str, Any | None]:
            profile = super().profile
            if not self.conn.password:
                profile["password"] = ""  # dbt-postgres requires the key; libpq sends nothing
            return profile

    return PostgresProfileMapping


DEFAULT_YEARS = "2009-2018"  # the years of the Kaggle files the original pipeline was built for


def lake_years(spec: str | None = None) -> list[int]:
    """The years of the schedule (what `airflow backfill create` walks, and `make backfill`
    without FROM/TO): `LAKEHOUSE_YEARS` such as `2009-2018` or `2015,2017`."""
    from lakehouse.years import parse_years

    spec = spec if spec is not None else os.environ.get("LAKEHOUSE_YEARS", DEFAULT_YEARS)
    return parse_years(spec, "LAKEHOUSE_YEARS")


def yearly_schedule():
    """One date on 1 January after each lake year: a backfill over a range creates one run per
    date (with catch-up off the scheduler creates none by itself, the dates being past).

    A cron `@yearly` with an `end_date` would bound the range too, but Airflow creates no
    task instances for a run dated after `end_date`: a manual run today would "succeed" doing
    nothing. A list of yearly dates bounds the range and leaves manual runs alone.
    """
    import pendulum

    # The core class: in Airflow 3.3 the Task SDK one serialises without the `_summary` field
    # the scheduler reads back (KeyError when the DAG is stored).
    from airflow.timetables.events import EventsTimetable

    years = lake_years()
    return EventsTimetable(
        [pendulum.datetime(y + 1, 1, 1, tz="UTC") for y in years], presorted=True,
        description=f"yearly, 1 January after each of {len(years)} lake years {years[0]}-{years[-1]}")


def resolve_year(params: Mapping[str, Any] | None, logical_date: datetime | None,
                 run_after: datetime | None) -> int:
    """The year a run processes: the `year` param when given, else the year before the run.

    A yearly run on 2019-01-01 processes 2018, whose file is complete by then. Manual runs
    without a logical date fall back to their `run_after`.
    """
    year = (params or {}).get("year")
    if year not in (None, ""):
        return int(year)
    when = logical_date or run_after
    if when is None:
        raise ValueError("the run has neither a `year` param nor a logical date")
    return when.year - 1


def missing_bronze_message(year: int, exc: Exception) -> str:
    """What a run of a year without a bronze object says: how to put the year in the lake."""
    return (f"year {year}: {exc}: put the year's file in the lake with "
            f"`python -m loaders ingest PATH` (the Kaggle zip, a folder or {year}.csv), or for "
            f"sample data `python -m loaders generate --year {year}`; then run the year again")


def year_from_context(context: Mapping[str, Any]) -> int:
    dag_run = context.get("dag_run")
    return resolve_year(context.get("params"), context.get("logical_date"),
                        getattr(dag_run, "run_after", None))


def month_from_context(context: Mapping[str, Any]) -> int | None:
    """The BTS month a run loads (its `month` param), or None: the year's yearly file."""
    month = (context.get("params") or {}).get("month")
    return None if month in (None, "") else int(month)


DEFAULT_FIRST_MONTH = "2019-01"  # the first month after the Kaggle files


def first_bts_month(spec: str | None = None) -> datetime:
    """The first month of the monthly schedule (its `start_date`): `LAKEHOUSE_BTS_FIRST_MONTH`,
    such as `2019-01` (the default) or `2024-06` for a lake that starts there."""
    from datetime import UTC

    spec = (spec if spec is not None else os.environ.get("LAKEHOUSE_BTS_FIRST_MONTH")) \
        or DEFAULT_FIRST_MONTH
    from lakehouse.errors import UserError
    from lakehouse.years import check_month, check_year

    year, _, month = spec.strip().partition("-")
    try:
        return datetime(check_year(year), check_month(month), 1, tzinfo=UTC)
    except UserError:
        raise UserError(f"LAKEHOUSE_BTS_FIRST_MONTH={spec!r}: use a month such as 2019-01") from None


def monthly_schedule():
    """One run per calendar month, its data interval that month: the run of the interval
    [2019-01-01, 2019-02-01) has logical date 2019-01-01, starts once the month is over, and
    processes 2019-01 (`month_of_run`).

    A cron string would give Airflow 3's default `CronTriggerTimetable`, whose runs are points
    in time with no interval: the month would have to be guessed back from the trigger date.
    """
    # The core class, for the same reason as yearly_schedule's EventsTimetable.
    from airflow.timetables.interval import CronDataIntervalTimetable

    return CronDataIntervalTimetable("0 0 1 * *", timezone="UTC")


def month_of_run(params: Mapping[str, Any] | None, data_interval_start: datetime | None,
                 run_after: datetime | None) -> tuple[int, int]:
    """(year, month) a run of the monthly DAG processes: its `year` and `month` params when
    given (re-running one month by hand), else the month its data interval starts in. A run
    without an interval (triggered with no logical date) takes the month before it runs."""
    params = params or {}
    year, month = params.get("year"), params.get("month")
    if (year in (None, "")) != (month in (None, "")):
        raise ValueError("give both `year` and `month` (e.g. {\"year\": 2019, \"month\": 1}), "
                         "or neither for the month of the run's data interval")
    if year not in (None, ""):
        return int(year), int(month)
    if data_interval_start is not None:
        return data_interval_start.year, data_interval_start.month
    if run_after is None:
        raise ValueError("the run has neither `year`/`month` params nor a data interval")
    return (run_after.year, run_after.month - 1) if run_after.month > 1 else (run_after.year - 1, 12)


def period_from_context(context: Mapping[str, Any], monthly: bool) -> tuple[int, int | None]:
    """(year, month or None) a run processes: see `resolve_year` (the yearly DAG, whose
    `month` param picks a BTS month) and `month_of_run` (the monthly DAG)."""
    if not monthly:
        return year_from_context(context), month_from_context(context)
    return month_of_run(context.get("params"), context.get("data_interval_start"),
                        getattr(context.get("dag_run"), "run_after", None))


def cleanup_run(run_id: str, year: int | None, lake=None, month: int | None = None) -> dict[str, Any]:
    """Remove the half-written lake objects of the run's year (and month).

    A local lake publishes by writing `.{name}.XXXX` beside the target and renaming it; a
    killed process leaves that temp file behind. Runs never overlap (max_active_runs=1, and
    each DAG's check_bronze waits for the other's run), so no writer of this year is alive
    when this runs. (The tasks' other temporary files need no cleanup: `tempfile`'s
    TemporaryFile and SpooledTemporaryFile, which the loader and the lake use, have no name
    on disk on POSIX, so a killed task leaves nothing behind.)
    """
    from lakehouse.lake import (
        Lake,
        bronze_key,
        bts_bronze_key,
        gold_key,
        gold_month_key,
        silver_key,
        silver_month_key,
    )

    removed: list[str] = []
    lake = lake or Lake.from_env()
    if year is not None and not lake.is_s3:
        keys = [bronze_key(year), silver_key(year), gold_key(year)]
        if month is not None:
            keys += [bts_bronze_key(year, month), silver_month_key(year, month),
                     gold_month_key(year, month)]
        for key in keys:
            target = Path(lake.url) / key
            if target.parent.is_dir():
                for leftover in target.parent.glob(f".{target.name}.*"):
                    leftover.unlink(missing_ok=True)
                    removed.append(str(leftover))
    return {"run_id": run_id, "year": year, "removed": removed}


def demo_summary(year: int, top: int = 5) -> str:
    """A short, human summary of what a run left in the warehouse for `year`."""
    import psycopg
    from psycopg import sql

    from lakehouse.warehouse import connect

    lines = [f"== etl_ml_pipeline: year {year} =="]
    with connect(part="reader") as conn:
        def scalar(query, params=()):
            try:
                return conn.execute(query, params).fetchone()
            except psycopg.Error as exc:  # a part that has not run yet: skip its line
                conn.rollback()
                return exc

        audit = scalar(
            "select lines_read, rows_loaded, rows_rejected, status from staging.load_audit "
            "where year = %s order by started_at desc limit 1", (year,))
        if isinstance(audit, tuple):
            lines.append(f"bronze lines read {audit[0]:,}: loaded {audit[1]:,}, "
                         f"rejected {audit[2]:,} (status {audit[3]})")
        for label, schema, table in (("silver flights", "silver", "flights"),
                                     ("silver rejected rows", "silver", "flights_rejected"),
                                     ("gold airport-days", "gold", "agg_dep_delay_by_date"),
                                     ("scored airport-days", "ml", "dep_delay_anomalies")):
            row = scalar(sql.SQL("select count(*) from {}.{} where year = %s").format(
                sql.Identifier(schema), sql.Identifier(table)), (year,))
            if isinstance(row, tuple):
                lines.append(f"{label}: {row[0]:,}")
        rows: list[tuple] = []
        anomalies = scalar("select count(*) filter (where is_anomaly), count(*) "
                           "from ml.dep_delay_anomalies where year = %s", (year,))
        if isinstance(anomalies, tuple):
            lines.append(f"anomalies found: {anomalies[0]:,} of {anomalies[1]:,} airport-days")
            try:
                rows = conn.execute(
                    "select id, anomaly_kind, severity, flights, mean_dep_delay, origin, "
                    "expected_dep_delay, cancel_rate from ml.dep_delay_anomalies "
                    "where year = %s and is_anomaly "
                    "order by greatest(coalesce(delay_score, 0), coalesce(cancel_score, 0)) desc "
                    "limit %s", (year, top)).fetchall()
            except psycopg.Error:
                conn.rollback()
                rows = []
            if rows:
                lines.append(f"top {len(rows)}:")
                for rid, kind, severity, flights, mean, _origin, expected, cancel in rows:
                    lines.append(
                        f"  {rid:<12} {kind or '-':<12} {severity or '-':<6} flights={flights} "
                        f"mean_delay={_num(mean)} expected={_num(expected)} "
                        f"cancel_rate={_num(cancel, 3)}")
        plot_origin = rows[0][5] if rows else "ORD"
    lines += [
        "next:",
        ("  make airflow        the Airflow UI with this run and its task logs "
         "(login admin, password in .local/airflow/passwords.json)"),
        "  make docs           the dbt docs of every model, source and exposure",
        f"  python -m ml plot --origin {plot_origin} --year {year}   its year, band, flagged days",
    ]
    return "\n".join(lines)


def _num(value, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"
