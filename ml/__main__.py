"""`python -m ml score|evaluate|plot ...`"""

from __future__ import annotations

import argparse
import json
import sys

from lakehouse.cli import run_cli
from lakehouse.errors import UserError
from lakehouse.years import check_year, parse_years


def years_arg(spec: str) -> list[int]:
    try:
        return parse_years(spec)
    except UserError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m ml", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    score = sub.add_parser("score", help="score a year of gold.agg_dep_delay_by_date into ml.*")
    which = score.add_mutually_exclusive_group(required=True)
    which.add_argument("--year", type=int)
    which.add_argument("--years", type=years_arg, metavar="FIRST-LAST",
                       help="re-score a range oldest first (e.g. 2009-2018), so every year is "
                       "scored with the earlier years of gold as history")
    score.add_argument("--month", type=int, choices=range(1, 13), metavar="M",
                       help="with --year: score only this month (1-12) on its trailing history "
                       "and upsert only its rows")
    score.add_argument("--json", action="store_true",
                       help="print one JSON summary object (one line per year with --years)")

    ev = sub.add_parser(
        "evaluate",
        help="every detector and ensemble rule on generated years the pipeline built and "
        "scored and on real flights (2001, `make real-data`), side by side",
    )
    ev.add_argument("--labelled", type=years_arg, metavar="YEARS",
                    help="generated years with labelled disruptions, already built and scored "
                    "(make ml-evaluate builds 2016-2018 through the DAG), e.g. 2017")
    ev.add_argument("--clean", type=years_arg, metavar="YEARS",
                    help="generated years without disruptions (--no-disruptions), already "
                    "built and scored: the false-alarm rate, e.g. 2018")
    ev.add_argument("--no-real", action="store_true", help="the generated years only")
    ev.add_argument("--real-path", help="flights-3m.parquet (default .local/real/, `make real-data`)")
    ev.add_argument("--tune", action="store_true",
                    help="grid-search the delay parameters on real January-March (and "
                    "--tune-generated-year) instead of evaluating")
    ev.add_argument("--tune-generated-year", type=int,
                    help="a generated labelled year already in gold to include in --tune")
    ev.add_argument("--markdown", help="also write the table as Markdown to this file")
    ev.add_argument("--json", action="store_true")

    plot = sub.add_parser("plot", help="PNG of one airport's year: series, band, flagged days")
    plot.add_argument("--origin", required=True)
    plot.add_argument("--year", type=int, required=True)
    plot.add_argument("--out", help="output PNG (default ml_<ORIGIN>_<YEAR>.png)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "score":
        from ml.score import score_year

        if args.month is not None and args.year is None:
            raise UserError("--month goes with --year (one month of one year)")
        if args.year is not None:
            check_year(args.year)
        # Oldest first: a year's history is the earlier years of gold (docs/ml.md).
        for year in args.years or [args.year]:
            try:
                summary = score_year(year, month=args.month)
            except UserError as exc:
                raise UserError(f"year {year}: {exc}") from exc
            except Exception:
                print(f"error: scoring stopped at year {year}", file=sys.stderr)
                raise
            if args.json:
                print(json.dumps(summary), flush=True)
            else:
                what = year if args.month is None else f"{year}-{args.month:02d}"
                print(f"scored {summary['airport_days']} airport-days of {what} "
                      f"({summary['airports']} airports): {summary['anomalies']} anomalies, "
                      f"{summary['insufficient_history']} with insufficient history, "
                      f"{summary['failures']} detector failures, {summary['seconds']} s "
                      f"(run {summary['run_id']})", flush=True)
        return 0
    if args.command == "evaluate":
        from ml.evaluate import cli_evaluate

        return cli_evaluate(args)
    from ml.plot import plot_airport

    out = args.out or f"ml_{args.origin.upper()}_{args.year}.png"
    print(plot_airport(args.origin.upper(), args.year, out))
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
