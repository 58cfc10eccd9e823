"""lakehouse.years: the one check of a year and a month, and the one parser of year/month sets."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from lakehouse.errors import UserError
from lakehouse.years import (
    FIRST_YEAR,
    LAST_YEAR,
    check_month,
    check_year,
    parse_months,
    parse_years,
)


@pytest.mark.parametrize("year", [FIRST_YEAR, 2018, "2019", LAST_YEAR])
def test_check_year_accepts_the_range(year):
    assert check_year(year) == int(year)


@pytest.mark.parametrize("year", [FIRST_YEAR - 1, LAST_YEAR + 1, 20118, "x", None])
def test_check_year_names_the_option_and_the_range(year):
    with pytest.raises(UserError, match=r"^--year "):
        check_year(year)
    with pytest.raises(UserError, match="LAKEHOUSE_YEARS"):
        check_year(year, "LAKEHOUSE_YEARS")


@pytest.mark.parametrize("month", [0, 13, "x", None])
def test_check_month_rejects(month):
    with pytest.raises(UserError, match="is not a month; pass e.g. --month 1"):
        check_month(month)


@pytest.mark.parametrize(("text", "expected"), [
    ("2009-2011,2015", [2009, 2010, 2011, 2015]), ("2012", [2012]), (" 2010 - 2011 ", [2010, 2011]),
    ("2011,2009", [2009, 2011]),
])
def test_parse_years(text, expected):
    assert parse_years(text) == expected


@pytest.mark.parametrize("text", ["2018-2009", "2009-x", "", "1492", "2009,,2010"])
def test_parse_years_rejects_with_examples(text):
    with pytest.raises(UserError, match=r"expected years like 2009-2018"):
        parse_years(text)


@pytest.mark.parametrize(("text", "expected"), [("1-3", [1, 2, 3]), ("7", [7]), ("1,4-5", [1, 4, 5])])
def test_parse_months(text, expected):
    assert parse_months(text) == expected


@pytest.mark.parametrize("text", ["0", "13", "3-1", "a", "1-2-3"])
def test_parse_months_rejects(text):
    with pytest.raises(UserError, match="expected months like"):
        parse_months(text)


def test_dbt_accepts_the_same_years():
    """dbt checks its year var against its own project vars; they must be these bounds."""
    project = yaml.safe_load(
        (Path(__file__).parents[1] / "dbt_project/dbt_project.yml").read_text())
    assert (project["vars"]["first_year"], project["vars"]["last_year"]) == (FIRST_YEAR, LAST_YEAR)
