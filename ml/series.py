"""One airport's daily history as plain arrays on a gap-free calendar.

Detectors work on these arrays only (no database, no pandas indexing inside the maths), so they
are pure functions that unit tests can drive with synthetic series.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

# Optional columns of a frame given to `AirportSeries.from_frame`, computed for every airport
# at once by ml.score_frame (per airport, in pandas, they cost more than some detectors): the
# day as datetime64 and whether the row is a target row (`target_mask`).
DAY, TARGET = "_day", "_target"
GOLD_COLUMNS = [
    "id", "origin", "fl_date", "year", "flights", "scheduled_flights", "cancelled_flights",
    "mean_dep_delay", "cancel_rate",
]


@dataclass
class AirportSeries:
    """Daily values of one airport, earlier years included, one entry per calendar day.

    Days without a gold row (no scheduled flight) are present with flights = scheduled = 0 and
    a NaN delay, so that weekday positions and ARIMA lags stay true.
    """

    origin: str
    dates: pd.DatetimeIndex
    delay: np.ndarray  # mean departure delay, NaN when no flight left
    flights: np.ndarray  # flights that have a departure delay
    scheduled: np.ndarray
    cancelled: np.ndarray
    target: np.ndarray  # True on the days of the year being scored (with a gold row)
    delayed: np.ndarray | None = None  # flights that left 15+ minutes late (NaN if unknown)
    delay_sd: np.ndarray | None = None  # spread of single flights' delays that day (NaN if unknown)

    def flight_delay_sd(self, default: float) -> float:
        """The airport's typical spread of single flights' delays: the median of its days'
        standard deviations (a storm day's wide spread does not move it), else `default`."""
        if self.delay_sd is None:
            return default
        known = self.delay_sd[np.isfinite(self.delay_sd) & (self.flights >= 2)]
        return float(np.median(known)) if len(known) >= 7 else default

    @property
    def weekday(self) -> np.ndarray:
        return self.dates.day_of_week.to_numpy()

    def __len__(self) -> int:
        return len(self.dates)

    @classmethod
    def from_frame(cls, origin: str, frame: pd.DataFrame, year: int,
                   period: tuple | None = None) -> AirportSeries:
        """`frame`: this airport's gold rows (any years, any order). The target days are the
        year's, or with `period` = (first, end) the year's days first <= fl_date < end."""
        if not frame["fl_date"].is_monotonic_increasing:
            frame = frame.sort_values("fl_date")
        dates = pd.DatetimeIndex(frame[DAY] if DAY in frame else pd.to_datetime(frame["fl_date"]))
        full = pd.date_range(dates[0], dates[-1], freq="D")
        pos = (dates - full[0]).days.to_numpy()
        target = frame[TARGET].to_numpy() if TARGET in frame else target_mask(frame, year, period)

        def spread(values, fill, dtype):
            out = np.full(len(full), fill, dtype=dtype)
            out[pos] = values
            return out

        flights = spread(frame["flights"].fillna(0).to_numpy(), 0, float)
        delay = spread(frame["mean_dep_delay"].to_numpy(dtype=float, na_value=np.nan), np.nan, float)
        delay[flights <= 0] = np.nan
        return cls(
            origin=origin,
            dates=full,
            delay=delay,
            flights=flights,
            scheduled=spread(frame["scheduled_flights"].fillna(0).to_numpy(), 0, float),
            cancelled=spread(frame["cancelled_flights"].fillna(0).to_numpy(), 0, float),
            target=spread(target, False, bool),
            delayed=spread(_delayed_counts(frame), np.nan, float),
            delay_sd=(spread(frame["sd_dep_delay"].to_numpy(dtype=float, na_value=np.nan),
                             np.nan, float) if "sd_dep_delay" in frame else None),
        )

    @classmethod
    def from_arrays(cls, delay, flights=None, scheduled=None, cancelled=None, delayed=None,
                    start="2018-01-01", origin="TST") -> AirportSeries:
        """A synthetic series (tests, docs): every day is a target day."""
        delay = np.asarray(delay, dtype=float)
        n = len(delay)
        flights = np.full(n, 100.0) if flights is None else np.asarray(flights, dtype=float)
        scheduled = flights.copy() if scheduled is None else np.asarray(scheduled, dtype=float)
        cancelled = np.zeros(n) if cancelled is None else np.asarray(cancelled, dtype=float)
        delay = np.where(flights > 0, delay, np.nan)
        delayed = (np.full(n, np.nan) if delayed is None
                   else np.asarray(delayed, dtype=float))
        return cls(origin, pd.date_range(start, periods=n, freq="D"), delay, flights,
                   scheduled, cancelled, np.ones(n, dtype=bool), delayed)


def target_mask(frame: pd.DataFrame, year: int, period: tuple | None = None) -> np.ndarray:
    """The rows of `frame` to score: the year's, or its days in [period[0], period[1])."""
    mask = (frame["year"] == year).to_numpy().copy()
    if period is not None:
        days = frame["fl_date"]
        mask &= ((days >= period[0]) & (days < period[1])).to_numpy()
    return mask


def _delayed_counts(frame: pd.DataFrame) -> np.ndarray:
    if "delayed_15_flights" in frame:
        return frame["delayed_15_flights"].to_numpy(dtype=float, na_value=np.nan)
    if "share_delayed_15" in frame:
        share = frame["share_delayed_15"].to_numpy(dtype=float, na_value=np.nan)
        return np.round(share * frame["flights"].fillna(0).to_numpy(dtype=float))
    return np.full(len(frame), np.nan)
