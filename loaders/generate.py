"""A synthetic year of US flights in the exact Kaggle bronze format, plus labelled disruptions.

`generate_year` writes `01_bronze/{year}.csv` and `00_labels/{year}.json` to the lake; with
`fmt="bts"` the same flights go to BTS monthly files instead, `01_bronze/bts/{year}/{MM}.csv`
(loaders/generate_bts.py), so a year written in both formats holds the same flights. The year
is built in three layers so ordinary days look ordinary and injected days stand out the way
real ones do:

1. counts: how many departures each (day, airport) has -- traffic rank × weekday × season ×
   holidays, drawn as one multinomial so the file has exactly `rows` data lines;
2. conditions per (day, airport): a baseline delay propensity per airport, mild regional
   weather (random blobs shared by nearby airports), seasonal delay and cancellation levels,
   and on top of them the labelled disruptions (delay spikes, regional storms, cancellation
   waves);
3. flights: destination (gravity model), carrier (hub-aware mix), schedule and the whole
   chain of times, drawn in batches of ~100k flights with numpy and formatted with Arrow
   (a lookup `take` per column and Arrow's CSV writer), never a Python loop per row.

Every random stream is derived from (seed, year, purpose), so the same seed gives the same
bytes, and the labelled events do not depend on `rows`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import sys
import time
import zoneinfo
from collections import Counter
from dataclasses import dataclass, replace

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from lakehouse.errors import UserError
from lakehouse.lake import Lake, bronze_key, bts_bronze_key, labels_key, lake_write_errors
from lakehouse.years import check_year, parse_months
from loaders import bronze_format, bts_format, generate_bts
from loaders.airports import Universe, universe
from loaders.provenance import GENERATED, HashingWriter, require_generator_may_write, write_record

HEADER = ",".join(bronze_format.HEADER)

BATCH_ROWS = 100_000  # flights per generated batch: bounds memory, ~20 MB of CSV
KINDS = ("delay_spike", "regional_storm", "cancellation_wave")

# Real 2018 departures per day by month relative to the mean, and weekday shape (Mon..Sun).
_MONTH_TRAFFIC = np.array([0.91, 0.93, 1.00, 1.00, 1.00, 1.04, 1.05, 1.05, 0.99, 1.00, 0.99, 1.00])
_WEEKDAY_TRAFFIC = np.array([1.03, 0.99, 1.00, 1.04, 1.04, 0.84, 0.99])
# Delays peak with summer thunderstorms and the December rush; autumn is calm.
_MONTH_DELAY = np.array([0.95, 0.98, 0.92, 0.92, 1.05, 1.30, 1.32, 1.18, 0.75, 0.80, 0.82, 1.00])
_MONTH_CANCEL = np.array([1.5, 1.5, 1.2, 0.9, 0.8, 1.0, 1.0, 0.9, 0.8, 0.6, 0.6, 1.1])
_MONTH_WEATHER = np.array([0.34, 0.34, 0.30, 0.30, 0.30, 0.36, 0.38, 0.34, 0.26, 0.22, 0.24, 0.32])
# Scheduled departures by local hour: banks in the morning and late afternoon, few red-eyes.
_HOURLY_DEPARTURES = np.array([0.3, 0.1, 0.05, 0.05, 0.1, 1.5, 5.5, 6.5, 6.2, 5.6, 5.4, 5.6,
                               5.6, 5.4, 5.4, 5.6, 5.8, 6.0, 5.6, 5.0, 4.0, 3.0, 2.0, 1.0])
_CONGESTED = {"EWR": 0.07, "LGA": 0.06, "SFO": 0.05, "ORD": 0.05, "JFK": 0.04, "BOS": 0.03,
              "MDW": 0.03, "DFW": 0.02, "FLL": 0.03, "HNL": -0.08, "OGG": -0.07, "KOA": -0.07,
              "LIH": -0.07, "SLC": -0.04, "MSP": -0.03, "SEA": -0.02}
_OUTSIDE_CONUS = ("Hawaii", "Alaska")


@dataclass
class _Year:
    year: int
    dates: list[dt.date]
    date_strings: pa.Array
    traffic: np.ndarray       # [day] relative departures
    delay_level: np.ndarray   # [day] relative delay propensity
    cancel_level: np.ndarray  # [day] relative cancellation propensity
    utc_offset: np.ndarray    # [day, airport] minutes


@dataclass
class _Conditions:
    p_late: np.ndarray        # [day, airport] share of flights that leave late
    late_mu: np.ndarray       # log-mean of a late flight's delay
    extra_delay: np.ndarray   # mean added minutes (disruptions)
    cancel_rate: np.ndarray
    weather_share: np.ndarray  # share of cancellations coded B
    weather: np.ndarray       # 0 .. ~1.3 intensity of the day's weather
    divert_rate: np.ndarray
    taxi_extra: np.ndarray


def _thanksgiving(year: int) -> dt.date:
    nov1 = dt.date(year, 11, 1)
    return nov1 + dt.timedelta(days=(3 - nov1.weekday()) % 7 + 21)


def _calendar(year: int, uni: Universe) -> _Year:
    start = dt.date(year, 1, 1)
    dates = [start + dt.timedelta(days=i) for i in range((dt.date(year + 1, 1, 1) - start).days)]
    month = np.array([d.month for d in dates]) - 1
    weekday = np.array([d.weekday() for d in dates])
    traffic = _MONTH_TRAFFIC[month] * _WEEKDAY_TRAFFIC[weekday]
    delay = _MONTH_DELAY[month].copy()
    cancel = _MONTH_CANCEL[month].copy()
    tg = _thanksgiving(year)
    holidays = {
        dt.date(year, 1, 1): 0.85, dt.date(year, 7, 4): 0.80, tg: 0.68,
        tg + dt.timedelta(days=1): 0.90, tg + dt.timedelta(days=3): 1.08,
        dt.date(year, 12, 24): 0.82, dt.date(year, 12, 25): 0.68, dt.date(year, 12, 31): 0.85,
    }
    for i, d in enumerate(dates):
        traffic[i] *= holidays.get(d, 1.0)
        if dt.date(year, 12, 18) <= d <= dt.date(year, 12, 23):
            delay[i] *= 1.15  # the pre-Christmas rush
    offsets = np.empty((len(dates), uni.size), dtype=np.int64)
    noon = [dt.datetime(d.year, d.month, d.day, 12) for d in dates]
    for zone in np.unique(uni.tz):
        info = zoneinfo.ZoneInfo(str(zone))
        col = np.array([info.utcoffset(t).total_seconds() // 60 for t in noon], dtype=np.int64)
        offsets[:, uni.tz == zone] = col[:, None]
    return _Year(year, dates, pa.array([d.isoformat() for d in dates]), traffic, delay, cancel,
                 offsets)


def _haversine_miles(lat1, lon1, lat2, lon2):
    p1, p2 = np.radians(lat1), np.radians(lat2)
    h = (np.sin((p2 - p1) / 2) ** 2
         + np.cos(p1) * np.cos(p2) * np.sin(np.radians(lon2 - lon1) / 2) ** 2)
    return 2 * 3958.8 * np.arcsin(np.sqrt(np.clip(h, 0, 1)))


def _weather(cal: _Year, uni: Universe, rng: np.random.Generator) -> np.ndarray:
    """Mild day-to-day weather shared by nearby airports: a few random blobs per day."""
    n_days = len(cal.dates)
    conus = ~np.isin(uni.state, _OUTSIDE_CONUS) & (uni.lon < -66) & (uni.lat > 24)
    centers = np.flatnonzero(conus)
    w = np.zeros((n_days, uni.size))
    for i, d in enumerate(cal.dates):
        scale = _MONTH_WEATHER[d.month - 1]
        for _ in range(1 + rng.poisson(3)):
            c = rng.choice(centers)
            lat = uni.lat[c] + rng.normal(0, 1.5)
            lon = uni.lon[c] + rng.normal(0, 2.0)
            radius = rng.uniform(120, 420)
            strength = min(rng.exponential(scale), 1.3)
            miles = _haversine_miles(lat, lon, uni.lat, uni.lon)
            w[i] = np.maximum(w[i], strength * np.exp(-((miles / radius) ** 2)))
    w[:, ~conus] = np.minimum(rng.exponential(0.15, size=(n_days, int((~conus).sum()))), 1.0)
    return w


def _conditions(cal: _Year, uni: Universe, rng: np.random.Generator) -> _Conditions:
    n_days = len(cal.dates)
    shape = (n_days, uni.size)
    base = 0.28 + 0.06 * uni.hubness + rng.normal(0, 0.03, uni.size)
    base += np.array([_CONGESTED.get(str(code), 0.0) for code in uni.iata])
    weather = _weather(cal, uni, rng)
    # Each airport's day-to-day wobble carries over a little into the next day (AR(1)), as
    # real operational trouble does.
    shocks = rng.normal(0, 0.085, shape)
    for i in range(1, n_days):
        shocks[i] += 0.5 * shocks[i - 1]
    daily_noise = np.exp(shocks)
    p_late = np.clip(base[None, :] * cal.delay_level[:, None] * daily_noise + 0.12 * weather,
                     0.03, 0.9)
    north = np.clip((uni.lat - 36) / 8, 0, 1)
    winter = np.isin([d.month for d in cal.dates], (12, 1, 2, 3)).astype(float)
    cancel = (0.0135 * cal.cancel_level[:, None] * np.exp(rng.normal(0, 0.3, shape))
              * (1 + 2.5 * weather**2 + 2.0 * weather * winter[:, None] * north[None, :]))
    return _Conditions(
        p_late=p_late,
        late_mu=3.0 + 0.25 * weather,
        extra_delay=np.zeros(shape),
        cancel_rate=np.clip(cancel, 0, 0.2),
        weather_share=np.clip(0.35 + 0.45 * weather, 0, 0.95),
        weather=weather,
        divert_rate=0.0022 * (1 + weather),
        taxi_extra=3.0 * weather,
    )


def _plan_disruptions(cal: _Year, uni: Universe, cond: _Conditions,
                      rng: np.random.Generator) -> list[dict]:
    """Choose 28-38 events spread over the year and apply them to the day conditions."""
    n_days = len(cal.dates)
    n_events = int(rng.integers(28, 39))
    # One event per equal slice of the year: spread over all months, the first one always
    # falls in the first two weeks of January.
    edges = np.linspace(0, n_days, n_events + 1).astype(int)
    conus = ~np.isin(uni.state, _OUTSIDE_CONUS) & (uni.lon < -66) & (uni.lat > 24)
    ranks = np.arange(uni.size)
    busy = np.flatnonzero(ranks < 110)
    medium = np.flatnonzero((ranks >= 110) & (ranks < 170))
    if not len(medium):  # a universe of the busiest airports only (--airports)
        medium = busy
    storm_members = np.flatnonzero((ranks < 150) & conus)
    used: set[tuple[int, int]] = set()
    events: list[dict] = []
    for k in range(n_events):
        day = int(rng.integers(edges[k], edges[k + 1]))
        month = cal.dates[day].month
        if month in (12, 1, 2, 3):
            kind_p = (0.3, 0.3, 0.4)
        elif month in (6, 7, 8):
            kind_p = (0.4, 0.45, 0.15)
        else:
            kind_p = (0.5, 0.3, 0.2)
        kind = KINDS[int(rng.choice(3, p=kind_p))]
        for _attempt in range(50):
            pool = busy if rng.random() < 0.8 else medium
            if kind == "regional_storm":
                pool = pool[conus[pool]]
            if kind == "cancellation_wave" and month in (12, 1, 2, 3):
                pool = pool[uni.lat[pool] > 38]  # blizzards hit the north
            airport = int(rng.choice(pool))
            if kind == "regional_storm":
                others = storm_members[storm_members != airport]
                order = others[np.argsort(uni.distance[airport, others], kind="stable")]
                near = order[uni.distance[airport, order] <= 450]
                neighbours = near if len(near) >= 2 else order[:2]
                members = np.r_[airport, neighbours][: int(rng.integers(3, 9))]
                days = [day] if rng.random() < 0.5 or day + 1 >= n_days else [day, day + 1]
            else:
                members = np.array([airport])
                days = [day]
            cells = {(d, int(a)) for d in days for a in members}
            if not cells & used:
                break
        else:
            continue
        used |= cells
        event = {"event_id": len(events) + 1, "kind": kind,
                 "fl_date": cal.dates[days[0]].isoformat(),
                 "origins": [str(uni.iata[a]) for a in members]}
        if kind == "delay_spike":
            extra = float(40 + 110 * rng.beta(1.3, 2.0))  # skewed to the subtler end
            cond.extra_delay[day, airport] = extra
            cond.cancel_rate[day, airport] *= 1.5
            event["extra_mean_dep_delay"] = round(extra, 1)
        elif kind == "regional_storm":
            extra = float(rng.uniform(25, 80))
            cancel = float(rng.uniform(0.05, 0.35))
            reach = max(float(uni.distance[airport, members].max()), 1.0)
            for d in days:
                for a in members:
                    s = rng.uniform(0.6, 1.0) * (1 - 0.4 * uni.distance[airport, a] / reach)
                    cond.extra_delay[d, a] = extra * s
                    cond.cancel_rate[d, a] = max(cond.cancel_rate[d, a], cancel * s)
                    cond.weather_share[d, a] = 0.9
                    cond.taxi_extra[d, a] += 8
                    cond.divert_rate[d, a] *= 3
            event.update(center=str(uni.iata[airport]),
                         fl_dates=[cal.dates[d].isoformat() for d in days],
                         extra_mean_dep_delay=round(extra, 1), peak_cancel_rate=round(cancel, 3))
        else:
            cancel = float(rng.uniform(0.5, 0.9))
            cond.cancel_rate[day, airport] = cancel
            cond.weather_share[day, airport] = 0.97
            cond.extra_delay[day, airport] = float(rng.uniform(3, 12))
            event["cancel_rate"] = round(cancel, 3)
        event["airport_days"] = [(str(uni.iata[a]), cal.dates[d].isoformat())
                                 for d in days for a in members]
        events.append(event)
    return events


def _labels(year: int, seed: int, rows: int, events: list[dict]) -> dict:
    airport_days = [
        {"origin": origin, "fl_date": fl_date, "kind": e["kind"], "event_id": e["event_id"]}
        for e in events for origin, fl_date in e["airport_days"]
    ]
    disruptions = [{k: v for k, v in e.items() if k != "airport_days"} for e in events]
    return {"year": year, "seed": seed, "rows": rows, "disruptions": disruptions,
            "airport_days": airport_days}


def _pick(cum: np.ndarray, rows: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Vectorised categorical draw: row r of `cum` holds cumulative probabilities."""
    width = cum.shape[1]
    flat = (cum + np.arange(cum.shape[0])[:, None]).ravel()
    return np.searchsorted(flat, rows + u, side="right") - rows * width


def _make_unique(group: np.ndarray, value: np.ndarray, lo: int,
                 hi: int | np.ndarray) -> np.ndarray:
    """Move repeated values within a group to the following free ones (wrapping in lo..hi)."""
    value = value.copy()
    for _ in range(100):
        key = group * 10_000 + value
        sorted_key = np.sort(key)
        if (sorted_key[1:] != sorted_key[:-1]).all():  # the common case: a cheap sort suffices
            return value
        order = np.argsort(key, kind="stable")
        sorted_key = key[order]
        starts = np.r_[True, sorted_key[1:] != sorted_key[:-1]]
        idx = np.arange(len(key))
        rank = idx - np.maximum.accumulate(np.where(starts, idx, 0))
        value[order] += rank
        value = lo + (value - lo) % (hi - lo + 1)
    raise RuntimeError("could not make flights unique: too many flights for one route")


def _hhmm(minutes: np.ndarray) -> np.ndarray:
    m = np.mod(minutes, 1440)
    out = (m // 60) * 100 + m % 60
    out[out == 0] = 2400  # BTS writes midnight as 2400
    return out


def _batches(counts: np.ndarray, batch_rows: int) -> list[tuple[int, int]]:
    """Split the flattened (day, airport) cells into runs of about `batch_rows` flights, so
    memory stays flat however many rows the year has."""
    cum = np.cumsum(counts)
    out, lo = [], 0
    while lo < len(counts):
        done = int(cum[lo - 1]) if lo else 0
        hi = max(int(np.searchsorted(cum, done + batch_rows, side="right")), lo + 1)
        out.append((lo, min(hi, len(counts))))
        lo = hi
    return out


def _flights(cal: _Year, uni: Universe, cond: _Conditions, counts: np.ndarray, lo: int, hi: int,
             rng: np.random.Generator) -> dict[str, np.ndarray]:
    """All fields of the flights in cells lo..hi of the flattened counts, as integer arrays."""
    n_air = uni.size
    cell = np.repeat(np.arange(lo, hi), counts[lo:hi])
    day, origin = np.divmod(cell, n_air)
    n = len(cell)
    dest = np.minimum(_pick(uni.dest_cum, origin, rng.random(n)), n_air - 1)
    carrier = np.minimum(_pick(uni.carrier_cum, origin, rng.random(n)), len(uni.carriers) - 1)

    slot_w = np.repeat(_HOURLY_DEPARTURES / 12, 12)
    slot_w[0] = 0.0  # nothing is scheduled at exactly midnight
    slot = np.searchsorted(np.cumsum(slot_w) / slot_w.sum(), rng.random(n), side="right")
    crs_dep = slot * 5 + np.where(rng.random(n) < 0.2, rng.integers(0, 5, n), 0)
    crs_dep = np.clip(crs_dep, 1, 1439)
    # A carrier flies a route once per scheduled minute, and a flight number leaves an airport
    # once a day: real files have no exact duplicate lines, and silver removes those.
    route = ((day * 32 + carrier) * 512 + origin) * 512 + dest
    crs_dep = _make_unique(route, crs_dep, 1, 1439)
    max_fl_num = np.where(carrier < 5, 2999, 6999)  # mainline vs regional number ranges
    fl_num = 1 + (origin * 7919 + dest * 104729 + (crs_dep // 60) * 131 + carrier * 977) % max_fl_num
    fl_num = _make_unique((day * 32 + carrier) * 512 + origin, fl_num, 1, max_fl_num)

    miles = uni.distance[origin, dest]
    hub_o, hub_d = uni.hubness[origin], uni.hubness[dest]
    air_sched = miles / 7.8 + 11
    pad = (origin * 31 + dest * 17) % 5  # a route keeps its schedule padding
    crs_elapsed = np.rint(air_sched + 13 + 5 * hub_o + 5 + 3 * hub_d + pad).astype(np.int64)
    shift = cal.utc_offset[day, dest] - cal.utc_offset[day, origin]

    p_late = cond.p_late[day, origin] * (0.45 + 1.1 * np.clip((crs_dep - 300) / 1140, 0, 1))
    late = rng.random(n) < np.minimum(p_late, 0.95)
    on_time = np.clip(np.rint(rng.normal(-3.5, 3.8, n)), -30, 10)
    late_by = np.rint(np.exp(rng.normal(cond.late_mu[day, origin], 1.05))) + 1
    too_long = late_by > 1800  # fold the extreme tail back instead of piling it on one value
    late_by[too_long] = rng.integers(300, 1800, int(too_long.sum()))
    extra = cond.extra_delay[day, origin]
    disrupted = extra > 0
    extra_by = np.zeros(n)
    extra_by[disrupted] = rng.gamma(2.0, extra[disrupted] / 2.0)
    dep_delay = (np.where(late, late_by, on_time) + np.rint(extra_by)).astype(np.int64)

    wx = cond.weather[day, origin]
    taxi_out = 1 + np.rint(rng.gamma(4.0, (10 + 7 * hub_o + cond.taxi_extra[day, origin]) / 4))
    taxi_in = 1 + np.rint(rng.gamma(3.0, (4 + 4 * hub_d) / 3))
    air_time = np.maximum(np.rint(air_sched * rng.normal(0.97, 0.035, n)), 8)
    taxi_out, taxi_in, air_time = (a.astype(np.int64) for a in (taxi_out, taxi_in, air_time))
    actual_elapsed = taxi_out + air_time + taxi_in
    arr_delay = dep_delay + actual_elapsed - crs_elapsed

    cancelled = rng.random(n) < cond.cancel_rate[day, origin]
    u = rng.random(n)
    b = cond.weather_share[day, origin]
    code = np.where(u < b, 1, np.where(u < b + (1 - b) * 0.55, 0,
                                       np.where(u < 0.998, 2, 3)))  # A B C D
    diverted = ~cancelled & (rng.random(n) < cond.divert_rate[day, origin])

    # Cause columns: NAS takes what the air side added, the rest splits between carrier,
    # weather and the late inbound aircraft (more of it as the day goes on).
    nas = np.clip(arr_delay - np.maximum(dep_delay, 0), 0, None)
    rest = np.clip(arr_delay - nas, 0, None)
    weights = rng.gamma(1.0, 1.0, (n, 4)) * np.column_stack([
        np.full(n, 0.9), 0.08 + 1.5 * wx + 0.02 * extra, 0.3 + 0.9 * crs_dep / 1440,
        np.full(n, 0.004)])
    weights *= rng.random((n, 4)) > np.array([0.35, 0.8, 0.45, 0.99])
    none = weights.sum(axis=1) == 0
    weights[none, 0] = 1.0
    share = np.floor(rest[:, None] * weights / weights.sum(axis=1, keepdims=True)).astype(np.int64)
    share[:, 0] += rest - share.sum(axis=1)

    dep_min = crs_dep + dep_delay
    wheels_off = dep_min + taxi_out
    wheels_on = wheels_off + air_time + shift
    return {
        "day": day, "origin": origin, "dest": dest, "carrier": carrier, "fl_num": fl_num,
        "crs_dep": _hhmm(crs_dep), "dep_time": _hhmm(dep_min), "dep_delay": dep_delay,
        "taxi_out": taxi_out, "wheels_off": _hhmm(wheels_off), "wheels_on": _hhmm(wheels_on),
        "taxi_in": taxi_in, "crs_arr": _hhmm(crs_dep + crs_elapsed + shift),
        "arr_time": _hhmm(wheels_on + taxi_in), "arr_delay": arr_delay,
        "cancelled": cancelled, "code": code, "diverted": diverted,
        "crs_elapsed": crs_elapsed, "actual_elapsed": actual_elapsed, "air_time": air_time,
        "distance": miles, "carrier_delay": share[:, 0], "weather_delay": share[:, 1],
        "nas_delay": nas, "security_delay": share[:, 3], "late_aircraft_delay": share[:, 2],
    }


# Every number in the file is a small integer (minutes, HHMM clock times, miles), so its text
# is looked up in a table of pre-formatted strings: one Arrow `take` per column, ~80x faster
# than casting to string and appending ".0".
_TABLE_MIN, _TABLE_MAX = -500, 12_000
_INT_TEXT = pa.array([str(i) for i in range(_TABLE_MIN, _TABLE_MAX + 1)])
_FLOAT_TEXT = pa.array([f"{i}.0" for i in range(_TABLE_MIN, _TABLE_MAX + 1)])


def _text(table: pa.Array, suffix: str, values: np.ndarray,
          null: np.ndarray | None = None) -> pa.Array:
    if len(values) and (values.min() < _TABLE_MIN or values.max() > _TABLE_MAX):
        cast = pc.cast(pa.array(values, mask=null), pa.string())
        return pc.binary_join_element_wise(cast, suffix, "") if suffix else cast
    return pc.take(table, pa.array(values - _TABLE_MIN, mask=null))


def _as_int_text(values: np.ndarray, null: np.ndarray | None = None) -> pa.Array:
    return _text(_INT_TEXT, "", values, null)


def _as_float_text(values: np.ndarray, null: np.ndarray | None = None) -> pa.Array:
    return _text(_FLOAT_TEXT, ".0", values, null)


_CODES = pa.array(["A", "B", "C", "D"])
_CSV = pcsv.WriteOptions(include_header=False, quoting_style="none")


def _format(f: dict[str, np.ndarray], cal: _Year, uni_codes: pa.Array, carriers: pa.Array,
            order: np.ndarray) -> pa.Buffer:
    """The CSV lines of the flights, in `order`, as one buffer."""
    f = {k: v[order] for k, v in f.items()}
    cancelled, diverted = f["cancelled"], f["diverted"]
    no_arrival = cancelled | diverted
    no_causes = no_arrival | (f["arr_delay"] < 15)
    flt = _as_float_text
    cols = [
        pc.take(cal.date_strings, f["day"]),
        pc.take(carriers, f["carrier"]),
        _as_int_text(f["fl_num"]),
        pc.take(uni_codes, f["origin"]),
        pc.take(uni_codes, f["dest"]),
        _as_int_text(f["crs_dep"]),
        flt(f["dep_time"], cancelled),
        flt(f["dep_delay"], cancelled),
        flt(f["taxi_out"], cancelled),
        flt(f["wheels_off"], cancelled),
        flt(f["wheels_on"], no_arrival),
        flt(f["taxi_in"], no_arrival),
        _as_int_text(f["crs_arr"]),
        flt(f["arr_time"], no_arrival),
        flt(f["arr_delay"], no_arrival),
        flt(cancelled.astype(np.int64)),
        pc.take(_CODES, pa.array(f["code"], mask=~cancelled)),
        flt(diverted.astype(np.int64)),
        flt(f["crs_elapsed"]),
        flt(f["actual_elapsed"], no_arrival),
        flt(f["air_time"], no_arrival),
        flt(f["distance"]),
        flt(f["carrier_delay"], no_causes),
        flt(f["weather_delay"], no_causes),
        flt(f["nas_delay"], no_causes),
        flt(f["security_delay"], no_causes),
        flt(f["late_aircraft_delay"], no_causes),
        pa.nulls(len(order), pa.string()),  # "Unnamed: 27": always empty, lines end in ","
    ]
    table = pa.Table.from_arrays(cols, names=[f"c{i}" for i in range(len(cols))])
    sink = pa.BufferOutputStream()
    pcsv.write_csv(table, sink, _CSV)  # no quoting needed: no field holds , " or newline
    return sink.getvalue()


def _validate(year: int, rows: int, seed: int, airports: int | None) -> None:
    check_year(year)
    if rows < 1:
        raise UserError(f"--rows must be at least 1 (got {rows})")
    if seed < 0:
        raise UserError(f"--seed must be a non-negative integer (got {seed})")
    size = universe().size
    if airports is not None and not 10 <= airports <= size:
        raise UserError(f"--airports must be between 10 and {size} (got {airports}); "
                        "leave it out for every airport")


def busiest_airports(uni: Universe, n: int) -> Universe:
    """The `n` busiest airports as a closed network: their flights only go to each other.

    A demo year of a few hundred thousand rows spread over all 365 airports gives a median of
    2 flights per airport-day, which neither looks like traffic nor gives the anomaly scorer
    anything to judge; the same rows over the busiest airports give hubs hundreds of
    departures a day. Each airport keeps its share of the national traffic, its routes (the
    destination probabilities renormalised over the kept airports) and its carrier mix.
    """
    if n >= uni.size:
        return uni
    dest_cum = np.cumsum(np.diff(uni.dest_cum[:n, :n], axis=1, prepend=0.0), axis=1)
    keep = slice(0, n)
    return replace(
        uni, iata=uni.iata[keep], name=uni.name[keep], city=uni.city[keep],
        state=uni.state[keep], lat=uni.lat[keep], lon=uni.lon[keep], tz=uni.tz[keep],
        daily_flights=uni.daily_flights[keep], hubness=uni.hubness[keep],
        distance=uni.distance[keep, keep], dest_cum=dest_cum / dest_cum[:, -1:],
        carrier_cum=uni.carrier_cum[keep],
    )


FORMATS = ("kaggle", "bts")


def generate_year(year: int, rows: int = 7_200_000, seed: int = 42, lake: Lake | None = None,
                  disruptions: bool = True, progress: bool = False,
                  airports: int | None = None, fmt: str = "kaggle",
                  months: set[int] | None = None) -> dict:
    """Write `01_bronze/{year}.csv` (exactly `rows` data lines) and `00_labels/{year}.json`.

    The bronze object is recorded as generated (`01_bronze/_provenance/{year}.json`); a
    bronze object without that record (real, ingested data) is never overwritten: UserError.
    Returns a summary: year, rows, seed, uri, labels_uri, bytes, airports (origins with at
    least one flight), disruptions (count), airport_days (labelled), kinds, seconds.
    `airports=N` keeps only the N busiest airports (see `busiest_airports`); None keeps all.
    `fmt="bts"` writes the year's flights as BTS months instead (`months`: only those; the
    others' flights are not even drawn), each recorded as generated; `rows` still counts the
    whole year, so a month holds the same flights whichever months are written.
    """
    _validate(year, rows, seed, airports)
    if fmt not in FORMATS:
        raise UserError(f"--format must be one of {', '.join(FORMATS)} (got {fmt!r})")
    if months is not None and (not months or not months <= set(range(1, 13))):
        raise UserError(f"--months must be months 1-12 (got {sorted(months)})")
    if fmt == "kaggle" and months is not None:
        raise UserError("--months needs --format bts: the Kaggle format is one file a year")
    started = time.perf_counter()
    lake = lake or Lake.from_env()
    if fmt == "bts":
        months = months or set(range(1, 13))
        for m in sorted(months):
            with lake_write_errors(lake, bts_bronze_key(year, m)):
                require_generator_may_write(lake, year, m)
    else:
        with lake_write_errors(lake, bronze_key(year)):
            require_generator_may_write(lake, year)
    uni = universe() if airports is None else busiest_airports(universe(), airports)
    cal = _calendar(year, uni)
    cond = _conditions(cal, uni, np.random.default_rng([seed, year, 1]))
    events = (_plan_disruptions(cal, uni, cond, np.random.default_rng([seed, year, 2]))
              if disruptions else [])
    expected = cal.traffic[:, None] * uni.daily_flights[None, :]
    counts = np.random.default_rng([seed, year, 3]).multinomial(
        rows, (expected / expected.sum()).ravel()).reshape(expected.shape)

    if fmt == "bts":
        return _generate_bts(year, rows, seed, lake, uni, cal, cond, events, counts, months,
                             progress, started)
    uni_codes = pa.array(uni.iata.tolist())
    carriers = pa.array(uni.carriers.tolist())
    written = 0
    bar = None
    if progress and sys.stderr.isatty():
        from tqdm import tqdm

        bar = tqdm(total=rows, unit="rows", unit_scale=True, desc=f"generate {year}",
                   file=sys.stderr)
    try:
        with lake_write_errors(lake, bronze_key(year)), lake.open_write(bronze_key(year)) as raw:
            fh = HashingWriter(raw)
            header = (HEADER + "\n").encode()
            fh.write(header)
            written += len(header)
            flat = counts.ravel()
            for batch, (lo, hi) in enumerate(_batches(flat, BATCH_ROWS)):
                rng = np.random.default_rng([seed, year, 1000 + batch])
                flights = _flights(cal, uni, cond, flat, lo, hi, rng)
                order = rng.permutation(len(flights["day"]))  # real files are not date-sorted
                data = _format(flights, cal, uni_codes, carriers, order)
                fh.write(data)
                written += data.size
                if bar is not None:
                    bar.update(len(order))
    finally:
        if bar is not None:
            bar.close()
    labels = _labels(year, seed, rows, events)
    with lake_write_errors(lake, labels_key(year)):
        with lake.open_write(labels_key(year)) as lh:
            lh.write(json.dumps(labels, indent=1).encode())
        write_record(lake, year, GENERATED, fh.sha256.hexdigest(), seed=seed, rows=rows,
                     labels=labels_key(year))
    return {
        "year": year, "rows": rows, "seed": seed,
        "uri": lake.uri(bronze_key(year)), "labels_uri": lake.uri(labels_key(year)),
        "bytes": written, "airports": int((counts.sum(axis=0) > 0).sum()),
        "disruptions": len(events), "airport_days": len(labels["airport_days"]),
        "kinds": dict(Counter(e["kind"] for e in events)),
        "seconds": round(time.perf_counter() - started, 2),
    }


def _generate_bts(year: int, rows: int, seed: int, lake: Lake, uni: Universe, cal: _Year,
                  cond: _Conditions, events: list[dict], counts: np.ndarray, months: set[int],
                  progress: bool, started: float) -> dict:
    """The year's flights, drawn batch by batch exactly as for the Kaggle file, into one BTS
    file per month. Batches run in date order, so the months are written one after another;
    a batch's rows keep the Kaggle file's order within each month."""
    tables = generate_bts.tables(uni, cal.dates)
    month_of_day = np.array([d.month for d in cal.dates])
    n_air = uni.size
    flat = counts.ravel()
    month_rows = {m: 0 for m in sorted(months)}
    month_bytes = dict.fromkeys(month_rows, 0)
    bar = None
    if progress and sys.stderr.isatty():
        from tqdm import tqdm

        bar = tqdm(total=int(sum(counts[month_of_day == m].sum() for m in months)),
                   unit="rows", unit_scale=True, desc=f"generate {year} (BTS)", file=sys.stderr)
    with contextlib.ExitStack() as stack:
        if bar is not None:
            stack.callback(bar.close)
        current: tuple[int, HashingWriter, contextlib.ExitStack] | None = None

        def finish() -> None:
            m, fh, month_stack = current
            month_stack.close()  # publishes the object
            with lake_write_errors(lake, bts_bronze_key(year, m)):
                write_record(lake, year, GENERATED, fh.sha256.hexdigest(), month=m, seed=seed,
                             rows=month_rows[m], year_rows=rows, labels=labels_key(year))

        def writer(m: int) -> HashingWriter:
            nonlocal current
            if current is not None and current[0] == m:
                return current[1]
            if current is not None:
                finish()
            month_stack = contextlib.ExitStack()
            stack.callback(month_stack.close)  # an error discards the unpublished month
            month_stack.enter_context(lake_write_errors(lake, bts_bronze_key(year, m)))
            fh = HashingWriter(month_stack.enter_context(lake.open_write(bts_bronze_key(year, m))))
            header = bts_format.HEADER_LINE + b"\n"
            fh.write(header)
            month_bytes[m] += len(header)
            current = (m, fh, month_stack)
            return fh

        for batch, (lo, hi) in enumerate(_batches(flat, BATCH_ROWS)):
            batch_months = set(month_of_day[lo // n_air:(hi - 1) // n_air + 1].tolist())
            if not batch_months & months:
                continue  # its random stream is its own: skipping it changes no other batch
            rng = np.random.default_rng([seed, year, 1000 + batch])
            flights = _flights(cal, uni, cond, flat, lo, hi, rng)
            order = rng.permutation(len(flights["day"]))  # the Kaggle file's order
            row_months = month_of_day[flights["day"][order]]
            for m in sorted(batch_months & months):
                part = order[row_months == m]
                if not len(part):
                    continue
                data = generate_bts.format_bts(flights, tables, part)
                writer(m).write(data)
                month_rows[m] += len(part)
                month_bytes[m] += len(data)
                if bar is not None:
                    bar.update(len(part))
        if current is not None:
            finish()
            current = None
        for m in sorted(months):  # a month without a single flight still gets its header
            if month_bytes[m] == 0:
                writer(m)
                finish()
                current = None
    labels = _labels(year, seed, rows, events)
    with lake_write_errors(lake, labels_key(year)), lake.open_write(labels_key(year)) as lh:
        lh.write(json.dumps(labels, indent=1).encode())
    return {
        "year": year, "format": "bts", "rows": sum(month_rows.values()), "year_rows": rows,
        "seed": seed, "months": sorted(months),
        "uris": [lake.uri(bts_bronze_key(year, m)) for m in sorted(months)],
        "month_rows": {f"{year}-{m:02d}": month_rows[m] for m in sorted(months)},
        "labels_uri": lake.uri(labels_key(year)), "bytes": sum(month_bytes.values()),
        "airports": int((counts.sum(axis=0) > 0).sum()), "disruptions": len(events),
        "airport_days": len(labels["airport_days"]),
        "kinds": dict(Counter(e["kind"] for e in events)),
        "seconds": round(time.perf_counter() - started, 2),
    }


def cli_generate(args) -> int:
    months = set(parse_months(args.months)) if args.months else None
    result = generate_year(args.year, rows=args.rows, seed=args.seed,
                           disruptions=not args.no_disruptions, progress=True,
                           airports=args.airports, fmt=args.format, months=months)
    if args.json:
        print(json.dumps(result))
    elif args.format == "bts":
        print(f"wrote {len(result['uris'])} BTS month(s) of {result['year']} "
              f"({result['uris'][0]} …): {result['rows']:,} rows, {result['disruptions']} "
              f"disruptions labelled in {result['labels_uri']} ({result['seconds']} s)")
    else:
        print(f"wrote {result['uri']}: {result['rows']:,} rows, {result['airports']} airports, "
              f"{result['disruptions']} disruptions labelled in {result['labels_uri']} "
              f"({result['seconds']} s)")
    return 0
