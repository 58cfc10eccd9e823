"""`python -m loaders ingest PATH`: the user's real yearly files into the lake's bronze zone.

PATH is the Kaggle download (one zip holding `2009.csv` … `2018.csv`, at its top or in a
sub-folder), a folder of such files, or one `YYYY.csv`; or BTS monthly files as TranStats
ships them (`On_Time_Reporting_Carrier_On_Time_Performance_1987_present_{year}_{month}.zip`,
each holding one CSV), a folder of those zips, or one such CSV. Each file is streamed straight
from its zip (no extraction to disk) to `01_bronze/{year}.csv` (a Kaggle year) or
`01_bronze/bts/{year}/{month:02d}.csv` (a BTS month) through `Lake.write_stream`, which
publishes it only when every byte arrived (local temp file + rename; S3 multipart upload,
aborted on failure), byte for byte as the download holds it: the loader copes with BOMs, CRLF
and damaged lines, and keeps a record of every line it rejects.

Before anything is written, every selected file is checked: its format is the one its header
announces (`FORMATS`, never the file name), and its first data lines' dates must fall in the
year (or month) its name says. Then, per file: absent -> written; present and
byte-identical (size, then SHA-256) -> skipped; present and different -> refused unless
`--replace`. Each written object gets a provenance record (`loaders/provenance.py`).
"""

from __future__ import annotations

import contextlib
import csv
import json
import re
import sys
import time
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from lakehouse.errors import UserError
from lakehouse.lake import Lake, labels_key, lake_write_errors, period_bronze_key
from lakehouse.years import parse_years
from loaders import bts_format
from loaders.bronze_format import HEADER, UTF8_BOM, BronzeFormatError, check_header
from loaders.bronze_lines import MAX_LINE_BYTES
from loaders.provenance import (
    INGESTED,
    BronzeState,
    HashingReader,
    bronze_state,
    sha256_of,
    write_record,
)

YEAR_FILE = re.compile(r"(\d{4})\.csv", re.IGNORECASE)
CHECKED_LINES = 100  # data lines whose dates must agree with the file name
COPY_CHUNK = 1 << 20


# --- input formats: one small definition each, recognised by the header ----------------------

@dataclass(frozen=True)
class SourceFormat:
    name: str
    monthly: bool                            # one file a month (else one a year)
    matches: Callable[[bytes], bool]         # the header line (no BOM, no line ending)
    looks_like: Callable[[bytes], bool]      # close enough that its check should explain it
    check_header: Callable[[bytes, str], None]  # raises the format's own one-line error
    row_date: Callable[[bytes], str | None]  # a data line's flight date (YYYY-MM-DD), if any


_KAGGLE_HEADER = ",".join(HEADER).encode()
_LEADING_DATE = re.compile(rb"(\d{4}-\d{2}-\d{2}),")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _bts_row_date(line: bytes) -> str | None:
    try:
        fields = next(csv.reader([line.decode("utf-8").rstrip("\r\n")]), [])
    except (UnicodeDecodeError, csv.Error):
        return None
    if len(fields) > 5 and _DATE.fullmatch(fields[5]):
        return fields[5]
    return None


KAGGLE_YEARLY = SourceFormat(
    name="Kaggle yearly",
    monthly=False,
    matches=lambda header: header == _KAGGLE_HEADER,
    looks_like=lambda header: True,
    check_header=check_header,
    row_date=lambda line: (m.group(1).decode() if (m := _LEADING_DATE.match(line)) else None),
)
BTS_MONTHLY = SourceFormat(
    name="BTS monthly",
    monthly=True,
    matches=bts_format.matches,
    looks_like=bts_format.looks_like,
    check_header=bts_format.check_header,
    row_date=_bts_row_date,
)
# A header no format recognises is explained by the first whose `looks_like` accepts it.
FORMATS: tuple[SourceFormat, ...] = (KAGGLE_YEARLY, BTS_MONTHLY)


def detect_format(header: bytes, label: str) -> SourceFormat:
    for fmt in FORMATS:
        if fmt.matches(header):
            return fmt
    closest = next((f for f in reversed(FORMATS) if f.looks_like(header)), FORMATS[0])
    closest.check_header(header, label)
    raise BronzeFormatError(f"{label}: unrecognised header")  # check_header accepted it: cannot happen


# --- where the yearly files are ---------------------------------------------------------------

@dataclass(frozen=True)
class Member:
    label: str      # how errors name it: `archive.zip:archive/2009.csv` or the file's path
    year: int
    size: int       # uncompressed bytes
    open: Callable[[], BinaryIO]
    month: int | None = None  # named as a BTS month

    @property
    def period(self) -> int | str:
        """How summaries list it: 2009 for a year, "2019-01" for a month."""
        return self.year if self.month is None else f"{self.year}-{self.month:02d}"


class _Guarded:
    """Reads a member, turning a damaged archive's errors into one actionable line."""

    _DAMAGED = (zipfile.BadZipFile, zlib.error, EOFError, OSError)

    def __init__(self, member: Member):
        self.member = member
        self.offset = 0
        self._fh = self._call(member.open)

    def _call(self, fn, *args):
        try:
            return fn(*args)
        except NotImplementedError as exc:  # e.g. Deflate64 from some zip tools
            raise UserError(f"{self.member.label}: {exc}; extract the archive and pass the "
                            "folder instead") from None
        except (PermissionError, FileNotFoundError) as exc:
            raise UserError(f"{self.member.label}: cannot read it ({exc.strerror}); check the "
                            "path and its permissions") from None
        except self._DAMAGED as exc:
            raise UserError(
                f"{self.member.label}: reading failed at byte {self.offset:,} of "
                f"{self.member.size:,} ({exc}): the file is damaged or incomplete; download it "
                f"again (nothing was written for {self.member.period})") from None

    def read(self, n: int = -1) -> bytes:
        data = self._call(self._fh.read, n)
        self.offset += len(data)
        return data

    def readline(self, limit: int = -1) -> bytes:
        data = self._call(self._fh.readline, limit)
        self.offset += len(data)
        return data

    def close(self) -> None:
        with contextlib.suppress(*self._DAMAGED):
            self._fh.close()


@contextlib.contextmanager
def _reading(member: Member) -> Iterator[_Guarded]:
    fh = _Guarded(member)
    try:
        yield fh
    finally:
        fh.close()


def _period_of(name: str) -> tuple[int, int | None] | None:
    """(year, None) for `YYYY.csv`, (year, month) for a BTS month's CSV, else None."""
    base = Path(name).name
    if m := YEAR_FILE.fullmatch(base):
        return int(m.group(1)), None
    if (m := bts_format.CSV_NAME.fullmatch(base)) and 1 <= int(m.group(2)) <= 12:
        return int(m.group(1)), int(m.group(2))
    return None


def _zip_members(path: Path, stack: contextlib.ExitStack) -> list[Member]:
    try:
        archive = stack.enter_context(zipfile.ZipFile(path))
    except (zipfile.BadZipFile, OSError) as exc:
        raise UserError(f"{path}: not a readable zip archive ({exc}); download it again, or "
                        "extract it and pass the folder") from None
    members = []
    for info in archive.infolist():
        parts = Path(info.filename).parts
        if info.is_dir() or "__MACOSX" in parts or parts[-1].startswith("."):
            continue
        period = _period_of(info.filename)
        if period is not None:
            members.append(Member(f"{path}:{info.filename}", period[0], info.file_size,
                                  lambda info=info: archive.open(info), period[1]))
    return members


def _file_member(path: Path) -> Member:
    period = _period_of(path.name)
    if period is None:
        raise UserError(f"{path}: cannot tell the year from the file name; name it YYYY.csv "
                        "(e.g. 2009.csv) as in the Kaggle download, or keep the name BTS gives "
                        "a month (On_Time_Reporting_Carrier_On_Time_Performance_(1987_present)_"
                        "2019_1.csv)")
    return Member(str(path), period[0], path.stat().st_size, lambda: open(path, "rb"), period[1])


def _is_bts_zip(path: Path) -> bool:
    return bool(bts_format.ZIP_NAME.fullmatch(path.name))


def find_members(path: Path, stack: contextlib.ExitStack) -> list[Member]:
    """The yearly files PATH holds, by year; errors when it holds none or a year twice."""
    if not path.exists():
        raise UserError(f"{path} does not exist; pass the Kaggle zip, a folder of YYYY.csv files "
                        "or one YYYY.csv")
    if path.is_dir():
        files = [p for p in sorted(path.rglob("*")) if p.is_file()
                 and not any(part.startswith(".") for part in p.relative_to(path).parts)]
        members = [_file_member(p) for p in files if _period_of(p.name) is not None]
        for p in files:
            if _is_bts_zip(p):
                members += _zip_members(p, stack)
    elif zipfile.is_zipfile(path):
        members = _zip_members(path, stack)
    elif path.suffix.lower() == ".zip":
        raise UserError(f"{path}: not a readable zip archive; download it again, or extract it "
                        "and pass the folder")
    else:
        members = [_file_member(path)]
    if not members:
        raise UserError(f"{path} holds no YYYY.csv files (the Kaggle download has 2009.csv … "
                        "2018.csv, possibly in a sub-folder) and no BTS monthly files "
                        "(On_Time_Reporting_Carrier_On_Time_Performance_1987_present_2019_1.zip)")
    by_period: dict[tuple[int, int], Member] = {}
    for m in members:
        key = (m.year, m.month or 0)
        if key in by_period:
            raise UserError(f"{path} holds {m.period} twice ({by_period[key].label} and "
                            f"{m.label}); keep one of them")
        by_period[key] = m
    return [by_period[k] for k in sorted(by_period)]


# --- checks -----------------------------------------------------------------------------------

def check_member(member: Member) -> SourceFormat:
    """The member's format, after checking its header and its first data lines' year."""
    with _reading(member) as fh:
        first = fh.readline(MAX_LINE_BYTES)
        if not first:
            raise BronzeFormatError(f"{member.label} is empty: expected a CSV header line, then "
                                    "one flight per line")
        fmt = detect_format(first.removeprefix(UTF8_BOM).rstrip(b"\n").removesuffix(b"\r"),
                            member.label)
        if fmt.monthly and member.month is None:
            raise UserError(f"{member.label} is a {fmt.name} file (by its header) but its name "
                            "does not say which month it holds; keep the name BTS gives it "
                            "(On_Time_Reporting_Carrier_On_Time_Performance_(1987_present)_"
                            f"{member.year}_1.csv for January)")
        if not fmt.monthly and member.month is not None:
            raise UserError(f"{member.label} is named as a BTS month but its header is the "
                            f"{fmt.name} format's; rename it YYYY.csv")
        expected = member.period if fmt.monthly else str(member.year)
        dated = 0
        for line_no in range(2, CHECKED_LINES + 2):
            line = fh.readline(MAX_LINE_BYTES)
            if not line:
                break
            date = fmt.row_date(line)
            if date is None:
                continue
            if not date.startswith(f"{expected}-"):
                raise UserError(
                    f"{member.label} line {line_no}: flight date {date} is not in {expected}, "
                    f"the {'month' if fmt.monthly else 'year'} its name says; rename the file "
                    f"after the {'month' if fmt.monthly else 'year'} it holds or download it "
                    f"again")
            dated += 1
    if not dated:
        raise UserError(f"{member.label}: none of its first {CHECKED_LINES} data lines has "
                        f"a flight date (YYYY-MM-DD); expected flights of {expected}")
    return fmt


# --- ingest -----------------------------------------------------------------------------------

@dataclass
class _Plan:
    member: Member
    fmt: SourceFormat
    state: BronzeState

    @property
    def key(self) -> str:
        return period_bronze_key(self.member.year, self.member.month)


def _conflict(lake: Lake, plans: list[_Plan], detail: str) -> UserError:
    years = ", ".join(str(p.member.period) for p in plans)
    uris = ", ".join(lake.uri(p.key) for p in plans)
    generated = [p for p in plans if p.state.is_generated]
    what = "generated sample data" if len(generated) == len(plans) else "different data"
    return UserError(f"{uris} already hold{'s' if len(plans) == 1 else ''} {what} ({detail}); "
                     f"nothing was overwritten: pass --replace to replace {years} with "
                     f"{', '.join(p.member.label for p in plans)}")


def _progress_bar(total: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc="ingest",
                file=sys.stderr, disable=not (enabled and sys.stderr.isatty()), leave=False)


def _ingest_one(lake: Lake, plan: _Plan, replace: bool, bar) -> dict:
    member, state, key = plan.member, plan.state, plan.key
    started = time.perf_counter()
    bar.set_description(f"ingest {member.period}")
    status = "replaced" if state.exists else "written"
    if state.exists and state.info.size == member.size:
        with _reading(member) as fh:
            incoming = sha256_of(fh, bar.update)
        if state.record is not None:
            existing = state.record["sha256"]
        else:
            with lake.open_read(key) as fh:
                existing = sha256_of(fh)
        if incoming == existing:
            if state.origin != INGESTED:
                write_record(lake, member.year, INGESTED, incoming, month=member.month,
                             source=member.label)
            return {"year": member.year, "month": member.month, "period": member.period,
                    "status": "skipped", "bytes": member.size,
                    "sha256": incoming, "uri": lake.uri(key), "source": member.label,
                    "seconds": round(time.perf_counter() - started, 2)}
        if not replace:
            raise _conflict(lake, [plan], "same size, other SHA-256")
        bar.total += member.size  # a second pass: the copy
        bar.refresh()
    with _reading(member) as fh, lake_write_errors(lake, key):
        reader = HashingReader(fh, bar.update)
        lake.write_stream(key, reader)
    sha256 = reader.sha256.hexdigest()
    if reader.bytes != member.size:  # zipfile checks this too; a plain file may have changed
        raise UserError(f"{member.label}: read {reader.bytes:,} bytes, expected {member.size:,} "
                        f"(was it modified while being read?); run the command again")
    with lake_write_errors(lake, key):
        write_record(lake, member.year, INGESTED, sha256, month=member.month,
                     source=member.label)
        if state.is_generated and member.month is None:
            lake.delete(labels_key(member.year))  # they described the generated year
    return {"year": member.year, "month": member.month, "period": member.period,
            "status": status, "bytes": member.size, "sha256": sha256,
            "uri": lake.uri(key), "source": member.label,
            "seconds": round(time.perf_counter() - started, 2)}


def ingest(path: str | Path, years: Iterable[int] | None = None, replace: bool = False,
           lake: Lake | None = None, progress: bool = False) -> dict:
    """Copy the yearly files at `path` into the lake's bronze zone; returns the summary."""
    started = time.perf_counter()
    lake = lake or Lake.from_env()
    path = Path(path).expanduser()
    with contextlib.ExitStack() as stack:
        members = find_members(path, stack)
        if years is not None:
            years = set(years)
            missing = sorted(years - {m.year for m in members})
            if missing:
                raise UserError(f"{path} holds no file for {', '.join(map(str, missing))} (it "
                                f"holds {', '.join(str(m.year) for m in members)}); check --years")
            members = [m for m in members if m.year in years]
        plans = [_Plan(m, check_member(m), bronze_state(lake, m.year, m.month))
                 for m in members]
        if not replace:
            differing = [p for p in plans if p.state.exists and p.state.info.size != p.member.size]
            if differing:
                raise _conflict(lake, differing, "another size")
        bar = stack.enter_context(_progress_bar(sum(m.size for m in members), progress))
        results = [_ingest_one(lake, plan, replace, bar) for plan in plans]
    seconds = time.perf_counter() - started
    total = sum(r["bytes"] for r in results)

    def of(status: str) -> list[int | str]:
        return [r["period"] for r in results if r["status"] == status]

    return {
        "source": str(path), "lake": lake.url, "years": [r["period"] for r in results],
        "written": of("written"), "replaced": of("replaced"), "skipped": of("skipped"),
        "bytes": total,
        "bytes_written": sum(r["bytes"] for r in results if r["status"] != "skipped"),
        "seconds": round(seconds, 2), "mb_per_second": round(total / 1e6 / max(seconds, 1e-9), 1),
        "per_year": results,
    }


def cli_ingest(args) -> int:
    years = parse_years(args.years) if args.years else None
    summary = ingest(args.path, years=years, replace=args.replace, progress=not args.json)
    if args.json:
        print(json.dumps(summary))
        return 0
    for r in summary["per_year"]:
        print(f"{r['period']!s:<7}  {r['status']:<8} {r['bytes'] / 1e6:9.1f} MB {r['seconds']:7.1f} s  "
              f"{r['uri']}")
    n = len(summary["years"])
    print(f"{n} file{'s' if n != 1 else ''} from {summary['source']} into {summary['lake']}: "
          f"{len(summary['written'])} written, {len(summary['replaced'])} replaced, "
          f"{len(summary['skipped'])} skipped (identical); {summary['bytes'] / 1e6:,.1f} MB in "
          f"{summary['seconds']} s ({summary['mb_per_second']} MB/s)")
    return 0
