"""The generator's BTS mode: its flights as the lines of BTS monthly files.

`format_bts` turns a batch of generated flights (the integer arrays of generate._flights) into
lines of the "Reporting Carrier On-Time Performance (1987-present)" format, column for column
as `loaders/bts_format.COLUMNS` lists them: quoted text fields, bare numbers with two decimals,
the clock times as quoted zero-padded `"0659"`, empty diversion blocks, a trailing comma. The
27 values the Kaggle format also has are the very same numbers, so a year written in both
formats holds the same flights. The descriptive columns the project does not read (airport and
city-market ids, world area codes, tail numbers) are plausible and consistent, not real.

Lines are assembled with Arrow's element-wise join over pre-formatted lookup tables (one
`take` per column), never a Python loop per row.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from loaders import bts_format
from loaders.airports import Universe

# name -> (postal code, FIPS code, BTS world area code)
_STATES: dict[str, tuple[str, str, int]] = {
    "Alabama": ("AL", "01", 51), "Alaska": ("AK", "02", 1), "Arizona": ("AZ", "04", 81),
    "Arkansas": ("AR", "05", 71), "California": ("CA", "06", 91), "Colorado": ("CO", "08", 82),
    "Connecticut": ("CT", "09", 11), "Delaware": ("DE", "10", 31),
    "District of Columbia": ("DC", "11", 32), "Florida": ("FL", "12", 33),
    "Georgia": ("GA", "13", 34), "Hawaii": ("HI", "15", 2), "Idaho": ("ID", "16", 83),
    "Illinois": ("IL", "17", 41), "Indiana": ("IN", "18", 42), "Iowa": ("IA", "19", 61),
    "Kansas": ("KS", "20", 62), "Kentucky": ("KY", "21", 52), "Louisiana": ("LA", "22", 72),
    "Maine": ("ME", "23", 12), "Maryland": ("MD", "24", 35), "Massachusetts": ("MA", "25", 13),
    "Michigan": ("MI", "26", 43), "Minnesota": ("MN", "27", 63), "Mississippi": ("MS", "28", 53),
    "Missouri": ("MO", "29", 64), "Montana": ("MT", "30", 84), "Nebraska": ("NE", "31", 65),
    "Nevada": ("NV", "32", 85), "New Hampshire": ("NH", "33", 14), "New Jersey": ("NJ", "34", 21),
    "New Mexico": ("NM", "35", 86), "New York": ("NY", "36", 22),
    "North Carolina": ("NC", "37", 36), "North Dakota": ("ND", "38", 66), "Ohio": ("OH", "39", 44),
    "Oklahoma": ("OK", "40", 73), "Oregon": ("OR", "41", 92), "Pennsylvania": ("PA", "42", 23),
    "Rhode Island": ("RI", "44", 15), "South Carolina": ("SC", "45", 37),
    "South Dakota": ("SD", "46", 67), "Tennessee": ("TN", "47", 54), "Texas": ("TX", "48", 74),
    "Utah": ("UT", "49", 87), "Vermont": ("VT", "50", 16), "Virginia": ("VA", "51", 38),
    "Washington": ("WA", "53", 93), "West Virginia": ("WV", "54", 39),
    "Wisconsin": ("WI", "55", 45), "Wyoming": ("WY", "56", 88), "Puerto Rico": ("PR", "72", 3),
    "Virgin Islands": ("VI", "78", 4),
}
_TERRITORY = ("TT", "", 5)  # Guam, Saipan: BTS's "U.S. Pacific Trust Territories and Possessions"
_TERRITORY_NAME = "U.S. Pacific Trust Territories and Possessions"
_DOT_IDS = {"AA": 19805, "AS": 19930, "B6": 20409, "DL": 19790, "EV": 20366, "F9": 20436,
            "G4": 20368, "HA": 19690, "MQ": 20398, "NK": 20416, "OH": 20397, "OO": 20304,
            "UA": 19977, "WN": 19393, "YV": 20378, "YX": 20452, "9E": 20363}

_LO, _HI = -500, 12_000
_DEC2 = pa.array([f"{i}.00" for i in range(_LO, _HI + 1)])     # bare numbers: -3.00
_INT = pa.array([str(i) for i in range(_LO, _HI + 1)])
_CLOCK = pa.array([f'"{i:04d}"' for i in range(2401)])       # quoted HHMM: "0659"
_QINT = pa.array([f'"{i}"' for i in range(10_000)])           # quoted flight number
_BLOCKS = pa.array([f'"{h:02d}00-{h:02d}59"' if h >= 6 else '"0001-0559"' for h in range(24)])
_CODES = pa.array(['"A"', '"B"', '"C"', '"D"'])
_EMPTY_QUOTED = '""'


def _quoted(values) -> pa.Array:
    return pa.array([f'"{v}"' for v in values])


def _numbers(table: pa.Array, values: np.ndarray, null: np.ndarray | None = None,
             null_text: str = "") -> pa.Array:
    if len(values) and table is not _CLOCK and table is not _QINT and (
            values.min() < _LO or values.max() > _HI):
        text = pc.cast(pa.array(values, mask=null), pa.string())
        if table is _DEC2:
            text = pc.binary_join_element_wise(text, ".00", "")
        return text.fill_null(null_text)
    offset = 0 if table is _CLOCK or table is _QINT else _LO
    return pc.take(table, pa.array(values - offset, mask=null)).fill_null(null_text)


@dataclass(frozen=True)
class BtsTables:
    """Per-airport, per-carrier and per-day texts, looked up by index for every flight."""

    airport_id: pa.Array
    airport_seq_id: pa.Array
    city_market_id: pa.Array
    code: pa.Array
    city_name: pa.Array
    state: pa.Array
    state_fips: pa.Array
    state_name: pa.Array
    wac: pa.Array
    carrier: pa.Array
    carrier_dot_id: pa.Array
    year: pa.Array
    quarter: pa.Array
    month: pa.Array
    day_of_month: pa.Array
    day_of_week: pa.Array
    flight_date: pa.Array


def tables(uni: Universe, dates: list[dt.date]) -> BtsTables:
    states = [_STATES.get(str(s), _TERRITORY) for s in uni.state]
    state_names = [str(s) if str(s) in _STATES else _TERRITORY_NAME for s in uni.state]
    ids = 10_135 + 13 * np.arange(uni.size)
    markets = {c: 30_000 + 11 * i for i, c in enumerate(dict.fromkeys(map(str, uni.city)))}
    return BtsTables(
        airport_id=pa.array([str(i) for i in ids]),
        airport_seq_id=pa.array([str(i * 100 + 2) for i in ids]),
        city_market_id=pa.array([str(markets[str(c)]) for c in uni.city]),
        code=_quoted(map(str, uni.iata)),
        city_name=_quoted(f"{c}, {s[0]}" for c, s in zip(map(str, uni.city), states)),
        state=_quoted(s[0] for s in states),
        state_fips=_quoted(s[1] for s in states),
        state_name=_quoted(state_names),
        wac=pa.array([str(s[2]) for s in states]),
        carrier=_quoted(map(str, uni.carriers)),
        carrier_dot_id=pa.array([str(_DOT_IDS.get(str(c), 21_000 + i))
                                 for i, c in enumerate(uni.carriers)]),
        year=pa.array([str(d.year) for d in dates]),
        quarter=pa.array([str((d.month - 1) // 3 + 1) for d in dates]),
        month=pa.array([str(d.month) for d in dates]),
        day_of_month=pa.array([str(d.day) for d in dates]),
        day_of_week=pa.array([str(d.isoweekday()) for d in dates]),
        flight_date=pa.array([d.isoformat() for d in dates]),
    )


def _delay_group(delay: np.ndarray) -> np.ndarray:
    return np.clip(np.floor_divide(delay, 15), -2, 12)


def format_bts(f: dict[str, np.ndarray], t: BtsTables, order: np.ndarray) -> bytes:
    """The BTS lines of the flights, in `order`, as one bytes object."""
    f = {k: v[order] for k, v in f.items()}
    n = len(order)
    cancelled, diverted = f["cancelled"], f["diverted"]
    no_arrival = cancelled | diverted
    no_causes = no_arrival | (f["arr_delay"] < 15)
    day, origin, dest = f["day"], f["origin"], f["dest"]
    dep_delay, arr_delay = f["dep_delay"], f["arr_delay"]

    def const(text: str) -> pa.Array:
        return pa.array([text] * n, pa.string())

    def dec(values, null=None):
        return _numbers(_DEC2, values, null)

    def clock(values, null=None):
        return _numbers(_CLOCK, values, null, _EMPTY_QUOTED)

    def airport(which: np.ndarray) -> list[pa.Array]:
        return [pc.take(t.airport_id, which), pc.take(t.airport_seq_id, which),
                pc.take(t.city_market_id, which), pc.take(t.code, which),
                pc.take(t.city_name, which), pc.take(t.state, which),
                pc.take(t.state_fips, which), pc.take(t.state_name, which),
                pc.take(t.wac, which)]

    carrier = pc.take(t.carrier, f["carrier"])
    tail = pc.binary_join_element_wise(
        '"N', _numbers(_INT, 100 + (f["fl_num"] * 31 + f["carrier"] * 7 + day) % 900),
        pc.utf8_slice_codeunits(carrier, 1, 3), '"', "")
    empty_quoted = const(_EMPTY_QUOTED)
    empty = const("")

    def timing(scheduled, actual, delay, missing):
        """The seven columns BTS gives a departure and an arrival alike: scheduled and actual
        clock, delay, delay minutes, 15+ flag, delay group, scheduled hour block."""
        return [clock(scheduled), clock(actual, missing), dec(delay, missing),
                dec(np.maximum(delay, 0), missing), dec((delay >= 15).astype(np.int64), missing),
                _numbers(_INT, _delay_group(delay), missing),
                pc.take(_BLOCKS, (scheduled // 100) % 24)]

    cols = [
        pc.take(t.year, day), pc.take(t.quarter, day), pc.take(t.month, day),
        pc.take(t.day_of_month, day), pc.take(t.day_of_week, day), pc.take(t.flight_date, day),
        carrier, pc.take(t.carrier_dot_id, f["carrier"]), carrier, tail,
        _numbers(_QINT, f["fl_num"]),
        *airport(origin),
        *airport(dest),
        *timing(f["crs_dep"], f["dep_time"], dep_delay, cancelled),
        dec(f["taxi_out"], cancelled),
        clock(f["wheels_off"], cancelled),
        clock(f["wheels_on"], no_arrival),
        dec(f["taxi_in"], no_arrival),
        *timing(f["crs_arr"], f["arr_time"], arr_delay, no_arrival),
        dec(cancelled.astype(np.int64)),
        pc.take(_CODES, pa.array(f["code"], mask=~cancelled)).fill_null(_EMPTY_QUOTED),
        dec(diverted.astype(np.int64)),
        dec(f["crs_elapsed"]),
        dec(f["actual_elapsed"], no_arrival),
        dec(f["air_time"], no_arrival),
        const("1.00"),
        dec(f["distance"]),
        _numbers(_INT, np.minimum(f["distance"] // 250 + 1, 11)),
        dec(f["carrier_delay"], no_causes),
        dec(f["weather_delay"], no_causes),
        dec(f["nas_delay"], no_causes),
        dec(f["security_delay"], no_causes),
        dec(f["late_aircraft_delay"], no_causes),
        empty_quoted, empty, empty,                       # FirstDepTime, Total/LongestAddGTime
        _numbers(_INT, diverted.astype(np.int64)),        # DivAirportLandings
        empty, empty, empty, empty,                       # DivReachedDest .. DivDistance
    ]
    for _k in range(5):  # Div1..Div5: Airport, AirportID, AirportSeqID, WheelsOn, TotalGTime,
        cols += [empty_quoted, empty, empty, empty_quoted, empty, empty,  # LongestGTime,
                 empty_quoted, empty_quoted]                              # WheelsOff, TailNum
    assert len(cols) == len(bts_format.COLUMNS)
    # The line break as a 111th field: joined by "," it gives the trailing comma BTS writes.
    lines = pc.binary_join_element_wise(*cols, const("\n"), ",")
    offsets = np.frombuffer(lines.buffers()[1], dtype=np.int32)[lines.offset:lines.offset + n + 1]
    return lines.buffers()[2].to_pybytes()[offsets[0]:offsets[-1]]
