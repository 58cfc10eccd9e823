"""Rebuild seeds/airports.csv from the `airportsdata` PyPI package (run after upgrading it).

Keeps airports with an IATA code in the US and the territories the BTS data covers, so the
relationships test gold.agg_dep_delay_by_date.origin -> airports.iata can find them.

    .venv/bin/python dbt_project/scripts/build_airports_seed.py
"""

from __future__ import annotations

import csv
from pathlib import Path

import airportsdata

# BTS on-time data covers the 50 states plus these territories (e.g. SJU, STT, GUM).
COUNTRIES = {"US", "PR", "VI", "GU", "AS", "MP"}
SEED = Path(__file__).resolve().parents[1] / "seeds" / "airports.csv"
COLUMNS = ["iata", "name", "city", "state", "country", "latitude", "longitude", "timezone"]


def rows() -> list[dict]:
    out = []
    for code, ap in airportsdata.load("IATA").items():
        if ap["country"] not in COUNTRIES or not code:
            continue
        out.append({
            "iata": code,
            "name": ap["name"],
            "city": ap["city"],
            "state": ap["subd"],
            "country": ap["country"],
            "latitude": ap["lat"],
            "longitude": ap["lon"],
            "timezone": ap["tz"],
        })
    return sorted(out, key=lambda r: r["iata"])


def main() -> None:
    data = rows()
    with open(SEED, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(data)
    print(f"wrote {len(data)} airports to {SEED} (airportsdata {airportsdata.__version__})")


if __name__ == "__main__":
    main()
