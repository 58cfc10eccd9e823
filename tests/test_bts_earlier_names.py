"""BTS files downloaded before the 2019 renaming of the carrier columns (UniqueCarrier,
AirlineID, Carrier, TailNum, FlightNum): ingested and loaded exactly like today's files, and a
header mixing the two namings is explained against the closer one."""

from __future__ import annotations

import pytest

from lakehouse.lake import bts_bronze_key
from loaders import bts_format
from loaders.bronze_format import BronzeFormatError
from loaders.ingest import ingest
from loaders.load import load_month
from tests.test_load_bts import REAL, cancelled_line

EARLIER_HEADER = (",".join(f'"{c}"' for c in bts_format.EARLIER_COLUMNS) + ",").encode()
CSV_NAME = "On_Time_Reporting_Carrier_On_Time_Performance_(1987_present)_2025_{}.csv"


def test_the_earlier_names_differ_in_exactly_the_five_carrier_columns():
    changed = [(a, b) for a, b in zip(bts_format.COLUMNS, bts_format.EARLIER_COLUMNS) if a != b]
    assert changed == [("Reporting_Airline", "UniqueCarrier"), ("DOT_ID_Reporting_Airline", "AirlineID"),
                       ("IATA_CODE_Reporting_Airline", "Carrier"), ("Tail_Number", "TailNum"),
                       ("Flight_Number_Reporting_Airline", "FlightNum")]


def test_a_month_under_the_earlier_names_loads_the_same_rows(pg_env, pg_conn, lake, tmp_path):
    body = "".join(line + "\r\n" for line in (REAL, cancelled_line())).encode()
    for month, header in ((1, bts_format.HEADER_LINE), (2, EARLIER_HEADER)):
        download = tmp_path / CSV_NAME.format(month)
        # the same flights, dated in the file's month (ingest checks the dates against the name)
        download.write_bytes(header + b"\r\n" + body.replace(b"2025-01-", f"2025-0{month}-".encode()))
        assert ingest(download)["written"] == [f"2025-0{month}"]
        assert (lake / bts_bronze_key(2025, month)).read_bytes() == download.read_bytes()
        assert load_month(2025, month).rows_loaded == 2
    rows = pg_conn.execute(
        "select line_no %% %s, op_carrier, op_carrier_fl_num, origin, dest, dep_delay, cancelled, "
        "cancellation_code, line_no / %s from staging.flights where year = 2025 "
        "order by line_no", [bts_format.MONTH_LINE_BASE, bts_format.MONTH_LINE_BASE]).fetchall()
    by_month = {m: [r[:-1] for r in rows if r[-1] == m] for m in (1, 2)}
    assert by_month[1] == by_month[2] and len(by_month[1]) == 2
    assert by_month[2][0][1:3] == ("AA", "1")


def test_a_header_mixing_the_namings_is_explained_against_the_closer_one():
    mixed = list(bts_format.EARLIER_COLUMNS)
    mixed[mixed.index("FlightNum")] = "Flight_Number_Reporting_Airline"
    raw = (",".join(f'"{c}"' for c in mixed) + ",").encode()
    with pytest.raises(BronzeFormatError, match=r"missing columns FlightNum \(the project needs "
                       r"FlightNum\); unknown columns 'Flight_Number_Reporting_Airline'"):
        bts_format.check_header(raw, "x.csv")
    bts_format.check_header(EARLIER_HEADER, "x.csv")  # no error
    assert bts_format.matches(EARLIER_HEADER) and bts_format.matches(bts_format.HEADER_LINE)
