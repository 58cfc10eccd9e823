"""The detectors as pure functions on synthetic daily series (no database)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from ml import detectors
from ml.counts import tail_score
from ml.params import Params
from ml.score_frame import month_window, score_frame
from ml.series import AirportSeries

P = Params()


def weekly_series(days=365, flights=200, seed=0, start="2018-01-01"):
    """Mean delays with a weekday shape (Saturday quiet) and noise; delayed counts to match."""
    rng = np.random.default_rng(seed)
    dates = pd.date_range(start, periods=days, freq="D")
    shape = np.where(dates.day_of_week == 5, -4.0, 2.0)
    delay = 8 + shape + rng.normal(0, 2.0, days)
    n = np.full(days, float(flights))
    n[dates.day_of_week == 5] *= 0.8
    share = np.clip(0.18 + (delay - 8) / 100, 0.01, 0.99)
    delayed = rng.binomial(n.astype(int), share).astype(float)
    cancelled = rng.binomial(n.astype(int), 0.015).astype(float)
    return delay, n, delayed, cancelled


def run(series):
    result = detectors.run_detectors(series, P, detectors.DETECTORS)
    assert not result.baseline_failed, result.problems
    return result.results


def make(delay, n, delayed, cancelled, start="2018-01-01"):
    return AirportSeries.from_arrays(delay, flights=n, scheduled=n + cancelled,
                                     cancelled=cancelled, delayed=delayed, start=start)


def test_a_late_day_is_flagged_and_its_own_value_does_not_raise_its_expectation():
    delay, n, delayed, cancelled = weekly_series()
    day = 200
    delay[day] = 70.0
    delayed[day] = n[day] * 0.8
    out = run(make(delay, n, delayed, cancelled))
    seasonal = out["seasonal_robust"]
    assert seasonal.flag[day]
    assert abs(seasonal.expected[day] - 10.0) < 2.0  # about the weekday norm, not pulled to 70
    assert seasonal.flag.sum() == 1


def test_quiet_days_and_saturdays_are_not_anomalies():
    delay, n, delayed, cancelled = weekly_series()
    delay[100] = -25.0  # a holiday: nobody flies, nobody waits
    delayed[100] = 0
    n[100] = 60
    out = run(make(delay, n, delayed, cancelled))
    for name in ("seasonal_robust", "arima", "delayed_share", "cancel_wave"):
        assert not out[name].flag.any(), name
    saturdays = pd.date_range("2018-01-01", periods=365).day_of_week == 5
    # the weekday profile expects Saturdays to be quieter
    assert np.nanmean(out["seasonal_robust"].expected[saturdays]) < np.nanmean(
        out["seasonal_robust"].expected[~saturdays]) - 4


def test_the_first_days_of_a_year_are_scored_without_history():
    delay, n, delayed, cancelled = weekly_series()
    delay[2] = 80.0
    delayed[2] = n[2] * 0.85
    out = run(make(delay, n, delayed, cancelled))
    assert out["seasonal_robust"].flag[2]
    assert out["arima"].flag[2]
    assert np.isfinite(out["seasonal_robust"].expected[:7]).all()


def test_past_storms_do_not_widen_the_band():
    delay, n, delayed, cancelled = weekly_series(seed=3)
    clean = run(make(delay.copy(), n, delayed.copy(), cancelled))
    stormy_delay, stormy_delayed = delay.copy(), delayed.copy()
    for day in range(20, 180, 9):  # 18 storm days
        stormy_delay[day] = 90.0
        stormy_delayed[day] = n[day] * 0.9
    stormy = run(make(stormy_delay, n, stormy_delayed, cancelled))
    width = lambda d: np.nanmedian(d.band_high - d.band_low)
    assert width(stormy["seasonal_robust"]) < 1.25 * width(clean["seasonal_robust"])
    assert stormy["seasonal_robust"].flag[20:180:9].all()


def test_a_three_times_late_day_is_flagged_though_its_delayed_share_is_ordinary():
    # real storms move the mean far more than the share of flights 15+ min late: a few flights
    # hours late, most on time. No delayed-share support is needed at hub volumes.
    delay, n, delayed, cancelled = weekly_series()
    day = 150
    delay[day] = 3 * 10.0 + 5  # ~3.5x the weekday norm of ~10 min, +25 min
    out = run(make(delay, n, delayed, cancelled))
    assert out["delayed_share"].strength[day] < 1  # the share alone says nothing
    assert out["seasonal_robust"].flag[day] and out["arima"].flag[day]


def test_a_quiet_low_volume_saturday_is_not_an_anomaly():
    delay, n, delayed, cancelled = weekly_series()
    saturday = 152  # 2018-06-02
    assert (pd.Timestamp("2018-01-01") + pd.Timedelta(days=saturday)).day_of_week == 5
    n[saturday] *= 0.7  # an even quieter Saturday than usual: 112 instead of 160 flights
    delay[saturday] = 1.0
    series = make(delay, n, delayed, cancelled)
    out = run(series)
    for name in ("seasonal_robust", "arima", "volume_drop", "cancel_wave", "delayed_share"):
        assert not out[name].flag[saturday], name
    assert out["volume_drop"].expected[saturday] < 0.9 * n[saturday - 1]  # Saturdays are quieter


def test_a_storm_in_a_file_without_cancelled_rows_is_a_volume_collapse():
    # the real 2001 flights list only the flights that left: a storm day is simply thin
    delay, n, delayed, _ = weekly_series()
    day = 64
    n[day] = 0.15 * n[day]  # 30 of 200 flights left, on time
    delay[day] = 6.0
    no_cancellations = np.zeros(len(n))
    out = run(AirportSeries.from_arrays(delay, flights=n, scheduled=n,
                                           cancelled=no_cancellations, delayed=delayed))
    assert out["volume_drop"].flag[day] and out["volume_drop"].strength[day] > 2
    assert not out["cancel_wave"].flag.any() and not out["seasonal_robust"].flag[day]
    assert out["volume_drop"].flag.sum() == 1


def test_a_holiday_sized_dip_in_flights_is_not_a_collapse():
    delay, n, delayed, cancelled = weekly_series()
    n[200] *= 0.75  # 25 % fewer flights: a holiday schedule, not a storm
    out = run(make(delay, n, delayed, cancelled))
    assert not out["volume_drop"].flag[200]


def test_a_storm_day_with_few_flights_at_a_hub_is_judged_on_the_hubs_day_to_day_noise():
    # sd = sqrt(tau^2 + s^2 / n): the day's own variation plus the sampling of its n flights;
    # with a day-to-day sd of 6 min, 55 flights at a 376-flight hub widen the band by ~1.15x,
    # not by sqrt(376/55) = 2.6x as a pure sampling model would
    rng = np.random.default_rng(2)
    resid = rng.normal(0, 6.0, 365)
    flights = np.full(365, 376.0)
    flights[100] = 55
    sd = detectors.delay_scale(resid, flights, np.zeros(365, dtype=bool), flight_sd=30.0)
    assert 1.05 < sd[100] / sd[0] < 1.4
    assert abs(sd[0] - 6.0) < 1.0


def test_a_blizzard_cancellation_wave_is_caught_though_the_few_flights_leave_on_time():
    delay, n, delayed, cancelled = weekly_series()
    day = 40
    cancelled[day] = 170.0
    n[day] = 30.0  # the 30 that still fly leave on time
    delay[day] = 5.0
    delayed[day] = 3.0
    out = run(make(delay, n, delayed, cancelled))
    assert out["cancel_wave"].flag[day]
    assert not out["seasonal_robust"].flag[day]
    assert out["cancel_wave"].band_high[day] < 0.5
    assert out["volume_drop"].flag[day]  # the flights that left collapsed too


def test_cancellations_are_judged_on_a_volume_aware_scale():
    # 30 % cancelled: 3 of 10 is weak evidence, 300 of 1000 is overwhelming
    p0 = np.array([0.015, 0.015])
    small, big = tail_score(np.array([3, 300]), np.array([10, 1000]), p0, 0.0)
    assert big > 20 > small


def test_tail_score_is_the_exact_binomial_tail_without_overdispersion():
    k, n, p = np.array([0, 1, 5, 40]), np.array([10, 10, 100, 200]), np.full(4, 0.02)
    expected = -np.log10(stats.binom.sf(k - 1, n, p))
    np.testing.assert_allclose(tail_score(k, n, p, 0.0), expected, rtol=1e-6, atol=1e-9)
    assert (tail_score(k, n, p, 0.05)[2:] < expected[2:]).all()  # overdispersion: less surprising


def test_one_very_late_flight_at_a_tiny_airport_is_not_an_anomaly():
    rng = np.random.default_rng(5)
    days = 365
    n = rng.integers(1, 3, days).astype(float)
    delay = rng.normal(-2, 6, days)
    delayed = np.zeros(days)
    for day in (50, 120, 300):
        delay[day] = 180.0  # one flight, three hours late
        delayed[day] = 1
    out = run(make(delay, n, delayed, np.zeros(days)))
    # 3 hours late is far past the large-excess path's z (and its 30 minutes) ...
    assert out["seasonal_robust"].score[[50, 120, 300]].min() > 1.5 * P.delay_large_z
    assert not out["seasonal_robust"].flag.any()  # but one late flight is no disruption
    assert not out["delayed_share"].flag.any()


def test_original_rules_flag_a_fixed_share_and_quiet_days():
    delay, n, delayed, cancelled = weekly_series()
    delay[100] = -25.0
    s = make(delay, n, delayed, cancelled)
    iso = detectors.original_isolation_forest(s, P, {})
    assert iso.flag[100]  # two-sided: the quiet holiday is an "anomaly" for the original
    assert 2 <= iso.flag.sum() <= 6  # contamination 0.01 of 365 days
    plain = make(*weekly_series())
    arima = detectors.original_arima(plain, P, {})
    assert arima.flag.mean() > 0.05  # squared residual > mean + 1 sigma: ~10 % of normal days


def gold_frame(origins=("AAA", "BBB"), years=(2017, 2018), days_per_year=365, seed=1):
    rows = []
    for i, origin in enumerate(origins):
        for year in years:
            delay, n, delayed, cancelled = weekly_series(days_per_year, 120 + 40 * i,
                                                         seed + i * 10 + year, f"{year}-01-01")
            dates = pd.date_range(f"{year}-01-01", periods=days_per_year, freq="D")
            for d, dl, fl, dd, cc in zip(dates, delay, n, delayed, cancelled):
                rows.append({"id": origin + d.strftime("%Y%m%d"), "origin": origin,
                             "fl_date": d.date(), "year": year, "flights": int(fl),
                             "scheduled_flights": int(fl + cc), "cancelled_flights": int(cc),
                             "mean_dep_delay": dl, "cancel_rate": cc / (fl + cc),
                             "delayed_15_flights": int(dd)})
    return pd.DataFrame(rows)


def test_scoring_is_deterministic_and_covers_every_airport_day_of_the_year():
    # five airports: 4 chunks with one worker, 5 with two (the pooled forest must not see its
    # rows in an order that depends on the chunks)
    gold = gold_frame(origins=("AAA", "BBB", "CCC", "DDD", "EEE"))
    a, _ = score_frame(gold, 2018, P.replace(n_jobs=2))
    b, _ = score_frame(gold, 2018, P.replace(n_jobs=1))
    assert len(a) == 5 * 365 and a["id"].is_unique and (a["year"] == 2018).all()
    pd.testing.assert_frame_equal(a, b)


def test_an_airport_with_too_little_history_is_kept_and_marked():
    gold = gold_frame()
    tiny = gold[(gold["origin"] == "AAA") & (gold["year"] == 2018)].head(10).copy()
    tiny["origin"] = "TNY"
    tiny["id"] = "TNY" + pd.to_datetime(tiny["fl_date"]).dt.strftime("%Y%m%d")
    scored, _ = score_frame(pd.concat([gold, tiny]), 2018, P.replace(n_jobs=1))
    rows = scored[scored["origin"] == "TNY"]
    assert len(rows) == 10
    assert (rows["history_status"] == "insufficient_history").all()
    assert not rows["is_anomaly"].any() and (rows["severity"] == "none").all()


def test_a_failing_detector_is_isolated_to_its_airport(monkeypatch):
    def broken(s, p, inputs):
        if s.origin == "BBB":
            raise np.linalg.LinAlgError("LU decomposition error")
        return detectors.arima(s, p, inputs)

    monkeypatch.setitem(detectors.DETECTORS, "arima",
                        dataclasses.replace(detectors.DETECTORS["arima"], run=broken))
    gold = gold_frame()
    scored, problems = score_frame(gold, 2018, P.replace(n_jobs=1))
    errors = [(p["origin"], p["detector"]) for p in problems if p["level"] == "error"]
    assert errors == [("BBB", "arima")]
    assert "LinAlgError" in problems[0]["message"]
    assert (scored["history_status"] == "scored").all()
    assert scored["delay_score"].notna().all()
    bbb = scored["origin"] == "BBB"
    assert scored.loc[bbb, "arima_score"].isna().all()
    assert scored.loc[~bbb, "arima_score"].notna().any()


def test_history_from_earlier_years_is_used():
    gold = gold_frame(years=(2017, 2018))
    series = AirportSeries.from_frame("AAA", gold[gold["origin"] == "AAA"], 2018)
    assert len(series) == 730 and series.target.sum() == 365 and not series.target[:365].any()


@pytest.mark.parametrize("rule", ["max", "l2"])
def test_the_ensemble_explains_itself(rule):
    gold = gold_frame(origins=("AAA",))
    day = gold.index[(gold["year"] == 2018)][150]
    gold.loc[day, ["mean_dep_delay", "delayed_15_flights"]] = [75.0, 100]
    scored, _ = score_frame(gold, 2018, P.replace(ensemble_rule=rule, n_jobs=1))
    hit = scored[scored["id"] == gold.loc[day, "id"]].iloc[0]
    assert hit["is_anomaly"] and hit["anomaly_kind"] == "delay"
    assert hit["anomaly_score"] >= 1.5 and hit["severity"] in ("medium", "high")
    assert hit["ensemble_rule"] == rule
    quiet = scored[~scored["is_anomaly"]]
    assert quiet["anomaly_kind"].isna().all() and (quiet["severity"] == "none").all()


def test_one_strong_signal_is_enough_and_two_near_ones_pass_together_under_l2():
    from ml.ensemble import MEMBERS, decide, strength_column

    frame = pd.DataFrame({"history_status": ["scored"] * 3})
    for name in MEMBERS:
        frame[strength_column(name)] = 0.0
    frame.loc[0, strength_column("cancel_wave")] = 1.2  # cancellations alone
    frame.loc[1, strength_column("seasonal_robust")] = 0.8  # a near delay signal ...
    frame.loc[1, strength_column("volume_drop")] = 0.8  # ... with a near volume collapse
    frame.loc[2, strength_column("seasonal_robust")] = 0.8  # two delay models: one evidence
    frame.loc[2, strength_column("arima")] = 0.9
    strongest = decide(frame, "max")
    assert strongest["is_anomaly"].tolist() == [True, False, False]
    assert strongest.loc[0, "anomaly_kind"] == "cancellation"
    euclid = decide(frame, "l2")
    assert euclid["is_anomaly"].tolist() == [True, True, False]
    assert euclid.loc[1, "anomaly_score"] == pytest.approx(np.hypot(0.8, 0.8))


def test_a_first_year_is_scored_on_its_own_days_and_says_so():
    gold = gold_frame(years=(2018,))
    day = gold.index[(gold["origin"] == "AAA")][5]  # early January: no history before it
    gold.loc[day, "mean_dep_delay"] = 80.0
    scored, _ = score_frame(gold, 2018, P.replace(n_jobs=1))
    assert (scored["history_status"] == "scored_in_year").all()
    assert scored.set_index("id").loc[gold.loc[day, "id"], "is_anomaly"]
    with_history, _ = score_frame(gold_frame(), 2018, P.replace(n_jobs=1))
    assert (with_history["history_status"] == "scored").all()


def hannan_rissanen_search_by_statsmodels(x, max_p, max_q):
    """The order search as it was, one statsmodels hannan_rissanen call per order: the reference
    that detectors._select_arma_order reproduces without statsmodels' per-call cost."""
    from statsmodels.tsa.arima.estimators.hannan_rissanen import hannan_rissanen

    best = None
    n = len(x)
    for ar in range(max_p + 1):
        for ma in range(max_q + 1):
            try:
                fit, _ = hannan_rissanen(x, ar_order=ar, ma_order=ma, demean=False)
            except (ValueError, np.linalg.LinAlgError):
                continue
            if not (fit.is_stationary and fit.is_invertible) or not fit.sigma2 > 0:
                continue
            aic = n * np.log(fit.sigma2) + 2 * (ar + ma + 1)
            if best is None or aic < best[0]:
                best = (aic, ar, ma, fit.params)
    if best is None:
        return 0, 0, np.array([np.nanvar(x)])
    return best[1], best[2], best[3]


def arma_series(phi, theta, days, seed, blank=()):
    """ARMA(len(phi), len(theta)) sample with the given days set to 0, as blanked days are."""
    from scipy.signal import lfilter

    rng = np.random.default_rng(seed)
    x = lfilter(np.r_[1.0, theta], np.r_[1.0, -np.asarray(phi)], rng.normal(0, 3, days + 100))
    x = x[100:]
    x[list(blank)] = 0.0
    return x


ARMA_CASES = {
    "ar1": ([0.7], [], ()),
    "arma11": ([0.6], [0.4], ()),
    "arma22": ([0.5, -0.3], [0.4, 0.3], ()),
    "white_noise": ([], [], ()),
    "blanked_days": ([0.6], [0.4], [*range(10, 40), *range(50, 420, 17)]),
    "near_unit_root": ([0.995], [], ()),
}


@pytest.mark.parametrize("max_pq", [2, 4])  # the scorer's and the original rule's grids
@pytest.mark.parametrize("days", [15, 60, 420])
@pytest.mark.parametrize("case", sorted(ARMA_CASES))
def test_the_arma_order_search_gives_statsmodels_orders_and_parameters(case, days, max_pq):
    phi, theta, blank = ARMA_CASES[case]
    for seed in range(2):
        x = arma_series(phi, theta, days, seed, [d for d in blank if d < days])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            expected = hannan_rissanen_search_by_statsmodels(x, max_pq, max_pq)
            got = detectors._select_arma_order(x, max_pq, max_pq)
        assert got[:2] == expected[:2], seed
        np.testing.assert_allclose(got[2], expected[2], rtol=1e-8, atol=0)


@pytest.mark.parametrize("x", [np.zeros(60), np.r_[np.zeros(30), 5.0, np.zeros(29)]])
def test_a_degenerate_arma_search_gives_statsmodels_result_and_warnings(x):
    def search(fn):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            found = fn(x, 2, 2)
        return found, {f"{w.category.__name__}: {w.message}" for w in caught}

    (ar, ma, params), messages = search(detectors._select_arma_order)
    (ar_ref, ma_ref, params_ref), messages_ref = search(hannan_rissanen_search_by_statsmodels)
    assert (ar, ma) == (ar_ref, ma_ref)
    np.testing.assert_allclose(params, params_ref, rtol=1e-8, atol=0)
    assert messages == messages_ref  # `arima` records them per airport


class _RecordingParams:
    """Params that note every field a detector reads."""

    def __init__(self, params: Params):
        self._params, self.read = params, set()

    def __getattr__(self, name):
        if name in {f.name for f in dataclasses.fields(Params)}:
            self.read.add(name)
        return getattr(self._params, name)


def test_every_detector_reads_exactly_the_params_it_declares():
    # The registry's `reads` is what ml.detectors.params reports per detector, so it must be
    # the truth: run each detector (the pooled forest included) and compare.
    delay, n, delayed, cancelled = weekly_series()
    delay[200], cancelled[150] = 70.0, 150
    series = make(delay, n, delayed, cancelled)
    registry = dict(detectors.DETECTORS, **detectors.ORIGINAL_DETECTORS)
    results = run(series)
    for name, detector in registry.items():
        p = _RecordingParams(P)
        det = detector.run(series, p, {n_: results[n_] for n_ in detector.needs})
        if name == "isolation_forest":
            detectors.isolation_forest_panel(det.fitted["features"], det.fitted["train"], p)
        assert p.read == set(detector.reads), (name, sorted(p.read))


def test_the_registry_names_labels_and_groups_every_detector():
    from ml.ensemble import EVIDENCE, GROUPS

    for name, d in detectors.DETECTORS.items():
        assert d.label and d.description.endswith("."), name
        assert d.group is None or d.group in EVIDENCE, name
    assert sorted(m for members in GROUPS.values() for m in members) == sorted(detectors.MEMBERS)
    assert len({d.label for d in detectors.DETECTORS.values()}) == len(detectors.DETECTORS)
    frame, _ = score_frame(gold_frame(origins=("AAA",), years=(2018,)), 2018, Params(n_jobs=1))
    for name in detectors.DETECTORS:
        assert frame[detectors.flag_column(name)].dtype == bool, name
    for name in detectors.MEMBERS:
        assert detectors.strength_column(name) in frame, name


def test_the_fast_row_median_is_numpys_nanmedian_bit_for_bit():
    from ml.baselines import median_by_group, nanmedian_rows

    rng = np.random.default_rng(7)
    for trial in range(200):
        rows, width = rng.integers(1, 50), rng.integers(1, 60)
        a = rng.normal(size=(rows, width)) * 10.0 ** rng.integers(-3, 4)
        if trial % 3 == 0:
            a = np.round(a)  # ties
        a[rng.random(a.shape) < rng.random()] = np.nan  # odd and even counts of known values
        a[rng.random(rows) < 0.1] = np.nan  # rows without a value
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # numpy's all-NaN warning
            expected = np.nanmedian(a, axis=1)
        np.testing.assert_array_equal(nanmedian_rows(a), expected)
        values, group = np.round(rng.normal(size=3 * rows), trial % 2), rng.integers(0, 7, 3 * rows)
        expected = [np.median(values[group == g]) if (group == g).any() else np.nan
                    for g in range(7)]
        np.testing.assert_array_equal(median_by_group(values, group, 7), expected)


def test_the_hannan_rissanen_filters_are_scipys_lfilter_bit_for_bit():
    from scipy.signal import lfilter

    rng = np.random.default_rng(3)
    for trial in range(300):
        a = np.r_[1.0, rng.uniform(-1.5, 1.5, trial % 5)]  # orders 0..4
        x = rng.normal(size=rng.integers(1, 500)) * 10.0 ** rng.integers(-3, 4)
        x[: rng.integers(0, 10)] = 0.0  # the recursion's zeros before `start`
        np.testing.assert_array_equal(detectors._all_pole_filter(a, x), lfilter([1.0], a, x))


def test_the_count_bisection_is_unchanged_by_its_hoisted_loop():
    """rate_at_score's loop is tail_score(mid * n, n, p0, rho) >= score with NaN read as 0."""
    from ml.counts import rate_at_score

    rng = np.random.default_rng(5)
    for trial in range(50):
        m = rng.integers(1, 200)
        n = rng.integers(0, 500, m).astype(float)
        p0, rho = rng.uniform(0.002, 0.95, m), [0.0, rng.uniform(0, 0.2)][trial % 2]
        for score in (6.0, 0.0, 60.0):
            lo, hi = p0.copy(), np.ones(m)
            for _ in range(18):
                mid = (lo + hi) / 2
                above = np.nan_to_num(tail_score(mid * n, n, p0, rho), nan=0.0) >= score
                hi, lo = np.where(above, mid, hi), np.where(above, lo, mid)
            np.testing.assert_array_equal(rate_at_score(score, n, p0, rho),
                                          np.where(n > 0, hi, np.nan))


def test_a_month_window_reaches_back_for_rarely_flown_airports():
    """Each airport's window starts `month_history_days` before the month, or at the earliest
    of its last `min_history_days` days with flights when that is earlier (all it has when it
    has fewer)."""
    days = pd.date_range("2017-01-01", "2018-06-30", freq="D")
    first = dt.date(2018, 6, 1)
    rows = []
    for origin, every in [("DLY", 1), ("RAR", 10), ("FEW", 100)]:
        for i, day in enumerate(days):
            rows.append({"origin": origin, "fl_date": day.date(),
                         "flights": 5 if i % every == 0 else 0})
    gold = pd.DataFrame(rows)
    window = month_window(gold, first, P)
    start = window.groupby("origin")["fl_date"].min()
    assert start["DLY"] == first - dt.timedelta(days=P.month_history_days)
    rare = gold[(gold["origin"] == "RAR") & (gold["flights"] > 0)]["fl_date"]
    assert start["RAR"] == sorted(rare)[-P.min_history_days]
    assert start["RAR"] < start["DLY"]
    assert start["FEW"] == dt.date(2017, 1, 1)  # 6 days with flights: all of its history
    # every airport keeps all its days from its start on
    for origin, since in start.items():
        kept = window[window["origin"] == origin]
        assert len(kept) == ((gold["origin"] == origin) & (gold["fl_date"] >= since)).sum()
