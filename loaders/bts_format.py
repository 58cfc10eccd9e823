"""The BTS monthly bronze format: "Reporting Carrier On-Time Performance (1987-present)".

The one definition of the format the rest of the project derives from: its 109 columns in
file order (`COLUMNS`), the header check that names what is missing, the columns the project
uses and the staging.flights column each one lands in (`STAGING_SOURCE`), and where a month
lives in the lake. Sources for the column list and the value encodings: docs/loader.md
(#the-bts-monthly-format).

A BTS file is one month. Every field name is quoted, string-typed values are quoted (`"AA"`,
`"0659"`, `"New York, NY"`, `""` for an empty one), numbers are not (`-3.00`, `2475.00`,
empty for a missing one), and every line, the header included, ends in a comma: 110 fields.
"""

from __future__ import annotations

import csv
import re

from loaders.bronze_format import BronzeFormatError, header_problems

_DIVERSION = ("Airport", "AirportID", "AirportSeqID", "WheelsOn", "TotalGTime", "LongestGTime",
              "WheelsOff", "TailNum")

COLUMNS: tuple[str, ...] = (
    "Year", "Quarter", "Month", "DayofMonth", "DayOfWeek", "FlightDate",
    "Reporting_Airline", "DOT_ID_Reporting_Airline", "IATA_CODE_Reporting_Airline",
    "Tail_Number", "Flight_Number_Reporting_Airline",
    "OriginAirportID", "OriginAirportSeqID", "OriginCityMarketID", "Origin", "OriginCityName",
    "OriginState", "OriginStateFips", "OriginStateName", "OriginWac",
    "DestAirportID", "DestAirportSeqID", "DestCityMarketID", "Dest", "DestCityName",
    "DestState", "DestStateFips", "DestStateName", "DestWac",
    "CRSDepTime", "DepTime", "DepDelay", "DepDelayMinutes", "DepDel15", "DepartureDelayGroups",
    "DepTimeBlk", "TaxiOut", "WheelsOff", "WheelsOn", "TaxiIn",
    "CRSArrTime", "ArrTime", "ArrDelay", "ArrDelayMinutes", "ArrDel15", "ArrivalDelayGroups",
    "ArrTimeBlk", "Cancelled", "CancellationCode", "Diverted",
    "CRSElapsedTime", "ActualElapsedTime", "AirTime", "Flights", "Distance", "DistanceGroup",
    "CarrierDelay", "WeatherDelay", "NASDelay", "SecurityDelay", "LateAircraftDelay",
    "FirstDepTime", "TotalAddGTime", "LongestAddGTime",
    "DivAirportLandings", "DivReachedDest", "DivActualElapsedTime", "DivArrDelay", "DivDistance",
    *(f"Div{k}{field}" for k in range(1, 6) for field in _DIVERSION),
)
FIELDS = len(COLUMNS) + 1  # the trailing comma makes an empty 110th field

# Files downloaded before BTS renamed its carrier columns (2019) call five of them by their
# earlier names; the columns, their order and their values are the same, so both headers load.
EARLIER_NAMES: dict[str, str] = {
    "Reporting_Airline": "UniqueCarrier", "DOT_ID_Reporting_Airline": "AirlineID",
    "IATA_CODE_Reporting_Airline": "Carrier", "Tail_Number": "TailNum",
    "Flight_Number_Reporting_Airline": "FlightNum",
}
EARLIER_COLUMNS: tuple[str, ...] = tuple(EARLIER_NAMES.get(c, c) for c in COLUMNS)
HEADERS: tuple[tuple[str, ...], ...] = (COLUMNS, EARLIER_COLUMNS)

# Columns BTS writes quoted (text in its database), the rest are bare numbers.
QUOTED: frozenset[str] = frozenset({
    "Reporting_Airline", "IATA_CODE_Reporting_Airline", "Tail_Number",
    "Flight_Number_Reporting_Airline", "Origin", "OriginCityName", "OriginState",
    "OriginStateFips", "OriginStateName", "Dest", "DestCityName", "DestState", "DestStateFips",
    "DestStateName", "CRSDepTime", "DepTime", "DepTimeBlk", "WheelsOff", "WheelsOn",
    "CRSArrTime", "ArrTime", "ArrTimeBlk", "CancellationCode", "FirstDepTime",
    *(f"Div{k}{field}" for k in range(1, 6) for field in ("Airport", "WheelsOn", "WheelsOff",
                                                          "TailNum")),
})

HEADER_LINE: bytes = (",".join(f'"{c}"' for c in COLUMNS) + ",").encode()

# staging.flights column (the Kaggle format's, lower-cased) <- the BTS column it is loaded from.
# OP_CARRIER in the Kaggle files is the IATA carrier code, which BTS has as
# IATA_CODE_Reporting_Airline (Reporting_Airline is the same code for today's carriers, with a
# numeric suffix for a code's earlier users).
STAGING_SOURCE: dict[str, str] = {
    "fl_date": "FlightDate",
    "op_carrier": "IATA_CODE_Reporting_Airline",
    "op_carrier_fl_num": "Flight_Number_Reporting_Airline",
    "origin": "Origin",
    "dest": "Dest",
    "crs_dep_time": "CRSDepTime",
    "dep_time": "DepTime",
    "dep_delay": "DepDelay",
    "taxi_out": "TaxiOut",
    "wheels_off": "WheelsOff",
    "wheels_on": "WheelsOn",
    "taxi_in": "TaxiIn",
    "crs_arr_time": "CRSArrTime",
    "arr_time": "ArrTime",
    "arr_delay": "ArrDelay",
    "cancelled": "Cancelled",
    "cancellation_code": "CancellationCode",
    "diverted": "Diverted",
    "crs_elapsed_time": "CRSElapsedTime",
    "actual_elapsed_time": "ActualElapsedTime",
    "air_time": "AirTime",
    "distance": "Distance",
    "carrier_delay": "CarrierDelay",
    "weather_delay": "WeatherDelay",
    "nas_delay": "NASDelay",
    "security_delay": "SecurityDelay",
    "late_aircraft_delay": "LateAircraftDelay",
}
STAGING_COLUMNS: tuple[str, ...] = tuple(STAGING_SOURCE)
SOURCE_INDEX: tuple[int, ...] = tuple(COLUMNS.index(c) for c in STAGING_SOURCE.values())

# The name BTS gives the CSV inside its monthly zip, and the zip's own name (TranStats' PREZIP
# URLs drop the parentheses); the month is not zero-padded.
CSV_NAME = re.compile(r"On_Time_Reporting_Carrier_On_Time_Performance_\(1987_present\)_"
                      r"(\d{4})_(\d{1,2})\.csv", re.IGNORECASE)
ZIP_NAME = re.compile(r"On_Time_Reporting_Carrier_On_Time_Performance_1987_present_"
                      r"(\d{4})_(\d{1,2})\.zip", re.IGNORECASE)

# A month's lines are numbered from MONTH_LINE_BASE * month + 1 in staging.flights, so that
# (year, line_no) stays the key of a row across the months of a year and a month is a
# contiguous line_no range (the partition a month load swaps).
MONTH_LINE_BASE = 100_000_000


def month_lines(month: int) -> tuple[int, int]:
    """The [first, end) staging line_no range of `month`'s lines."""
    return MONTH_LINE_BASE * month, MONTH_LINE_BASE * (month + 1)


def split_header(raw: bytes) -> list[str] | None:
    """The header's column names (a trailing empty one dropped), or None if it is not text."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    try:
        names = next(csv.reader([text], strict=True), [])
    except csv.Error:
        return text.split(",")
    if names and names[-1] == "":
        names.pop()
    return names


def matches(raw: bytes) -> bool:
    return tuple(split_header(raw) or ()) in HEADERS


def check_header(raw: bytes, uri: str) -> None:
    """Raise BronzeFormatError naming the missing/unknown columns unless `raw` is the BTS header.

    `raw` is the first line without its line ending and without a UTF-8 BOM.
    """
    got = split_header(raw)
    if got is None:
        raise BronzeFormatError(
            f"{uri}: the header line is not UTF-8 text (is the file compressed or UTF-16?); "
            f"expected the BTS header \"Year\",\"Quarter\",\"Month\",... ({len(COLUMNS)} columns)")
    if tuple(got) in HEADERS:
        return
    # explained against the naming it is closest to (today's unless most names are earlier ones)
    earlier = len(set(got) & set(EARLIER_NAMES.values())) > len(EARLIER_NAMES) // 2
    expected = EARLIER_COLUMNS if earlier else COLUMNS
    needed = {EARLIER_NAMES.get(c, c) if earlier else c for c in STAGING_SOURCE.values()}
    problems = header_problems(got, expected, needed)
    raise BronzeFormatError(
        f"{uri}: unexpected header: {'; '.join(problems)}. Expected the BTS \"Reporting Carrier "
        f"On-Time Performance (1987-present)\" monthly file with all {len(COLUMNS)} columns, as "
        "TranStats' prezipped download holds it (Year, Quarter, Month, ..., Div5TailNum; the "
        "carrier columns under today's names or their pre-2019 ones, UniqueCarrier ... FlightNum)")


def looks_like(raw: bytes) -> bool:
    """A header that is more BTS than Kaggle (its CamelCase names), so its check explains it."""
    got = split_header(raw) or []
    return len(set(got) & set(COLUMNS + EARLIER_COLUMNS)) > len(got) // 4 if got else False
