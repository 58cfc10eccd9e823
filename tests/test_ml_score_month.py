"""`python -m ml score --year Y --month M`: one month scored on its trailing history, only its
rows upserted (real PostgreSQL, the real scorer on generated gold rows)."""

from __future__ import annotations

import pandas as pd
import pytest

from lakehouse.errors import UserError
from ml.params import Params
from ml.score import score_year
from tests.test_ml_score import gold, table  # noqa: F401  (gold is a fixture)

VOLATILE = ["run_id", "scored_at"]


def month_rows(frame: pd.DataFrame, month: int) -> pd.DataFrame:
    keep = [d.month == month for d in pd.to_datetime(frame["fl_date"])]
    return frame[keep].reset_index(drop=True)


def test_a_month_upserts_only_its_rows_from_trailing_history(pg_conn, gold):  # noqa: F811
    score_year(2017, Params(n_jobs=1, history_years=0))
    score_year(2018, Params(n_jobs=1))
    year_before = table(pg_conn, 2018)
    summary = score_year(2018, Params(n_jobs=1), month=3)
    assert summary["month"] == 3 and summary["airport_days"] == 3 * 31
    after = table(pg_conn, 2018)
    assert len(after) == 3 * 365
    # the other months are untouched, March is this run's
    others = after[[d.month != 3 for d in pd.to_datetime(after["fl_date"])]]
    before_others = year_before[[d.month != 3 for d in pd.to_datetime(year_before["fl_date"])]]
    pd.testing.assert_frame_equal(others.reset_index(drop=True),
                                  before_others.reset_index(drop=True))
    assert (month_rows(after, 3)["run_id"].astype(str) == summary["run_id"]).all()
    assert pg_conn.execute("select month, airport_days from ml.model_runs "
                           "where run_id = %s", (summary["run_id"],)).fetchone() == (3, 93)
    # trailing history only: the days after March do not change March's scores
    march = month_rows(after, 3).drop(columns=VOLATILE)
    pg_conn.execute("delete from gold.agg_dep_delay_by_date "
                    "where year = 2018 and fl_date >= '2018-04-01'")
    score_year(2018, Params(n_jobs=1), month=3)
    pd.testing.assert_frame_equal(month_rows(table(pg_conn, 2018), 3).drop(columns=VOLATILE),
                                  march)


def test_a_month_without_gold_is_a_clear_error(pg_conn, gold):  # noqa: F811
    pg_conn.execute("delete from gold.agg_dep_delay_by_date "
                    "where year = 2018 and fl_date >= '2018-12-01'")
    with pytest.raises(UserError, match=r"no rows for 2018-12: .*--year 2018 --month 12"):
        score_year(2018, Params(n_jobs=1), month=12)
