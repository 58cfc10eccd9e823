"""The dbt project against a real PostgreSQL: generate a year, load it, run the real `dbt build`,
and check gold against an independent computation on the same CSV (plain `csv` + Decimal)."""

from __future__ import annotations

import csv
import json
import math
import os
import re
import shutil
import subprocess
import sys
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

import pytest

from lakehouse.lake import bronze_key
from loaders.generate import generate_year
from loaders.load import load_year

REPO = Path(__file__).resolve().parents[1]
PROJECT = REPO / "dbt_project"
DBT = str(Path(sys.executable).parent / "dbt")
GOLD_COLUMNS = [
    "id", "origin", "fl_date", "year", "flights", "mean_dep_delay", "total_dep_delay",
    "scheduled_flights", "cancelled_flights", "cancel_rate", "diverted_flights",
    "p50_dep_delay", "p90_dep_delay", "delayed_15_flights", "share_delayed_15", "max_dep_delay",
]

# models/gold/anomalies/ (the ML engineer's) read ml.* tables that exist only after scoring; they
# are built with `--select tag:ml` after `python -m ml score` and tested with the ML part.
ML_MODELS = "tag:ml"

pytestmark = pytest.mark.slow


def make_dbt_dir(base: Path) -> Path:
    """A profiles dir holding the shipped profile as it is, plus private target/log paths so a
    test run never touches dbt_project/target (Cosmos renders from the manifest there)."""
    profiles = base / "dbt_profiles"
    profiles.mkdir()
    shutil.copy(REPO / "profiles.yml.example", profiles / "profiles.yml")
    return base


@pytest.fixture
def dbt_dir(tmp_path):
    return make_dbt_dir(tmp_path)


def dbt(dbt_dir: Path, *args: str, year: int | None = None, check: bool = True):
    cmd = [DBT, *args, "--project-dir", str(PROJECT), "--profiles-dir", str(dbt_dir / "dbt_profiles"),
           "--target-path", str(dbt_dir / "target"), "--log-path", str(dbt_dir / "logs")]
    if year is not None:
        cmd += ["--vars", f"{{year: {year}}}"]
    if args[0] == "build":
        cmd += ["--exclude", ML_MODELS]
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, env={**os.environ, "DO_NOT_TRACK": "1"}, timeout=900)
    if check and proc.returncode != 0:
        pytest.fail(f"dbt {' '.join(args)} failed:\n{proc.stdout[-6000:]}\n{proc.stderr[-2000:]}")
    return proc


def bronze_rows(lake_root: Path, year: int) -> list[list[str]]:
    with open(lake_root / bronze_key(year), newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh)
        next(reader)
        return list(reader)


def percentile_cont(sorted_values: list[float], p: float) -> float:
    """PostgreSQL's percentile_cont, step for step (float8 linear interpolation)."""
    pos = p * (len(sorted_values) - 1)
    lo, hi = sorted_values[math.floor(pos)], sorted_values[math.ceil(pos)]
    return lo + (hi - lo) * (pos - math.floor(pos))


def expected_gold(rows: list[list[str]]) -> dict[str, tuple]:
    """gold.agg_dep_delay_by_date computed from the CSV rows without SQL (clean rows only)."""
    seen = set()
    days: dict[tuple[str, str], list] = defaultdict(list)
    for fields in rows:
        key = tuple(fields)
        if key in seen:  # exact duplicate line: counted once
            continue
        seen.add(key)
        days[(fields[3], fields[0])].append(fields)
    out = {}
    for (origin, day), flights in days.items():
        delays = [Decimal(f[7]) for f in flights if float(f[15]) == 0.0 and f[7] != ""]
        cancelled = sum(1 for f in flights if float(f[15]) == 1.0)
        diverted = sum(1 for f in flights if float(f[17]) == 1.0)
        n = len(delays)
        total = sum(delays, Decimal(0))
        as_float = sorted(float(d) for d in delays)
        late = sum(1 for d in delays if d >= 15)
        out[origin + day.replace("-", "")] = (
            origin, day, int(day[:4]), n,
            float(total) / n if n else None, float(total),
            len(flights), cancelled, cancelled / len(flights), diverted,
            percentile_cont(as_float, 0.5) if n else None,
            percentile_cont(as_float, 0.9) if n else None,
            late, late / n if n else None,
            float(max(delays)) if delays else None,
        )
    return out


def gold_rows(conn, year: int) -> dict[str, tuple]:
    cols = ", ".join(GOLD_COLUMNS[1:])
    rows = conn.execute(
        f"select id, {cols} from gold.agg_dep_delay_by_date where year = %s", (year,)
    ).fetchall()
    return {r[0]: (r[1], r[2].isoformat(), *r[3:]) for r in rows}


def year_fingerprint(conn, year: int) -> tuple:
    """Row counts and an order-independent content hash of a year's silver and gold rows."""
    return conn.execute(
        """
        select
          (select count(*) from silver.flights where year = %(y)s),
          (select md5(string_agg(f::text, '|' order by line_no)) from silver.flights f where year = %(y)s),
          (select count(*) from silver.flights_rejected where year = %(y)s),
          (select md5(string_agg(g::text, '|' order by id)) from gold.agg_dep_delay_by_date g where year = %(y)s)
        """,
        {"y": year},
    ).fetchone()


def test_gold_equals_an_independent_computation_on_the_csv(pg_env, pg_conn, lake, dbt_dir):
    generate_year(2018, rows=20_000, seed=7)
    # The generator writes no exact duplicates; add two so deduplication is exercised.
    path = lake / bronze_key(2018)
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines + [lines[5], lines[5], lines[9]]))
    result = load_year(2018)
    assert result.rows_loaded == 20_003

    dbt(dbt_dir, "build", year=2018)

    rows = bronze_rows(lake, 2018)
    expected = expected_gold(rows)
    actual = gold_rows(pg_conn, 2018)
    assert len(actual) == len(expected) > 1000
    assert actual.keys() == expected.keys()
    mismatched = {k: (actual[k], expected[k]) for k in expected if actual[k] != expected[k]}
    assert not mismatched, f"{len(mismatched)} gold rows differ, e.g. {next(iter(mismatched.items()))}"
    # The contract columns are all there, with the promised types.
    types = dict(pg_conn.execute(
        "select column_name, data_type from information_schema.columns "
        "where table_schema = 'gold' and table_name = 'agg_dep_delay_by_date'").fetchall())
    assert [c for c in GOLD_COLUMNS if c not in types] == []
    assert types["fl_date"] == "date" and types["mean_dep_delay"] == "double precision"
    assert types["flights"] == "integer" and types["id"] == "text"
    # ... and its constraints, created by the first build (macros/adapters/create_table_as.sql
    # fills the contract's table from a parallel CREATE TEMPORARY TABLE AS).
    kinds = {r[0] for r in pg_conn.execute(
        "select contype from pg_constraint where conrelid = 'gold.agg_dep_delay_by_date'::regclass")}
    assert {"p", "c"} <= kinds, kinds
    not_null = {r[0] for r in pg_conn.execute(
        "select column_name from information_schema.columns where table_schema = 'gold' "
        "and table_name = 'agg_dep_delay_by_date' and is_nullable = 'NO'")}
    assert {"id", "origin", "fl_date", "year", "flights", "scheduled_flights"} <= not_null, not_null
    assert pg_conn.execute("select count(*) from pg_tables where tablename like "
                           "'%%contract_rows%%'").fetchone()[0] == 0  # the staging table is gone

    silver, dups = pg_conn.execute(
        "select count(*), sum(duplicates_removed) from silver.flights where year = 2018").fetchone()
    assert (silver, dups) == (20_000, 3)
    first_copy = pg_conn.execute(
        "select line_no, duplicates_removed from silver.flights where year = 2018 and line_no = 5"
    ).fetchone()
    assert first_copy == (5, 2)  # lines[0] is the header: data line 5 kept, 2 copies counted
    assert pg_conn.execute("select count(*) from silver.flights_rejected").fetchone()[0] == 0


def damage(path: Path) -> dict[int, str]:
    """Write bad values into known data lines; returns line_no -> expected reason fragment."""
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    header, data = lines[0], lines[1:]

    def edit(line_no: int, column: int, value: str) -> None:
        fields = data[line_no - 1].rstrip("\r\n").split(",")
        fields[column] = value
        data[line_no - 1] = ",".join(fields) + "\n"

    edit(3, 0, "2018-02-30")      # impossible date
    edit(4, 0, "2017-12-31")      # a date outside the load year
    edit(5, 7, "N/A")             # non-numeric departure delay
    edit(6, 15, "#VALUE!")        # non-numeric cancelled flag
    edit(7, 3, "")                # missing origin
    edit(8, 8, "#VALUE!")         # bad taxi_out: kept, value NULL, warning recorded
    path.write_text(header + "".join(data), encoding="utf-8")
    return {
        3: "fl_date 2018-02-30 is not a real YYYY-MM-DD date",
        4: "fl_date 2017-12-31 is outside the load year 2018",
        5: "dep_delay N/A is not a number",
        6: "cancelled #VALUE! is not 0 or 1",
        7: "origin (missing) is not a 3-character airport code",
    }


def test_damaged_rows_are_rejected_with_reasons_and_nothing_is_lost(pg_env, pg_conn, lake, dbt_dir):
    generate_year(2018, rows=5_000, seed=3, disruptions=False)
    expected = damage(lake / bronze_key(2018))
    load_year(2018)

    dbt(dbt_dir, "build", year=2018)

    rejected = dict(pg_conn.execute(
        "select line_no, reject_reason from silver.flights_rejected where year = 2018").fetchall())
    assert rejected.keys() == expected.keys()
    for line_no, fragment in expected.items():
        assert fragment in rejected[line_no], (line_no, rejected[line_no])
    raw = pg_conn.execute(
        "select raw_fields from silver.flights_rejected where line_no = 5").fetchone()[0]
    assert raw.split(",")[7] == "N/A"
    assert pg_conn.execute(
        "select taxi_out, cast_warnings from silver.flights where line_no = 8").fetchone() == (
        None, "taxi_out")
    silver = pg_conn.execute("select count(*) from silver.flights").fetchone()[0]
    assert silver + len(rejected) == 5_000
    scheduled = pg_conn.execute(
        "select sum(scheduled_flights) from gold.agg_dep_delay_by_date").fetchone()[0]
    assert scheduled == silver


# Texts PostgreSQL's input functions read (so the plain path may see them) next to ones the
# policy refuses: both paths of stg_flights must type every one of them the same way.
TRICKY_NUMBERS = ["5", "-5.0", " 7 ", "+3", "1e2", "1.5E1", "-2.5e-1", ".5", "5.", "-0", "0007",
                  "NaN", "Infinity", "-inf", "2400.0", "2400", "1060", "0552", "12.5", "2401",
                  "-5", "99999999999", "123456789012345678901234567890123"]
TRICKY_DATES = ["2018-01-05", "2018-1-5", "20180105", "2018-01-05 ", "Jan 5 2018",
                "2018-02-28", "2016-02-29", "5/1/2018"]
NUMERIC_FIELDS = ["op_carrier_fl_num", "crs_dep_time", "dep_time", "dep_delay", "taxi_out",
                  "wheels_off", "wheels_on", "taxi_in", "crs_arr_time", "arr_time", "arr_delay",
                  "crs_elapsed_time", "actual_elapsed_time", "air_time", "distance",
                  "carrier_delay", "weather_delay", "nas_delay", "security_delay",
                  "late_aircraft_delay"]


def test_plain_and_guarded_casts_type_every_value_the_same(pg_env, pg_conn, lake, dbt_dir):
    generate_year(2018, rows=50, seed=5)
    load_id = load_year(2018).load_id
    dbt(dbt_dir, "run", "--select", "stg_flights", year=2018)
    cols = ["year", "load_id", "line_no", "fl_date", "op_carrier", "origin", "dest",
            "cancelled", "diverted", *NUMERIC_FIELDS]
    rows = [(2018, load_id, 1000 + i, "2018-01-05", "AA", "JFK", "LAX", "0.0", "0.0",
             *[value] * len(NUMERIC_FIELDS)) for i, value in enumerate(TRICKY_NUMBERS)]
    rows += [(2018, load_id, 2000 + i, day, "AA", "JFK", "LAX", "0.0", "0.0",
              *["1.0"] * len(NUMERIC_FIELDS)) for i, day in enumerate(TRICKY_DATES)]
    with pg_conn.cursor().copy(
            f"copy staging.flights ({', '.join(cols)}) from stdin") as copy:
        for row in rows:
            copy.write_row(row)

    def typed(plain: bool) -> list[tuple]:
        with pg_conn.transaction():
            pg_conn.execute("set local datestyle = 'ISO, MDY'")
            pg_conn.execute("select set_config('lakehouse.plain_casts', %s, true)",
                            ("on" if plain else "off",))
            return pg_conn.execute(
                "select * from silver.stg_flights where line_no >= 1000 order by line_no").fetchall()

    plain, guarded = typed(True), typed(False)
    assert len(plain) == len(rows)
    assert plain == guarded
    by_value = dict(zip(TRICKY_NUMBERS, plain))
    names = [d.name for d in pg_conn.execute("select * from silver.stg_flights limit 0").description]
    delay = names.index("dep_delay")
    assert by_value["1e2"][delay] == 100 and by_value[" 7 "][delay] == 7
    assert by_value["NaN"][delay] is None and by_value["-inf"][delay] is None
    assert by_value["123456789012345678901234567890123"][delay] is None
    dep_time = names.index("dep_time")
    assert by_value["2400.0"][dep_time] == 2400 and by_value["1060"][dep_time] is None
    dates = [r[names.index("fl_date")] for r in plain[len(TRICKY_NUMBERS):]]
    assert [d and d.isoformat() for d in dates] == [
        "2018-01-05", None, None, None, None, "2018-02-28", "2016-02-29", None]


def test_building_one_year_leaves_other_years_untouched_and_rebuilds_are_idempotent(
        pg_env, pg_conn, lake, dbt_dir):
    for year, rows in ((2017, 4_000), (2018, 3_000)):
        generate_year(year, rows=rows, seed=year)
        load_year(year)

    dbt(dbt_dir, "build", year=2017)
    before_2017 = year_fingerprint(pg_conn, 2017)
    assert before_2017[0] == 4_000
    assert year_fingerprint(pg_conn, 2018)[0] == 0  # not built yet

    dbt(dbt_dir, "build", year=2018)
    after_2018 = year_fingerprint(pg_conn, 2018)
    assert after_2018[0] == 3_000
    assert year_fingerprint(pg_conn, 2017) == before_2017  # year A untouched by building B

    dbt(dbt_dir, "build", year=2018)
    assert year_fingerprint(pg_conn, 2018) == after_2018  # idempotent
    assert year_fingerprint(pg_conn, 2017) == before_2017

    # Without the var every loaded year is rebuilt, to the same result.
    dbt(dbt_dir, "build")
    assert year_fingerprint(pg_conn, 2017) == before_2017
    assert year_fingerprint(pg_conn, 2018) == after_2018
    years = [r[0] for r in pg_conn.execute(
        "select distinct year from gold.agg_dep_delay_by_date order by 1").fetchall()]
    assert years == [2017, 2018]

    # The uniqueness test really fails on silver when a line appears twice.
    pg_conn.execute("insert into silver.flights select * from silver.flights "
                    "where year = 2018 and line_no = 7")
    proc = dbt(dbt_dir, "test", "--select", "flights,test_name:unique_integer_key", year=2018,
               check=False)
    assert proc.returncode != 0
    assert re.search(r"FAIL 1 unique_integer_key_flights_line_no__year", proc.stdout), proc.stdout[-3000:]


def test_models_land_in_silver_and_gold_and_a_bad_year_var_is_a_clear_error(
        pg_env, pg_conn, lake, dbt_dir):
    generate_year(2018, rows=500, seed=1)
    load_year(2018)
    dbt(dbt_dir, "build", year=2018)
    relations = set(pg_conn.execute(
        "select table_schema || '.' || table_name from information_schema.tables "
        "where table_schema not in ('pg_catalog', 'information_schema')").fetchall())
    relations = {r[0] for r in relations}
    assert {"silver.stg_flights", "silver.flights", "silver.flights_rejected",
            "gold.agg_dep_delay_by_date", "gold.airports"} <= relations
    assert not {r for r in relations if r.split(".")[0] not in ("silver", "gold", "staging")}
    assert pg_conn.execute("select count(*) from gold.airports where iata = 'JFK'").fetchone()[0] == 1

    proc = dbt(dbt_dir, "build", "--select", "stg_flights", year="'18x'", check=False)
    assert proc.returncode != 0
    assert "must be a year 1987-2100 such as 2018, got '18x'" in proc.stdout


def show_inline(dbt_dir: Path, sql_text: str) -> list[dict]:
    """Rows of `dbt show --inline` (the project's macros available), as dicts."""
    proc = dbt(dbt_dir, "show", "--inline", sql_text, "--limit", "100", "--output", "json",
               "--log-format", "json")
    for line in proc.stdout.splitlines():
        data = json.loads(line).get("data", {})
        if "preview" in data:
            return json.loads(data["preview"])
    pytest.fail(f"no preview in dbt show output:\n{proc.stdout[-3000:]}")


def test_unique_integer_key_reports_exactly_the_repeated_keys(pg_env, dbt_dir):
    # Keys on both sides of zero and of 64-key block edges, where a wrong shift or mask would
    # make two distinct keys share a bit (or one key two bits).
    keys = "(1, -65), (1, -64), (1, -1), (1, 0), (1, 63), (1, 64), (1, 127), (2, -1), (2, 64)"
    test = "test_unique_integer_key(model='(values {}) as v(y, k)', key='k', partition_by=['y'])"
    assert show_inline(dbt_dir, "{{ " + test.format(keys) + " }}") == []
    repeated = keys + ", (1, -1), (2, 64), (2, 64), (1, 63)"
    rows = show_inline(dbt_dir, "{{ " + test.format(repeated) + " }}")
    assert sorted((r["y"], r["k"], r["occurrences"]) for r in rows) == [
        (1, -1, 2), (1, 63, 2), (2, 64, 3)]
    # Without partition columns, the same key in two partitions is a repeat.
    plain = "{{ test_unique_integer_key(model='(values (-1), (7), (-1)) as v(k)', key='k') }}"
    assert [(r["k"], r["occurrences"]) for r in show_inline(dbt_dir, plain)] == [(-1, 2)]


def test_dbt_parse_needs_no_database_and_tags_models_by_layer(dbt_dir, monkeypatch):
    import json

    # Nothing listens on port 9: parse must not try to connect.
    monkeypatch.setenv("PGHOST", "127.0.0.1")
    monkeypatch.setenv("PGPORT", "9")
    dbt(dbt_dir, "parse")
    manifest = json.loads((dbt_dir / "target" / "manifest.json").read_text())
    models = {n["name"]: n for n in manifest["nodes"].values() if n["resource_type"] == "model"}
    assert "staging" in models["stg_flights"]["tags"]
    assert "silver" in models["flights"]["tags"] and models["flights"]["schema"] == "silver"
    gold = models["agg_dep_delay_by_date"]
    assert "gold" in gold["tags"] and gold["schema"] == "gold"
    assert gold["config"]["contract"]["enforced"] is True
    for name in ("daily_delay_anomalies", "anomaly_carrier_share", "airport_year_anomalies",
                 "daily_detector_flags"):
        # models/gold/anomalies/: gold tables, built by the DAG's dbt_ml group after scoring
        assert models[name]["schema"] == "gold" and {"gold", "ml"} <= set(models[name]["tags"])
    assert [c for c, spec in gold["columns"].items() if not spec.get("description")] == []


def test_the_detector_rows_follow_the_registry(pg_env, pg_conn, lake, dbt_dir):
    """gold.daily_detector_flags: one row per scored airport-day and registered detector,
    named by ml.detectors; a map key without its ml.detectors row fails dbt's tests."""
    from ml.detectors import DETECTORS
    from ml.score import score_year

    generate_year(2018, rows=3000, seed=1)
    load_year(2018)
    dbt(dbt_dir, "build", year=2018)
    score_year(2018)
    dbt(dbt_dir, "run", "--select", ML_MODELS, year=2018)
    dbt(dbt_dir, "test", "--select", ML_MODELS, year=2018)
    days = pg_conn.execute("select count(*) from ml.dep_delay_anomalies where year = 2018"
                           ).fetchone()[0]
    assert days > 300
    counts = pg_conn.execute(
        "select count(*), count(distinct (id, detector)), count(distinct id)"
        " from gold.daily_detector_flags where year = 2018").fetchone()
    assert counts == (days * len(DETECTORS), days * len(DETECTORS), days)
    labels = dict(pg_conn.execute(
        "select distinct detector, label from gold.daily_detector_flags").fetchall())
    assert labels == {name: d.label for name, d in DETECTORS.items()}
    members = {r[0]: r[1:] for r in pg_conn.execute(
        "select detector, bool_and(is_member), bool_or(strength is not null)"
        " from gold.daily_detector_flags where year = 2018 group by detector").fetchall()}
    assert members == {name: (d.member, d.member) for name, d in DETECTORS.items()}
    # every anomalous day has a member flagging it in the rows the dashboard reads
    assert pg_conn.execute(
        "select count(*) from ml.dep_delay_anomalies a where a.year = 2018 and a.is_anomaly"
        " and not exists (select 1 from gold.daily_detector_flags f where f.id = a.id"
        " and f.flagged and f.is_member)").fetchone()[0] == 0

    pg_conn.execute("delete from ml.detectors where name = 'arima'")
    proc = dbt(dbt_dir, "test", "--select", "daily_detector_flags", year=2018, check=False)
    assert proc.returncode != 0 and "relationships_daily_detector_flags_detector" in proc.stdout
