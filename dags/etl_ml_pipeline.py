"""etl_ml_pipeline: bronze CSV -> staging -> dbt silver/gold -> Parquet + anomaly scores.

One run processes one year: the `year` param when given, else the year before the run date
(a backfill run of 2019-01-01 processes 2018). With a `month` param the run loads that BTS
month of the year (`01_bronze/bts/{year}/{month}.csv`, replacing only that month in staging)
instead of the yearly file, and builds, exports and scores that month. The DAG ships unpaused
with catch-up off: a run triggered with a year starts at once, and starting Airflow never
launches runs for years the lake may not hold; the decade is filled by one explicit command
(`make backfill FROM= TO=` or `airflow backfill create`, docs/airflow.md). The tasks only
wire functions from `loaders/` and `ml/`; configuration helpers live in
`lakehouse.airflow_support`. The file also defines `bts_monthly_pipeline`, the same tasks on
a monthly calendar (MONTHLY_DOC).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.sdk import Asset, Param, dag, get_current_context, task
from cosmos import (
    DbtTaskGroup,
    ExecutionConfig,
    ExecutionMode,
    InvocationMode,
    LoadMode,
    ProjectConfig,
    RenderConfig,
    TestBehavior,
    TestIndirectSelection,
)

from lakehouse import airflow_support as support
from lakehouse.years import FIRST_YEAR, LAST_YEAR

MONTHLY_DOC = """bts_monthly_pipeline: one BTS month per run, the same tasks as etl_ml_pipeline.

Scheduled monthly with data intervals: the run of [2019-01-01, 2019-02-01) starts once
January is over and processes 2019-01 (`01_bronze/bts/2019/01.csv`); a month not in the lake
fails check_bronze with where to download it. Catch-up from `LAKEHOUSE_BTS_FIRST_MONTH`
(default 2019-01), one run at a time, oldest first. Paused on creation: unpause it once the
months are in the lake (docs/airflow.md). A trigger with `{"year": 2019, "month": 1}` re-runs
one month.
"""

# Stable names a downstream DAG (e.g. a dashboard refresh) can be scheduled on.
GOLD_ASSET = Asset(name="gold.agg_dep_delay_by_date",
                   uri="lakehouse://warehouse/gold/agg_dep_delay_by_date")
ANOMALY_ASSET = Asset(name="ml.dep_delay_anomalies",
                      uri="lakehouse://warehouse/ml/dep_delay_anomalies")

# Every task that reaches the warehouse or the lake retries with growing pauses: a
# PostgreSQL restart or an S3 hiccup in the middle of a backfill costs a retry, not the run.
RETRIES = {"retries": 3, "retry_delay": timedelta(seconds=20),
           "retry_exponential_backoff": 2.0, "max_retry_delay": timedelta(minutes=10)}
YEAR_XCOM = "{{ ti.xcom_pull(task_ids='check_bronze') }}"
# A month run builds only its month inside the year's partitions (macros/year_filter.sql);
# check_bronze pushes the month it resolved (a param or the run's data interval), none for a year.
MONTH_XCOM = "{{ ti.xcom_pull(task_ids='check_bronze', key='month') }}"


def _dbt_group(group_id: str, select: list[str], exclude: list[str]) -> DbtTaskGroup:
    return DbtTaskGroup(
        group_id=group_id,
        project_config=ProjectConfig(
            dbt_project_path=support.DBT_PROJECT_DIR,
            manifest_path=support.require_manifest(),
            install_dbt_deps=False,
        ),
        profile_config=support.profile_config(),
        # BUILDABLE: a model's `dbt build` also runs the tests whose every parent is that model
        # or one of its ancestors, so a test spanning two models (a reconciliation, a
        # relationship) runs in the build of the later one instead of in a task of its own
        # (~1 s of dbt start-up and scheduling each). The models declare the dependencies
        # this needs (`-- depends_on:`), and test_dag checks that no test is left out.
        execution_config=ExecutionConfig(execution_mode=ExecutionMode.LOCAL,
                                          invocation_mode=InvocationMode.DBT_RUNNER,
                                          test_indirect_selection=TestIndirectSelection.BUILDABLE),
        # BUILD: one `dbt build` task per model runs it and then its tests, so a failing test
        # still stops everything downstream, with about half the tasks of AFTER_EACH (each
        # dbt task costs ~1 s of start-up and scheduling; docs/airflow.md has the figures).
        # Unit tests check the models' SQL on fixed inputs: CI and `dbt build` run them; a
        # production run does not need them again (dbt's advice), and they cost ~0.4 s each.
        render_config=RenderConfig(load_method=LoadMode.DBT_MANIFEST, select=select,
                                   exclude=[*exclude, "resource_type:unit_test"],
                                   test_behavior=TestBehavior.BUILD,
                                   emit_datasets=False,
                                   should_detach_multiple_parents_tests=False),
        # --no-write-json: nothing reads a task's manifest.json/run_results.json (no OpenLineage,
        # no run-results XCom), and writing them costs ~0.18 s of each dbt task.
        # --log-level-file none: dbt's debug log file goes to the temporary project copy Cosmos
        # deletes after the task (the task log keeps dbt's console output), and writing it
        # cost ~0.7 s of a month's `dbt build`.
        # The period goes in the environment, not `vars`: a new `--vars` makes dbt re-parse the
        # whole project in every task (macros/year_filter.sql, build_period_value).
        operator_args={"env": {"LAKEHOUSE_BUILD_YEAR": YEAR_XCOM,
                               "LAKEHOUSE_BUILD_MONTH": MONTH_XCOM},
                       "install_deps": False, "dbt_cmd_flags": ["--no-write-json", "--log-level-file", "none"]},
    )


def pipeline(monthly: bool) -> None:
    """The tasks and their wiring, the same in both DAGs. `monthly` only changes how a run
    resolves its period (support.period_from_context) and which DAG's runs it waits for; a
    run with a month loads, builds, exports and scores that month, one without the year."""

    # Waits (by retrying) up to ~40 min for a run of the other DAG to end: see below.
    @task(retries=8)
    def check_bronze() -> int:
        from airflow.sdk.exceptions import AirflowFailException

        from lakehouse.errors import UserError
        from lakehouse.lake import LakeObjectMissing
        from loaders.load import require_bronze, require_bts_month

        context = get_current_context()
        try:
            year, month = support.period_from_context(context, monthly)
        except ValueError as exc:  # e.g. a `year` param without a `month`: no retry helps
            raise AirflowFailException(str(exc)) from None
        # Each DAG runs one run at a time, but a yearly and a monthly run may write the same
        # year (a yearly load replaces the months a month run is building): one of the two
        # pipelines at a time. A plain exception, so the task retries until the other ends.
        other = "etl_ml_pipeline" if monthly else "bts_monthly_pipeline"
        if context["ti"].get_dr_count(dag_id=other, states=["running"]):
            raise RuntimeError(f"{other} has a run in progress and both DAGs write the same "
                               "warehouse: this run waits for it (retrying)")
        support.apply_warehouse_env()
        try:
            if month is None:
                print(f"year {year}: bronze object {require_bronze(year)}")
            else:
                print(f"{year}-{month:02d}: bronze object {require_bts_month(year, month)}")
        except LakeObjectMissing as exc:
            # Fails without retries: a missing file does not appear by waiting (other
            # errors, such as a lake or API hiccup, are retried like everywhere else).
            raise AirflowFailException(support.missing_bronze_message(year, exc)) from None
        except UserError as exc:  # a BTS month not in the lake: says where to get it
            raise AirflowFailException(f"{year}-{month:02d}: {exc}") from None
        if month is not None:  # the dbt tasks' LAKEHOUSE_BUILD_MONTH (MONTH_XCOM)
            context["ti"].xcom_push(key="month", value=month)
        return year

    @task
    def load_staging(year: int) -> dict:
        from airflow.sdk.exceptions import AirflowFailException

        from lakehouse.errors import UserError
        from loaders.load import load_month, load_year

        context = get_current_context()
        _, month = support.period_from_context(context, monthly)
        support.apply_warehouse_env()
        if month is None:
            return load_year(year).as_dict()
        try:
            return load_month(year, month).as_dict()
        except UserError as exc:  # e.g. the year is loaded from a yearly file: no retry helps
            raise AirflowFailException(f"{year}-{month:02d}: {exc}") from None

    @task
    def export_lake(year: int) -> dict:
        from loaders.export import export_month, export_year

        context = get_current_context()
        _, month = support.period_from_context(context, monthly)
        support.apply_warehouse_env()
        return export_year(year) if month is None else export_month(year, month)

    @task(outlets=[ANOMALY_ASSET])
    def score_anomalies(year: int) -> dict:
        from ml.score import score_year

        context = get_current_context()
        _, month = support.period_from_context(context, monthly)
        support.apply_warehouse_env()
        return score_year(year, month=month)

    @task
    def cleanup() -> dict:
        context = get_current_context()
        try:
            year, month = support.period_from_context(context, monthly)
        except ValueError:  # a run whose period could not be resolved wrote nothing
            year, month = None, None
        return support.cleanup_run(context["run_id"], year, month=month)

    year = check_bronze()
    loaded = load_staging(year)
    transform = _dbt_group("dbt_transform", select=[], exclude=["tag:ml"])
    export = export_lake(year)
    score = score_anomalies(year)
    ml_models = _dbt_group("dbt_ml", select=["tag:ml"], exclude=[])
    # Cosmos' documented post-rendering customization: `tasks_map` maps each dbt node to its
    # task, so the build of the gold model (the model, then its tests) announces the table.
    gold = transform.tasks_map[f"model.{support.DBT_PROJECT_NAME}.agg_dep_delay_by_date"]
    gold.outlets = [*gold.outlets, GOLD_ASSET]
    loaded >> transform >> [export, score]
    score >> ml_models
    # A teardown runs whatever failed before it and does not decide the run's state.
    [export, score, ml_models] >> cleanup().as_teardown()


@dag(
    dag_id="etl_ml_pipeline",
    schedule=support.yearly_schedule(),
    start_date=datetime(2010, 1, 1, tzinfo=UTC),
    # Catch-up off, unpaused: see the module docstring. One run at a time, so a backfill's
    # years run oldest first and each is scored with the earlier years already in gold.
    catchup=False,
    is_paused_upon_creation=False,
    max_active_runs=1,
    render_template_as_native_obj=True,
    params={"year": Param(None, type=["null", "integer"], minimum=FIRST_YEAR, maximum=LAST_YEAR,
                          description="Year to process; empty = the year before the run date"),
            "month": Param(None, type=["null", "integer"], minimum=1, maximum=12,
                           description="A BTS month of the year to load (01_bronze/bts/Y/MM.csv); "
                                       "empty = the year's yearly file")},
    default_args={"owner": "lakehouse", **RETRIES},
    tags=["lakehouse", "dbt", "ml"],
    doc_md=__doc__,
)
def etl_ml_pipeline():
    pipeline(monthly=False)


@dag(
    dag_id="bts_monthly_pipeline",
    schedule=support.monthly_schedule(),
    start_date=support.first_bts_month(),
    # Catch-up on: every month from LAKEHOUSE_BTS_FIRST_MONTH to last month gets a run, oldest
    # first (one at a time). Paused on creation, so a fresh install with an empty lake does
    # not start that many runs that fail at check_bronze: unpause once the months are in the
    # lake (docs/airflow.md, "The monthly DAG").
    catchup=True,
    is_paused_upon_creation=True,
    max_active_runs=1,
    render_template_as_native_obj=True,
    params={"year": Param(None, type=["null", "integer"], minimum=FIRST_YEAR, maximum=LAST_YEAR,
                          description="With `month`: the BTS month to process instead of the "
                                      "run's data interval (empty = the interval's month)"),
            "month": Param(None, type=["null", "integer"], minimum=1, maximum=12,
                           description="With `year`: see above")},
    default_args={"owner": "lakehouse", **RETRIES},
    tags=["lakehouse", "dbt", "ml", "bts"],
    doc_md=MONTHLY_DOC,
)
def bts_monthly_pipeline():
    pipeline(monthly=True)


etl_ml_pipeline()
bts_monthly_pipeline()
