"""Which years and months of flights the project accepts, and how a set of years is written.

The one place that validates a year: the loaders, the exporter, the generator, the scorer, the
DAG's params and the local Airflow launcher all call these (tests/test_years.py).
"""

from __future__ import annotations

import re

from lakehouse.errors import UserError

# BTS's "Reporting Carrier On-Time Performance" table begins in October 1987 (docs/bts.md);
# the upper bound only catches typos such as 20118.
FIRST_YEAR = 1987
LAST_YEAR = 2100


def check_year(year: int, option: str = "--year") -> int:
    """`year` as an int, or a UserError naming `option` and the accepted range."""
    try:
        value = int(year)
    except (TypeError, ValueError):
        raise UserError(f"{option} {year!r} is not a year; pass e.g. {option} 2018") from None
    if not FIRST_YEAR <= value <= LAST_YEAR:
        raise UserError(f"{option} must be between {FIRST_YEAR} and {LAST_YEAR} (got {year})")
    return value


def check_month(month: int, option: str = "--month") -> int:
    """`month` (1-12) as an int, or a UserError naming `option`."""
    try:
        value = int(month)
    except (TypeError, ValueError):
        value = 0
    if not 1 <= value <= 12:
        raise UserError(f"{option} {month} is not a month; pass e.g. {option} 1 for January")
    return value


_RANGE = re.compile(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?")


def _parse_ranges(spec: str, option: str, examples: str, check) -> list[int]:
    values: set[int] = set()
    for part in spec.split(","):
        m = _RANGE.fullmatch(part)
        if not m or (m.group(2) and int(m.group(2)) < int(m.group(1))):
            raise UserError(f"{option} {spec!r}: expected {examples} (the lower bound of a "
                            "range first)")
        try:
            first, last = check(m.group(1), option), check(m.group(2) or m.group(1), option)
        except UserError as exc:
            raise UserError(f"{option} {spec!r}: expected {examples}; {exc}") from None
        values.update(range(first, last + 1))
    return sorted(values)


def parse_years(spec: str, option: str = "--years") -> list[int]:
    """`2009-2018`, `2012` or `2009,2011-2012` -> the years, oldest first, each checked."""
    return _parse_ranges(spec, option, "years like 2009-2018, 2012 or 2009,2011-2012", check_year)


def parse_months(spec: str, option: str = "--months") -> list[int]:
    """`1-3`, `7` or `1,4-6` -> the months, in order, each checked."""
    return _parse_ranges(spec, option, "months like 1-12, 7 or 1,4-6", check_month)
