"""Split a streamed BTS monthly CSV into COPY-ready CSV rows of the staging columns and
rejected lines.

A BTS line has 110 fields, quoted text (with commas inside, `"New York, NY"`) and bare
numbers, so it is parsed by the csv module (C), a whole block of lines at a time; the 27
fields the project uses are picked by index (`bts_format.SOURCE_INDEX`) and written back as
CSV for `COPY ... (format csv)`, which keeps any value exactly as it was. A line is rejected,
with its number and a reason, when it is not UTF-8, holds a NUL byte, has unbalanced quotes
or does not have 110 fields; only a block holding such a line is parsed line by line.

Line numbers are the month's data lines (1-based) plus `line_base`
(`bts_format.month_lines`), so a month's rows keep a line_no range of their own in the year.
"""

from __future__ import annotations

import csv
import io
import itertools
import operator
from collections.abc import Iterator
from typing import BinaryIO

from loaders import bronze_lines, bts_format
from loaders.bronze_lines import BLOCK_SIZE, Batch, Reject, raw_text

_PICK = operator.itemgetter(*bts_format.SOURCE_INDEX)
FIELDS = bts_format.FIELDS


def describe(line: bytes) -> str:
    """Why `line` (without its line ending) cannot be loaded, or '' when it can."""
    if not line:
        return f"empty line, expected {FIELDS} comma-separated fields"
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"not valid UTF-8: byte 0x{line[exc.start]:02X} at byte {exc.start + 1}"
    nul = text.find("\x00")
    if nul >= 0:
        return f"NUL byte at character {nul + 1} (text cannot hold NUL bytes)"
    try:
        fields = next(csv.reader([text], strict=True))
    except csv.Error as exc:
        return f"not a CSV line ({exc}): unbalanced quotes?"
    if len(fields) != FIELDS:
        return (f"{len(fields)} fields, expected {FIELDS} ({len(bts_format.COLUMNS)} columns "
                "and the empty one after the trailing comma)")
    return ""


def _rows_csv(numbered: Iterator[tuple[int, list[str]]]) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows((n, *_PICK(r)) for n, r in numbered)
    return out.getvalue().encode("utf-8")


def process_block(block: bytes, first_line_no: int) -> Batch:
    """Check and convert `block`: complete lines, each ending in `\\n`, numbered from
    first_line_no."""
    if b"\r" in block:
        block = block.replace(b"\r\n", b"\n")
    n = block.count(b"\n")
    if b"\x00" not in block:
        try:
            texts = block.decode("utf-8").split("\n")
            texts.pop()
            records = list(csv.reader(texts, strict=True))
        except (UnicodeDecodeError, csv.Error):
            records = None
        # As many records as lines means no record ran over a line break.
        if records is not None and len(records) == n and set(map(len, records)) <= {FIELDS}:
            return Batch(_rows_csv(zip(itertools.count(first_line_no), records)), n, [], n)
    lines = block.split(b"\n")
    lines.pop()
    good, rejects = [], []
    for i, line in enumerate(lines):
        reason = describe(line)
        if reason:
            rejects.append(Reject(first_line_no + i, raw_text(line), reason))
        else:
            good.append((first_line_no + i, next(csv.reader([line.decode("utf-8")]))))
    return Batch(_rows_csv(iter(good)), len(good), rejects, n)


def read_batches(fh: BinaryIO, uri: str, line_base: int = 0,
                 block_size: int = BLOCK_SIZE) -> Iterator[Batch]:
    """Stream `fh` (a BTS month) as Batches; memory stays ~ a few blocks whatever the size.

    Raises BronzeFormatError for an empty file or a header that is not the BTS header. Every
    data line (numbered line_base + 1, 2, ...) ends up in exactly one Batch as a row or a
    Reject. The same reader as the yearly files' (bronze_lines.read_batches), with this
    format's header check and block processing.
    """
    return bronze_lines.read_batches(fh, uri, block_size, line_base=line_base,
                                     check=bts_format.check_header, process=process_block,
                                     fields=FIELDS)
