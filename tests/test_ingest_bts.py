"""`python -m loaders ingest` of BTS monthly files: the zips as TranStats ships them, a folder
of them, one CSV; the format is told by the header, the month by the name, checked by the data.

The monthly files are the generator's BTS mode output (the exact BTS format)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from lakehouse.errors import UserError
from lakehouse.lake import Lake, bts_bronze_key, provenance_key
from loaders import bts_format
from loaders.bronze_format import BronzeFormatError
from loaders.generate import generate_year
from loaders.ingest import ingest

REPO = Path(__file__).resolve().parents[1]


def zip_name(year: int, month: int) -> str:
    return f"On_Time_Reporting_Carrier_On_Time_Performance_1987_present_{year}_{month}.zip"


def csv_name(year: int, month: int) -> str:
    return f"On_Time_Reporting_Carrier_On_Time_Performance_(1987_present)_{year}_{month}.csv"


@pytest.fixture(scope="module")
def months(tmp_path_factory) -> dict[int, bytes]:
    scratch = Lake(str(tmp_path_factory.mktemp("bts")))
    generate_year(2019, rows=12_000, seed=9, lake=scratch, airports=20, fmt="bts",
                  months={1, 2, 3})
    return {m: (Path(scratch.url) / bts_bronze_key(2019, m)).read_bytes() for m in (1, 2, 3)}


def shipped_zip(folder: Path, year: int, month: int, data: bytes) -> Path:
    path = folder / zip_name(year, month)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(csv_name(year, month), data)
        zf.writestr("readme.html", b"<html>record layout</html>")
    return path


def test_folder_of_monthly_zips_lands_byte_exact_and_reingest_is_skipped(lake, tmp_path, months):
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    for m, data in months.items():
        shipped_zip(downloads, 2019, m, data)
    summary = ingest(downloads)
    assert summary["written"] == ["2019-01", "2019-02", "2019-03"]
    for m, data in months.items():
        assert (lake / bts_bronze_key(2019, m)).read_bytes() == data
        record = json.loads((lake / provenance_key(2019, m)).read_text())
        assert record["origin"] == "ingested" and record["month"] == m
        assert record["source"].endswith(f"{zip_name(2019, m)}:{csv_name(2019, m)}")
    assert sorted(p.name for p in (lake / "01_bronze").iterdir()) == ["_provenance", "bts"]
    again = ingest(downloads)
    assert again["skipped"] == ["2019-01", "2019-02", "2019-03"] and not again["written"]


def test_one_zip_and_one_csv_through_the_cli(lake, tmp_path, months):
    archive = shipped_zip(tmp_path, 2019, 2, months[2])
    single = tmp_path / csv_name(2019, 3)
    single.write_bytes(months[3])
    for path, period in ((archive, "2019-02"), (single, "2019-03")):
        done = subprocess.run([sys.executable, "-m", "loaders", "ingest", str(path), "--json"],
                              cwd=REPO, env=os.environ.copy(), capture_output=True, text=True,
                              timeout=120, check=False)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["written"] == [period]
    assert (lake / bts_bronze_key(2019, 3)).read_bytes() == months[3]


def test_header_check_names_the_missing_columns(lake, tmp_path, months):
    lines = months[1].split(b"\n")
    header = lines[0].replace(b'"DepDelay",', b"").replace(b'"Tail_Number",', b"")
    bad = tmp_path / csv_name(2019, 1)
    bad.write_bytes(b"\n".join([header, *lines[1:]]))
    with pytest.raises(BronzeFormatError, match=r"missing columns Tail_Number, DepDelay "
                                                r"\(the project needs DepDelay\)"):
        ingest(bad)
    assert not (lake / "01_bronze").exists()


def test_a_month_holding_another_months_flights_is_refused(lake, tmp_path, months):
    wrong = tmp_path / csv_name(2019, 4)
    wrong.write_bytes(months[1])
    with pytest.raises(UserError, match=r"flight date 2019-01-\d\d is not in 2019-04, the month "
                                        r"its name says"):
        ingest(wrong)


def test_format_comes_from_the_header_not_the_name(lake, tmp_path, months):
    renamed = tmp_path / "2019.csv"
    renamed.write_bytes(months[1])
    with pytest.raises(UserError, match="is a BTS monthly file .* does not say which month"):
        ingest(renamed)
    assert bts_format.matches(months[1].split(b"\n")[0])
    assert not bts_format.matches(months[1].split(b"\n")[0].replace(b'"Year",', b""))
