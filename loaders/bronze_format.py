"""The bronze file format: the Kaggle airline delay header and its staging column names."""

from __future__ import annotations

from lakehouse.errors import UserError

# Exactly the header of the Kaggle "Airline Delay and Cancellation Data, 2009-2018" files.
HEADER: tuple[str, ...] = (
    "FL_DATE", "OP_CARRIER", "OP_CARRIER_FL_NUM", "ORIGIN", "DEST", "CRS_DEP_TIME", "DEP_TIME",
    "DEP_DELAY", "TAXI_OUT", "WHEELS_OFF", "WHEELS_ON", "TAXI_IN", "CRS_ARR_TIME", "ARR_TIME",
    "ARR_DELAY", "CANCELLED", "CANCELLATION_CODE", "DIVERTED", "CRS_ELAPSED_TIME",
    "ACTUAL_ELAPSED_TIME", "AIR_TIME", "DISTANCE", "CARRIER_DELAY", "WEATHER_DELAY",
    "NAS_DELAY", "SECURITY_DELAY", "LATE_AIRCRAFT_DELAY", "Unnamed: 27",
)
FIELDS = len(HEADER)
DELIMITER = b","

UTF8_BOM = b"\xef\xbb\xbf"


def staging_column(name: str) -> str:
    """`FL_DATE` -> `fl_date`, `Unnamed: 27` -> `unnamed_27` (the staging.flights names)."""
    return name.lower().replace(": ", "_").replace(" ", "_")


STAGING_COLUMNS: tuple[str, ...] = tuple(staging_column(h) for h in HEADER)


class BronzeFormatError(UserError):
    """The bronze object is not a file of the expected format; nothing was loaded."""


def check_header(raw: bytes, uri: str) -> None:
    """Raise BronzeFormatError naming the missing/unknown columns unless `raw` is HEADER.

    `raw` is the first line without its line ending and without a UTF-8 BOM.
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BronzeFormatError(
            f"{uri}: the header line is not UTF-8 text (is the file compressed or UTF-16?); "
            f"expected the CSV header {','.join(HEADER)}"
        ) from None
    got = text.split(",")
    if tuple(got) == HEADER:
        return
    problems = header_problems(got, HEADER)
    raise BronzeFormatError(
        f"{uri}: unexpected header: {'; '.join(problems)}. Expected the Kaggle airline delay "
        f"format, exactly: {','.join(HEADER)}"
    )


def header_problems(got: list[str], expected: tuple[str, ...],
                    needed: set[str] | frozenset[str] = frozenset()) -> list[str]:
    """What is wrong with header `got` against `expected`, for an error message: missing columns
    (saying which of them the project reads, `needed`), unknown and duplicated ones, or else
    the order. Every input format's header check explains itself with this."""
    missing = [c for c in expected if c not in got]
    unknown = [g for g in got if g not in expected]
    duplicated = sorted({g for g in got if got.count(g) > 1})
    problems = []
    if missing:
        used = [c for c in missing if c in needed]
        problems.append(f"missing columns {', '.join(missing)}"
                        + (f" (the project needs {', '.join(used)})" if used else ""))
    if unknown:
        problems.append(f"unknown columns {', '.join(repr(u) for u in unknown)}")
    if duplicated:
        problems.append(f"duplicated columns {', '.join(duplicated)}")
    if not problems:
        problems.append("the columns are in a different order")
    return problems
