"""The generator's BTS mode: the exact BTS monthly format, and the same flights as the Kaggle
format's year (what the continuity of gold across the two formats rests on)."""

from __future__ import annotations

import csv
import io
import json
import re

import pytest

from lakehouse.errors import UserError
from lakehouse.lake import Lake, bronze_key, bts_bronze_key, provenance_key
from loaders import bts_format
from loaders.bronze_format import HEADER
from loaders.generate import generate_year

QUOTED_FIELD = re.compile(r'"[^"]*"')


def bts_rows(lake: Lake, year: int, month: int) -> tuple[bytes, list[list[str]]]:
    with lake.open_read(bts_bronze_key(year, month)) as fh:
        raw = fh.read()
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8"), newline="")))
    return raw, rows


@pytest.fixture(scope="module")
def both_formats(tmp_path_factory):
    lake = Lake(str(tmp_path_factory.mktemp("both")))
    kaggle = generate_year(2019, rows=30_000, seed=5, lake=lake, airports=30)
    bts = generate_year(2019, rows=30_000, seed=5, lake=lake, airports=30, fmt="bts")
    return lake, kaggle, bts


def test_bts_months_hold_the_kaggle_years_flights_in_the_same_order(both_formats):
    lake, kaggle, bts = both_formats
    with lake.open_read(bronze_key(2019)) as fh:
        kaggle_rows = list(csv.reader(io.StringIO(fh.read().decode(), newline="")))[1:]
    by_month: dict[int, list[list[str]]] = {}
    for row in kaggle_rows:
        by_month.setdefault(int(row[0][5:7]), []).append(row)
    assert bts["months"] == list(range(1, 13)) and bts["rows"] == kaggle["rows"] == 30_000
    kaggle_index = {c.lower().replace(": ", "_"): i for i, c in enumerate(HEADER)}
    for month in range(1, 13):
        _, rows = bts_rows(lake, 2019, month)
        assert len(rows) - 1 == len(by_month[month]) == bts["month_rows"][f"2019-{month:02d}"]
        for bts_row, kaggle_row in zip(rows[1:], by_month[month], strict=True):
            for staging_col, i in zip(bts_format.STAGING_SOURCE, bts_format.SOURCE_INDEX,
                                      strict=True):
                a, b = bts_row[i], kaggle_row[kaggle_index[staging_col]]
                # the same value in each format's spelling: "0659" / 659, -3.00 / -3.0
                if a == "" or b == "" or not re.fullmatch(r"-?[\d.]+", a):
                    assert a == b, (month, staging_col, a, b)
                else:
                    assert float(a) == float(b), (month, staging_col, a, b)


def test_exact_bts_format(both_formats):
    lake, _, _ = both_formats
    raw, rows = bts_rows(lake, 2019, 3)
    assert raw.startswith(bts_format.HEADER_LINE + b"\n")
    assert rows[0] == [*bts_format.COLUMNS, ""]
    quoted = [c in bts_format.QUOTED for c in bts_format.COLUMNS]
    for line in raw.split(b"\n")[1:200]:
        if not line:
            continue
        assert line.endswith(b",")
        fields = next(csv.reader([line.decode()]))
        assert len(fields) == bts_format.FIELDS and fields[-1] == ""
        # text columns are quoted even when empty; numbers never are
        raw_fields = re.sub(r'"[^"]*"', lambda m: m.group(0).replace(",", ";"), line.decode())
        for is_quoted, text in zip(quoted, raw_fields.split(","), strict=False):
            assert bool(QUOTED_FIELD.fullmatch(text)) == is_quoted, (text, line)
        row = dict(zip(bts_format.COLUMNS, fields, strict=False))
        assert row["Year"] == "2019" and row["Month"] == "3" and row["Quarter"] == "1"
        assert row["FlightDate"].startswith("2019-03-")
        assert re.fullmatch(r"\d{4}", row["CRSDepTime"])
        assert re.fullmatch(r"-?\d+\.00", row["Distance"])
        assert row["Cancelled"] in ("0.00", "1.00") and row["Diverted"] in ("0.00", "1.00")
        if row["Cancelled"] == "1.00":
            assert row["DepTime"] == row["DepDelay"] == "" and row["CancellationCode"] in "ABCD"


def test_only_some_months_and_the_same_flights(tmp_path, both_formats):
    lake, _, _ = both_formats
    other = Lake(str(tmp_path))
    summary = generate_year(2019, rows=30_000, seed=5, lake=other, airports=30, fmt="bts",
                            months={2, 11})
    assert summary["months"] == [2, 11]
    assert sorted(p.name for p in (tmp_path / "01_bronze/bts/2019").iterdir()) == ["02.csv",
                                                                                  "11.csv"]
    for month in (2, 11):
        assert bts_rows(other, 2019, month)[0] == bts_rows(lake, 2019, month)[0]
    record = json.loads((tmp_path / provenance_key(2019, 11)).read_text())
    assert record["origin"] == "generated" and record["month"] == 11


def test_refuses_to_overwrite_a_month_it_did_not_write(lake):
    target = Lake(str(lake))
    path = lake / bts_bronze_key(2019, 4)
    path.parent.mkdir(parents=True)
    path.write_bytes(bts_format.HEADER_LINE + b"\n")
    with pytest.raises(UserError, match=r"bts/2019/04.csv was not written by the generator"):
        generate_year(2019, rows=1_000, lake=target, fmt="bts", months={3, 4})
    assert not (lake / bts_bronze_key(2019, 3)).exists()
