"""The sample-data generator: exact bronze format, determinism, realism, labels, CLI, S3."""

from __future__ import annotations

import csv
import datetime as dt
import functools
import hashlib
import io
import json
import math
import os
import re
import statistics
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from lakehouse.errors import UserError
from lakehouse.lake import Lake, bronze_key, labels_key, provenance_key
from loaders.generate import HEADER, generate_year

REPO = Path(__file__).resolve().parents[1]
COLUMNS = HEADER.split(",")
INT_COLUMNS = {"OP_CARRIER_FL_NUM", "CRS_DEP_TIME", "CRS_ARR_TIME"}
TEXT_COLUMNS = {"FL_DATE", "OP_CARRIER", "ORIGIN", "DEST", "CANCELLATION_CODE", "Unnamed: 27"}
FLOAT_COLUMNS = [c for c in COLUMNS if c not in INT_COLUMNS | TEXT_COLUMNS]
INT_RE = re.compile(r"^-?\d+$")
FLOAT_RE = re.compile(r"^-?\d+\.0$")
DEPARTURE_FIELDS = ["DEP_TIME", "DEP_DELAY", "TAXI_OUT", "WHEELS_OFF"]
ARRIVAL_FIELDS = ["WHEELS_ON", "TAXI_IN", "ARR_TIME", "ARR_DELAY", "ACTUAL_ELAPSED_TIME",
                  "AIR_TIME"]
CAUSES = ["CARRIER_DELAY", "WEATHER_DELAY", "NAS_DELAY", "SECURITY_DELAY", "LATE_AIRCRAFT_DELAY"]


def minutes(hhmm: str) -> int:
    v = int(float(hhmm))
    return (v // 100) * 60 + v % 100


def same_clock(a_minutes: int, hhmm: str) -> bool:
    return a_minutes % 1440 == minutes(hhmm) % 1440


def read_rows(lake: Lake, year: int) -> tuple[bytes, list[dict]]:
    with lake.open_read(bronze_key(year)) as fh:
        raw = fh.read()
    reader = csv.reader(io.StringIO(raw.decode("utf-8"), newline=""))
    header = next(reader)
    assert header == COLUMNS
    return raw, [dict(zip(header, fields, strict=True)) for fields in reader]


@pytest.fixture(scope="module")
def year_200k(tmp_path_factory):
    lake = Lake(str(tmp_path_factory.mktemp("lake200k")))
    summary = generate_year(2018, rows=200_000, seed=7, lake=lake)
    raw, rows = read_rows(lake, 2018)
    with lake.open_read(labels_key(2018)) as fh:
        labels = json.load(fh)
    return summary, raw, rows, labels


def test_exact_bronze_format(lake):
    summary = generate_year(2016, rows=30_000, seed=3)
    raw, rows = read_rows(Lake.from_env(), 2016)
    assert summary["rows"] == len(rows) == 30_000
    assert summary["bytes"] == len(raw)
    assert not raw.startswith(b"\xef\xbb\xbf") and b"\r" not in raw
    lines = raw.split(b"\n")
    assert lines[0].decode() == HEADER and lines[-1] == b""
    assert all(line.endswith(b",") and line.count(b",") == 27 for line in lines[1:-1])

    dates = []
    for r in rows:
        dates.append(dt.date.fromisoformat(r["FL_DATE"]))
        assert r["Unnamed: 27"] == ""
        assert re.fullmatch(r"[A-Z0-9]{2}", r["OP_CARRIER"])
        assert re.fullmatch(r"[A-Z]{3}", r["ORIGIN"]) and r["ORIGIN"] != r["DEST"]
        for c in INT_COLUMNS:
            assert INT_RE.match(r[c]), (c, r[c])
        for c in FLOAT_COLUMNS:
            assert r[c] == "" or FLOAT_RE.match(r[c]), (c, r[c])
        assert 1 <= int(r["CRS_DEP_TIME"]) <= 2359 and 1 <= int(r["CRS_ARR_TIME"]) <= 2400
        assert r["CANCELLED"] in ("0.0", "1.0") and r["DIVERTED"] in ("0.0", "1.0")
        assert r["CRS_ELAPSED_TIME"] and r["DISTANCE"]
    assert {d.year for d in dates} == {2016} and len(set(dates)) == 366  # leap year
    assert dates != sorted(dates), "rows must not come in date order"


def test_times_and_fields_are_consistent(year_200k):
    _, _, rows, _ = year_200k
    wrapped = midnight = cancelled = diverted = with_causes = 0
    for r in rows:
        if r["CANCELLED"] == "1.0":
            cancelled += 1
            assert r["CANCELLATION_CODE"] in "ABCD" and r["CANCELLATION_CODE"]
            assert all(r[c] == "" for c in DEPARTURE_FIELDS + ARRIVAL_FIELDS + CAUSES)
            continue
        assert r["CANCELLATION_CODE"] == ""
        dep_delay = int(float(r["DEP_DELAY"]))
        crs_dep = minutes(r["CRS_DEP_TIME"])
        assert same_clock(crs_dep + dep_delay, r["DEP_TIME"])
        assert same_clock(minutes(r["DEP_TIME"]) + int(float(r["TAXI_OUT"])), r["WHEELS_OFF"])
        wrapped += crs_dep + dep_delay >= 1440
        midnight += r["DEP_TIME"] == "2400.0"
        if r["DIVERTED"] == "1.0":
            diverted += 1
            assert all(r[c] == "" for c in ARRIVAL_FIELDS + CAUSES)
            continue
        elapsed = int(float(r["ACTUAL_ELAPSED_TIME"]))
        assert elapsed == sum(int(float(r[c])) for c in ("TAXI_OUT", "AIR_TIME", "TAXI_IN"))
        arr_delay = int(float(r["ARR_DELAY"]))
        assert arr_delay == dep_delay + elapsed - int(float(r["CRS_ELAPSED_TIME"]))
        assert same_clock(minutes(r["CRS_ARR_TIME"]) + arr_delay, r["ARR_TIME"])
        assert same_clock(minutes(r["WHEELS_ON"]) + int(float(r["TAXI_IN"])), r["ARR_TIME"])
        if arr_delay >= 15:
            with_causes += 1
            parts = [int(float(r[c])) for c in CAUSES]
            assert min(parts) >= 0 and sum(parts) == arr_delay
        else:
            assert all(r[c] == "" for c in CAUSES)
    assert wrapped > 0 and midnight > 0, "no departure crossed midnight: the wrap is untested"
    assert cancelled > 0 and diverted > 0 and with_causes > 0


def test_realistic_statistics(year_200k):
    summary, _, rows, _ = year_200k
    n = len(rows)
    origins = Counter(r["ORIGIN"] for r in rows)
    assert len(origins) >= 300 and summary["airports"] == len(origins)
    top10 = sum(c for _, c in origins.most_common(10)) / n
    assert 0.22 <= top10 <= 0.40, top10
    assert {"ATL", "ORD", "DFW", "DEN"} <= {a for a, _ in origins.most_common(8)}
    assert 10 <= len({r["OP_CARRIER"] for r in rows}) <= 20

    cancel_rate = sum(r["CANCELLED"] == "1.0" for r in rows) / n
    assert 0.01 <= cancel_rate <= 0.02, cancel_rate
    codes = Counter(r["CANCELLATION_CODE"] for r in rows if r["CANCELLED"] == "1.0")
    assert codes.most_common(1)[0][0] == "B"
    divert_rate = sum(r["DIVERTED"] == "1.0" for r in rows) / n
    assert 0.001 <= divert_rate <= 0.004, divert_rate

    delays = [int(float(r["DEP_DELAY"])) for r in rows if r["DEP_DELAY"]]
    assert statistics.median(delays) <= 0
    assert 6 <= statistics.fmean(delays) <= 16
    late15 = sum(d > 15 for d in delays) / len(delays)
    assert 0.12 <= late15 <= 0.28, late15
    assert max(delays) >= 300  # the long right tail

    per_weekday = Counter(dt.date.fromisoformat(r["FL_DATE"]).weekday() for r in rows)
    assert per_weekday[5] < 0.92 * min(per_weekday[d] for d in range(5))
    per_day = Counter(r["FL_DATE"] for r in rows)
    thanksgiving, christmas = "2018-11-22", "2018-12-25"
    ordinary = statistics.median(per_day.values())
    assert per_day[thanksgiving] < 0.85 * ordinary and per_day[christmas] < 0.85 * ordinary


@functools.lru_cache(maxsize=1)
def known_airports() -> dict:
    import airportsdata

    return airportsdata.load("IATA")


def miles_between(a: str, b: str) -> float:
    known = known_airports()
    p1, p2 = math.radians(known[a]["lat"]), math.radians(known[b]["lat"])
    dl = math.radians(known[b]["lon"] - known[a]["lon"])
    h = math.sin((p2 - p1) / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 3958.8 * math.asin(math.sqrt(h))


def daily_stats(rows):
    days = defaultdict(lambda: [0, 0, []])
    for r in rows:
        d = days[(r["ORIGIN"], r["FL_DATE"])]
        d[0] += 1
        if r["CANCELLED"] == "1.0":
            d[1] += 1
        else:
            d[2].append(int(float(r["DEP_DELAY"])))
    return days


def test_labels_match_the_data(year_200k):
    summary, _, rows, labels = year_200k
    assert labels["year"] == 2018 and labels["seed"] == 7 and labels["rows"] == 200_000
    assert 25 <= len(labels["disruptions"]) <= 40
    assert summary["disruptions"] == len(labels["disruptions"])
    months = {e["fl_date"][:7] for e in labels["disruptions"]}
    assert len(months) == 12
    assert any(e["fl_date"] <= "2018-01-14" for e in labels["disruptions"])
    ids = {e["event_id"] for e in labels["disruptions"]}
    assert {d["event_id"] for d in labels["airport_days"]} == ids
    storms = [e for e in labels["disruptions"] if e["kind"] == "regional_storm"]
    assert storms and all(e["origins"][0] == e["center"] and 3 <= len(e["origins"]) <= 8
                          for e in storms)
    assert max(miles_between(e["center"], o) for e in storms for o in e["origins"]) <= 800
    assert len({(d["origin"], d["fl_date"]) for d in labels["airport_days"]}) == len(
        labels["airport_days"]), "an airport-day belongs to one event"

    days = daily_stats(rows)
    normal_cancel = sum(d[1] for d in days.values()) / sum(d[0] for d in days.values())
    all_delays = [x for d in days.values() for x in d[2]]
    normal_mean = statistics.fmean(all_delays)
    by_kind = defaultdict(list)
    for label in labels["airport_days"]:
        flights, cancelled, delays = days.get((label["origin"], label["fl_date"]), (0, 0, []))
        by_kind[label["kind"]].append((flights, cancelled, delays))
    assert set(by_kind) == {"delay_spike", "regional_storm", "cancellation_wave"}

    waves = [(f, c) for f, c, _ in by_kind["cancellation_wave"] if f >= 5]
    assert waves and sum(c for _, c in waves) / sum(f for f, _ in waves) >= 0.4
    spikes = [x for f, _, delays in by_kind["delay_spike"] if f >= 5 for x in delays]
    assert spikes and statistics.fmean(spikes) >= normal_mean + 30
    storms = by_kind["regional_storm"]
    storm_delays = [x for _, _, delays in storms for x in delays]
    assert statistics.fmean(storm_delays) >= normal_mean + 10
    assert sum(c for _, c, _ in storms) / sum(f for f, _, _ in storms) >= 3 * normal_cancel


def test_ordinary_days_do_not_look_like_disruptions(year_200k):
    _, _, rows, labels = year_200k
    labelled = {(d["origin"], d["fl_date"]) for d in labels["airport_days"]}
    days = daily_stats(rows)
    busy = {k: v for k, v in days.items() if v[0] >= 15 and k not in labelled}
    assert len(busy) > 1000
    extreme = [k for k, (f, c, delays) in busy.items()
               if c / f >= 0.5 or (delays and statistics.fmean(delays) >= 90)]
    assert len(extreme) <= 0.002 * len(busy), extreme[:10]


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    def digest(seed: int, name: str) -> str:
        lake = Lake(str(tmp_path / name))
        generate_year(2017, rows=20_000, seed=seed, lake=lake)
        with lake.open_read(bronze_key(2017)) as fh, lake.open_read(labels_key(2017)) as lh:
            return hashlib.sha256(fh.read() + lh.read()).hexdigest()

    assert digest(11, "a") == digest(11, "b")
    assert digest(11, "a") != digest(12, "c")


def test_labels_do_not_depend_on_rows(tmp_path):
    a, b = Lake(str(tmp_path / "a")), Lake(str(tmp_path / "b"))
    generate_year(2017, rows=5_000, seed=5, lake=a)
    generate_year(2017, rows=50_000, seed=5, lake=b)
    with a.open_read(labels_key(2017)) as fa, b.open_read(labels_key(2017)) as fb:
        la, lb = json.load(fa), json.load(fb)
    assert la["disruptions"] == lb["disruptions"] and la["rows"] != lb["rows"]


def test_no_disruptions_gives_empty_labels(lake):
    summary = generate_year(2015, rows=10_000, seed=1, disruptions=False)
    assert summary["disruptions"] == 0
    labels = json.loads((lake / labels_key(2015)).read_text())
    assert labels["disruptions"] == [] and labels["airport_days"] == []
    assert (lake / bronze_key(2015)).stat().st_size == summary["bytes"]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "loaders", "generate", *args], check=False,
                          cwd=REPO,
                          env=os.environ.copy(), capture_output=True, text=True, timeout=300)


def run_in_process(args: list[str]) -> int:
    """The CLI's own entry point without a new interpreter (the error paths are cheap)."""
    from lakehouse.cli import run_cli as run_main
    from loaders.__main__ import main

    return run_main(main, ["generate", *args])


def test_cli_writes_year_and_prints_json(lake):
    proc = run_cli("--year", "2014", "--rows", "5000", "--seed", "9", "--json")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["rows"] == 5000 and summary["year"] == 2014
    assert summary["uri"] == str(lake / bronze_key(2014))
    assert (lake / bronze_key(2014)).read_text().count("\n") == 5001
    assert json.loads((lake / labels_key(2014)).read_text())["seed"] == 9

    plain = run_cli("--year", "2014", "--rows", "1000", "--no-disruptions")
    assert plain.returncode == 0 and "1,000 rows" in plain.stdout and "0 disruptions" in plain.stdout


@pytest.mark.parametrize("args, expected", [
    (["--year", "2014", "--rows", "0"], "--rows must be at least 1"),
    (["--year", "1492"], "--year must be between"),
    (["--year", "2014", "--seed", "-1"], "--seed must be a non-negative"),
    (["--year", "2014", "--airports", "3"], "--airports must be between 10 and"),
])
def test_cli_rejects_bad_arguments_in_one_line(lake, capsys, args, expected):
    assert run_in_process(args) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("error: ") and expected in err
    assert not (lake / "01_bronze").exists()


def test_demo_shape_gives_the_busiest_airports_real_sized_traffic(tmp_path):
    """`--airports N`: the N busiest airports fly only to each other, keep their ranking, and a
    demo-sized year gives the biggest hub hundreds of departures a day; the disruptions hit
    those airports."""
    lake = Lake(str(tmp_path))
    summary = generate_year(2018, rows=300_000, seed=7, lake=lake, airports=12)
    _, rows = read_rows(lake, 2018)
    origins = Counter(r["ORIGIN"] for r in rows)
    assert summary["airports"] == len(origins) == 12
    assert {r["DEST"] for r in rows} <= set(origins)
    assert origins.most_common(1)[0][0] == "ATL"
    per_day = Counter((r["ORIGIN"], r["FL_DATE"]) for r in rows)
    atl_days = sorted(n for (o, _), n in per_day.items() if o == "ATL")
    assert statistics.median(atl_days) >= 100
    assert min(per_day.values()) >= 20  # no airport-day of a handful of flights
    with lake.open_read(labels_key(2018)) as fh:
        labels = json.load(fh)
    assert labels["airport_days"] and {d["origin"] for d in labels["airport_days"]} <= set(origins)


def test_writes_to_s3(s3_lake):
    import boto3

    summary = generate_year(2013, rows=8_000, seed=4)
    bucket = s3_lake[len("s3://"):].split("/")[0]
    assert summary["uri"] == f"{s3_lake}/01_bronze/2013.csv"
    s3 = boto3.client("s3")
    body = s3.get_object(Bucket=bucket, Key="lake/01_bronze/2013.csv")["Body"].read()
    assert body.startswith(HEADER.encode() + b"\n") and body.count(b"\n") == 8_001
    assert len(body) == summary["bytes"]
    labels = json.loads(s3.get_object(Bucket=bucket, Key="lake/00_labels/2013.json")["Body"].read())
    assert labels["rows"] == 8_000 and len(labels["disruptions"]) == summary["disruptions"]


def test_unwritable_s3_lake_is_a_one_line_error(s3_lake, monkeypatch, capsys):
    monkeypatch.setenv("LAKE_URL", "s3://no-such-bucket-h1/lake")
    assert run_in_process(["--year", "2013", "--rows", "500"]) == 2
    line = capsys.readouterr().err.strip()
    assert "\n" not in line and "s3://no-such-bucket-h1/lake/01_bronze/2013.csv" in line
    assert "LAKE_URL" in line


def test_routes_and_carriers_are_plausible(year_200k):
    import airportsdata

    _, _, rows, _ = year_200k
    known = airportsdata.load("IATA")
    state = {code: known[code]["subd"] for r in rows for code in (r["ORIGIN"], r["DEST"])}
    assert all(known[c]["country"] in ("US", "PR", "VI", "GU", "MP") for c in state)

    distance: dict[tuple[str, str], set[str]] = defaultdict(set)
    for r in rows:
        distance[(r["ORIGIN"], r["DEST"])].add(r["DISTANCE"])
    assert all(len(v) == 1 for v in distance.values()), "a route has one distance"
    assert all(distance[(b, a)] == v for (a, b), v in distance.items() if (b, a) in distance)
    assert abs(float(distance[("JFK", "LAX")].pop()) - 2475) < 25

    # Small Alaskan fields only reach Anchorage & co., never the lower 48 directly.
    bush = [r for r in rows if r["ORIGIN"] in ("BET", "OME", "OTZ", "BRW", "DLG", "AKN")]
    assert bush and all(state[r["DEST"]] == "Alaska" for r in bush)
    hnl = Counter(r["OP_CARRIER"] for r in rows if r["ORIGIN"] == "HNL")
    assert hnl.most_common(1)[0][0] == "HA"
    atl = Counter(r["OP_CARRIER"] for r in rows if r["ORIGIN"] == "ATL")
    assert atl.most_common(1)[0][0] == "DL"
    # Hawaiian flies from Hawaii and a few West-coast gateways, nowhere else.
    ha_origins = {r["ORIGIN"] for r in rows if r["OP_CARRIER"] == "HA"}
    assert ha_origins and all(state[o] in ("Hawaii", "California", "Washington", "Oregon",
                                           "Nevada", "Arizona", "New York") for o in ha_origins)


def test_no_duplicate_lines_or_flight_numbers(year_200k):
    _, raw, rows, _ = year_200k
    lines = raw.split(b"\n")[1:-1]
    assert len(set(lines)) == len(lines), "silver would drop exact duplicates"
    flights = {(r["FL_DATE"], r["OP_CARRIER"], r["OP_CARRIER_FL_NUM"], r["ORIGIN"]) for r in rows}
    assert len(flights) == len(rows)


# --- demo data never touches real data ------------------------------------------------------

def _record(lake_root: Path, year: int) -> dict:
    return json.loads((lake_root / provenance_key(year)).read_text())


def test_generated_year_is_recorded_and_may_be_regenerated(lake):
    summary = generate_year(2012, rows=500, seed=1)
    data = (lake / bronze_key(2012)).read_bytes()
    rec = _record(lake, 2012)
    assert rec["origin"] == "generated" and rec["seed"] == 1 and rec["rows"] == 500
    assert rec["bytes"] == summary["bytes"] == len(data)
    assert rec["sha256"] == hashlib.sha256(data).hexdigest()
    # A copied lake has new mtimes but the same bytes: still the generator's own year.
    os.utime(lake / bronze_key(2012), ns=(1, 1))
    generate_year(2012, rows=700, seed=2)
    assert _record(lake, 2012)["rows"] == 700


def test_refuses_to_overwrite_a_year_it_did_not_write(lake, tmp_path, capsys):
    from loaders.ingest import ingest

    real = lake / bronze_key(2012)
    real.parent.mkdir(parents=True)
    real.write_bytes(b"uploaded by hand\n")
    assert run_in_process(["--year", "2012", "--rows", "500"]) == 2
    line = capsys.readouterr().err.strip()
    assert "\n" not in line and line.startswith(f"error: {real} was not written by the generator")
    assert "looks like real data" in line and "--year" in line and "LAKE_URL" in line
    assert real.read_bytes() == b"uploaded by hand\n"

    # A generated year overwritten by something else is no longer the generator's.
    generate_year(2013, rows=500, seed=1)
    (lake / bronze_key(2013)).write_bytes(b"someone else's file\n")
    with pytest.raises(UserError, match="was not written by the generator"):
        generate_year(2013, rows=500, seed=1)

    # An ingested year (here a generated file from elsewhere, ingested as the user's own).
    elsewhere = Lake(str(tmp_path / "elsewhere"))
    generate_year(2014, rows=500, seed=3, lake=elsewhere)
    ingest(tmp_path / "elsewhere" / bronze_key(2014))
    with pytest.raises(UserError, match=r"was not written by the generator \(ingested real data\)"):
        generate_year(2014, rows=500, seed=3)


def test_demo_year_leaves_real_years_alone(lake, tmp_path):
    from loaders.ingest import ingest

    def demo_year(year: int) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "loaders", "demo-year", "--year", str(year)],
                              cwd=REPO, env=os.environ.copy(), capture_output=True, text=True,
                              timeout=120, check=True)

    assert demo_year(2018).stdout.strip() == "2018"  # an empty lake: the year asked for
    elsewhere = Lake(str(tmp_path / "elsewhere"))
    for year in (2017, 2018):
        generate_year(year, rows=300, seed=year, lake=elsewhere)
    ingest(tmp_path / "elsewhere" / "01_bronze")
    generate_year(2019, rows=300, seed=1)
    proc = demo_year(2017)
    assert proc.stdout.strip() == "2019"  # generated before: the demo may write it again
    assert f"{lake / bronze_key(2017)} holds real data" in proc.stderr
    assert demo_year(2019).stdout.strip() == "2019" and demo_year(2019).stderr == ""


def test_refuses_to_overwrite_real_data_on_s3(s3_lake):
    import boto3

    bucket = s3_lake[len("s3://"):].split("/")[0]
    s3 = boto3.client("s3")
    generate_year(2013, rows=500, seed=4)
    rec = json.loads(s3.get_object(Bucket=bucket, Key="lake/01_bronze/_provenance/2013.json")
                     ["Body"].read())
    assert rec["origin"] == "generated"
    generate_year(2013, rows=600, seed=4)  # its own year: allowed
    s3.put_object(Bucket=bucket, Key="lake/01_bronze/2013.csv", Body=b"a real year\n")
    with pytest.raises(UserError, match=rf"{s3_lake}/01_bronze/2013.csv was not written by"):
        generate_year(2013, rows=500, seed=4)
    assert s3.get_object(Bucket=bucket, Key="lake/01_bronze/2013.csv")["Body"].read() == b"a real year\n"
