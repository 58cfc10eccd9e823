"""The real-data evaluation set: 3 M real US flights of January-June 2001, labelled.

Source: the npm package `vega-datasets` 3.2.1, file `data/flights-3m.parquet` (from the US
Bureau of Transportation Statistics' on-time data; `make real-data` fetches it with `npm pack`
and checks the tarball's sha256). One row per flight: `date` (scheduled departure, local
time), `delay`, `distance`, `origin`, `destination`. Cancelled flights are not in the file.

`delay` is the ARRIVAL delay in minutes, not the departure delay: 20 % of the values are
below -10 minutes and 10 % below -15, which arrivals (padded schedules) show and departures
almost never do. It is used here as the day's delay signal in place of gold's
`mean_dep_delay`; both move together on a disrupted day.

`to_gold` turns the file into gold's shape (one row per origin x day, the columns
`ml.score_frame` reads); `label` marks the airport-days the evaluation counts as anomalies, by a
rule fixed before any tuning (docs/ml.md) plus named, cited disruptions.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
PACKAGE = "vega-datasets@3.2.1"
TARBALL_SHA256 = "6f72fda460a9863fae5fcb32f85bcd49e1761fdea6dc6cf9f4962472881cc5a3"  # pragma: allowlist secret
DEFAULT_PATH = REPO / ".local" / "real" / "flights-3m.parquet"
YEAR = 2001
# The labels are only judged on airports big enough for a daily mean to mean something.
HUB_MIN_MEDIAN_FLIGHTS = 50
# The data-driven rule (fixed before tuning, docs/ml.md "The real set"):
DELAY_EXCESS_MINUTES = 30.0  # mean delay >= the airport's half-year median + 30 min
VOLUME_SHARE = 0.6  # or flights <= 60 % of the airport's median for that weekday
# Tuning uses January-March only; every figure reported is on April-June.
TUNE_MONTHS = (1, 2, 3)
HOLDOUT_MONTHS = (4, 5, 6)


@dataclass(frozen=True)
class NamedEvent:
    name: str
    source: str
    airport_days: tuple[tuple[str, str], ...]  # (origin, YYYY-MM-DD)

    def ids(self) -> set[str]:
        return {origin + day.replace("-", "") for origin, day in self.airport_days}


# Public reports of disruptions in the half-year, each with the airports and days they name.
NAMED_EVENTS = (
    NamedEvent(
        "Nisqually earthquake: Sea-Tac tower damaged, airport closed",
        "https://abcnews.go.com/US/story?id=93961 ; http://www.scn.org/scaa/newsletters/2001spring/page1.html",
        (("SEA", "2001-02-28"), ("SEA", "2001-03-01")),
    ),
    NamedEvent(
        "Northeast nor'easter: more than 2,000 flights cancelled, most to New York and Boston",
        "https://www.washingtontimes.com/news/2001/mar/6/20010306-021507-4224r/",
        (("BOS", "2001-03-05"), ("BOS", "2001-03-06"), ("LGA", "2001-03-05"),
         ("JFK", "2001-03-05"), ("JFK", "2001-03-06"), ("EWR", "2001-03-05")),
    ),
    NamedEvent(
        "Tropical Storm Allison floods Houston: ~1,000 Continental flights cancelled at IAH",
        "https://alabamawx.com/?p=61234 ; https://forums.jetphotos.com/forum/general-discussion-forums/flight-review-forum/12683-tropical-storm-allison",
        (("IAH", "2001-06-08"), ("IAH", "2001-06-09"), ("HOU", "2001-06-09")),
    ),
)


def to_gold(path: Path | str = DEFAULT_PATH, batch_rows: int = 500_000) -> pd.DataFrame:
    """Gold-shaped daily rows (id, origin, fl_date, year, flights, scheduled_flights,
    cancelled_flights, mean_dep_delay, cancel_rate, delayed_15_flights, sd_dep_delay), read
    batch by batch (partial sums and sums of squares per day, added up at the end).

    scheduled = flown (the file has no cancelled flights), so the cancellation detector sees
    nothing here and a storm shows only as a collapse in volume and a jump in delay.
    """
    import pyarrow.parquet as pq

    path = Path(path)
    if not path.exists():
        from lakehouse.errors import UserError

        raise UserError(f"{path} not found: run `make real-data` to fetch {PACKAGE} from npm")
    parts = []
    with pq.ParquetFile(path) as pf:
        for batch in pf.iter_batches(batch_size=batch_rows, columns=["date", "delay", "origin"]):
            frame = batch.to_pandas()
            frame["fl_date"] = frame["date"].dt.normalize()
            frame["late"] = frame["delay"] >= 15
            frame["delay_sq"] = frame["delay"].astype(float) ** 2
            parts.append(frame.groupby(["origin", "fl_date"]).agg(
                flights=("delay", "size"), delay_sum=("delay", "sum"), late=("late", "sum"),
                delay_sq=("delay_sq", "sum")))
    daily = pd.concat(parts).groupby(level=[0, 1]).sum().reset_index()
    # six flights of 2001-06-30 are dated 07-01 00:00 (midnight departures): not a day of data
    daily = daily[daily["fl_date"].dt.year == YEAR]
    daily = daily[daily["fl_date"] < pd.Timestamp(YEAR, 7, 1)]
    n = daily["flights"].astype(float)
    variance = (daily["delay_sq"] - daily["delay_sum"] ** 2 / n) / (n - 1).where(n > 1)
    out = pd.DataFrame({
        "id": daily["origin"] + daily["fl_date"].dt.strftime("%Y%m%d"),
        "origin": daily["origin"],
        "fl_date": daily["fl_date"].dt.date,
        "year": YEAR,
        "flights": daily["flights"].astype(int),
        "scheduled_flights": daily["flights"].astype(int),
        "cancelled_flights": 0,
        "mean_dep_delay": daily["delay_sum"] / daily["flights"],
        "cancel_rate": 0.0,
        "delayed_15_flights": daily["late"].astype(int),
        "sd_dep_delay": np.sqrt(variance.clip(lower=0)),
    })
    return out.sort_values(["origin", "fl_date"]).reset_index(drop=True)


def hubs(gold: pd.DataFrame) -> list[str]:
    median = gold.groupby("origin")["flights"].median()
    return sorted(median[median >= HUB_MIN_MEDIAN_FLIGHTS].index)


def label(gold: pd.DataFrame) -> pd.DataFrame:
    """The labelled airport-days of the hubs: id, origin, fl_date, reason.

    The rule compares each day with the airport's whole half-year (one median delay, one median
    volume per weekday), deliberately unlike the detectors' rolling, leave-one-out baselines,
    so the labels do not simply restate what a detector computes.
    """
    days = gold[gold["origin"].isin(hubs(gold))].copy()
    weekday = pd.to_datetime(days["fl_date"]).dt.day_of_week
    median_delay = days.groupby("origin")["mean_dep_delay"].transform("median")
    weekday_volume = days.groupby([days["origin"], weekday])["flights"].transform("median")
    late = days["mean_dep_delay"] >= median_delay + DELAY_EXCESS_MINUTES
    collapse = days["flights"] <= VOLUME_SHARE * weekday_volume
    named = set().union(*(event.ids() for event in NAMED_EVENTS))
    is_named = days["id"].isin(named)
    reason = np.select([late & collapse, late, collapse], ["delay+volume", "delay", "volume"],
                       default="named event")
    days["reason"] = reason
    return days.loc[late | collapse | is_named, ["id", "origin", "fl_date", "reason"]]


def in_months(fl_date: pd.Series, months: tuple[int, ...]) -> np.ndarray:
    return pd.to_datetime(fl_date).dt.month.isin(months).to_numpy()


def first_day(months: tuple[int, ...]) -> dt.date:
    return dt.date(YEAR, min(months), 1)
