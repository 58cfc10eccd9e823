"""`python -m loaders ingest|generate|load|export ...`"""

from __future__ import annotations

import argparse
import sys

from lakehouse.cli import run_cli


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m loaders", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    ing = sub.add_parser("ingest", help="copy the Kaggle download (the zip, a folder or one YYYY.csv) "
                         "into LAKE_URL/01_bronze/")
    ing.add_argument("path", help="the downloaded zip, a folder of YYYY.csv files, or one YYYY.csv")
    ing.add_argument("--years", help="only these years, e.g. 2009-2018, 2012 or 2009,2011-2012")
    ing.add_argument("--replace", action="store_true",
                     help="overwrite bronze objects that hold different data (real or generated)")
    ing.add_argument("--json", action="store_true", help="print one JSON summary object, no progress bar")

    demo = sub.add_parser("demo-year", help="print YEAR if the generator may write it, else the "
                          "first later year holding no real data")
    demo.add_argument("--year", type=int, required=True)

    gen = sub.add_parser("generate", help="write a synthetic Kaggle-format year to LAKE_URL/01_bronze/Y.csv")
    gen.add_argument("--year", type=int, required=True)
    gen.add_argument("--rows", type=int, default=7_200_000, help="data lines (default %(default)s, a real year)")
    gen.add_argument("--seed", type=int, default=42)
    gen.add_argument("--airports", type=int, default=None,
                     help="only the N busiest airports, flying to each other (default: all 365)")
    gen.add_argument("--no-disruptions", action="store_true", help="a clean year: inject no disruption days")
    gen.add_argument("--format", choices=("kaggle", "bts"), default="kaggle",
                     help="kaggle: one file 01_bronze/Y.csv; bts: the same flights as BTS monthly "
                          "files 01_bronze/bts/Y/MM.csv (default %(default)s)")
    gen.add_argument("--months", help="with --format bts: only these months, e.g. 1-3, 7 or 1,4-6")
    gen.add_argument("--json", action="store_true", help="print a JSON summary")

    load = sub.add_parser("load", help="stream LAKE_URL/01_bronze/Y.csv into staging.flights")
    load.add_argument("--year", type=int, required=True)
    load.add_argument("--month", type=int,
                      help="one BTS month, LAKE_URL/01_bronze/bts/Y/MM.csv (only its rows are replaced)")
    load.add_argument("--replace-year", action="store_true",
                      help="with --month: drop the year's rows loaded from a yearly file first")
    load.add_argument("--json", action="store_true", help="print one JSON summary object")

    exp = sub.add_parser("export", help="write the year's silver and gold as Parquet to the lake")
    exp.add_argument("--year", type=int, required=True)
    exp.add_argument("--month", type=int,
                     help="only this month of the year (02_silver/year/Y/month/MM/...; docs/bts.md)")
    exp.add_argument("--json", action="store_true", help="print a JSON summary")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "ingest":
        from loaders.ingest import cli_ingest

        return cli_ingest(args)
    if args.command == "demo-year":
        from loaders.provenance import cli_demo_year

        return cli_demo_year(args)
    if args.command == "generate":
        from loaders.generate import cli_generate

        return cli_generate(args)
    if args.command == "load":
        from loaders.load import cli_load

        return cli_load(args)
    from loaders.export import cli_export

    return cli_export(args)


if __name__ == "__main__":
    sys.exit(run_cli(main))
