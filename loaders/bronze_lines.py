"""Split a streamed bronze CSV into COPY-ready blocks and rejected lines, at C speed.

The file is read in large blocks cut at the last line break. A block in which every line is
good -- the common case -- is recognised and formatted with whole-block bytes operations
(`translate` and one comparison for the shape, `replace` and one `%` formatting call that
prefixes every line with its number), so Python does no per-line work and the server's COPY
stays the bottleneck. Only a block that contains a bad line is split into lines to find and
describe it.

Why COPY text format with `DELIMITER ','` rather than CSV: the bronze files never quote, so a
literal `"` must stay a literal `"` (CSV mode would strip or pair quotes, silently altering
values); text format's only special character is the backslash, which is escaped here in
bulk, and a stray carriage return inside a line can be carried as `\\r` instead of breaking
the COPY. Empty fields become NULL (`NULL ''`); values are not typed here (dbt casts them).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

from loaders.bronze_format import (
    DELIMITER,
    FIELDS,
    HEADER,
    UTF8_BOM,
    BronzeFormatError,
    check_header,
)

BLOCK_SIZE = 4 << 20
# A real line is ~130 bytes; anything this long without a line break is not a flight record
# (e.g. a file with old-Mac CR-only endings) and must not make memory grow without bound.
MAX_LINE_BYTES = 1 << 20
COMMAS = FIELDS - 1


@dataclass(frozen=True)
class Reject:
    line_no: int
    raw_line: str
    reason: str


@dataclass
class Batch:
    """One block of the file: COPY rows for the good lines, the rejected lines, bytes read."""

    payload: bytes
    rows: int
    rejects: list[Reject] = field(default_factory=list)
    lines: int = 0
    bytes_read: int = 0


def raw_text(line: bytes) -> str:
    """A line as storable text: undecodable bytes as `\\xNN`, NUL (which text cannot hold) too."""
    return line.decode("utf-8", "backslashreplace").replace("\x00", "\\x00")


def _field_at(line: bytes, pos: int) -> str:
    idx = line.count(DELIMITER, 0, pos)
    name = HEADER[idx] if idx < FIELDS else "beyond the last column"
    return f"field {idx + 1} ({name})"


def describe(line: bytes, commas: int) -> str:
    """Why `line` (without its line ending) cannot be loaded, or '' when it can."""
    if not line:
        return f"empty line, expected {FIELDS} comma-separated fields"
    problems = []
    if commas != COMMAS:
        problems.append(f"{commas + 1} fields, expected {FIELDS}")
    try:
        line.decode("utf-8")
    except UnicodeDecodeError as exc:
        problems.append(
            f"not valid UTF-8: byte 0x{line[exc.start]:02X} at byte {exc.start + 1}, "
            f"{_field_at(line, exc.start)}"
        )
    nul = line.find(b"\x00")
    if nul >= 0:
        problems.append(
            f"NUL byte at byte {nul + 1}, {_field_at(line, nul)} (text cannot hold NUL bytes)"
        )
    return "; ".join(problems)


# A block whose every line has exactly FIELDS fields, stripped of everything but commas and
# line breaks, is this skeleton repeated once per line.
_ROW_SKELETON = DELIMITER * COMMAS + b"\n"
_NOT_SEPARATOR = bytes(b for b in range(256) if b not in _ROW_SKELETON)


def _escape(data: bytes) -> bytes:
    # Text COPY's only escape character; a CR left inside a line after CRLF handling is data.
    if b"\\" in data:
        data = data.replace(b"\\", b"\\\\")
    if b"\r" in data:
        data = data.replace(b"\r", b"\\r")
    return data


def _format_block(block: bytes, first_line_no: int, n: int) -> bytes:
    """Prefix each of the n lines of `block` with `line_no,` in one C-level % formatting call."""
    block = _escape(block)
    if b"%" in block:
        block = block.replace(b"%", b"%%")
    template = b"%d," + block[:-1].replace(b"\n", b"\n%d,") + b"\n"
    return template % tuple(range(first_line_no, first_line_no + n))


def _format_rows(numbers: list[int], lines: list[bytes]) -> bytes:
    """`line_no,<line>\\n` for the given lines (the slow path, for blocks with rejects)."""
    if not lines:
        return b""
    payload = (b"%d,%b\n" * len(lines)) % tuple(itertools.chain.from_iterable(zip(numbers, lines)))
    return _escape(payload)


def process_block(block: bytes, first_line_no: int) -> Batch:
    """Check and format `block`: complete lines, each ending in `\\n`, numbered from first_line_no.

    The common case (every line good) is decided and formatted with whole-block operations;
    only a block with a bad line is split into lines to find and describe it.
    """
    if b"\r" in block:
        block = block.replace(b"\r\n", b"\n")
    skeleton = block.translate(None, _NOT_SEPARATOR)
    n = len(skeleton) // len(_ROW_SKELETON)
    # The skeleton keeps every line break, so this also says the block has n lines.
    if (skeleton == _ROW_SKELETON * n and b"\x00" not in block
            and (block.isascii() or _is_utf8(block))):
        return Batch(_format_block(block, first_line_no, n), n, [], n)
    return _process_lines(block, first_line_no)


def _process_lines(block: bytes, first_line_no: int) -> Batch:
    lines = block.split(b"\n")
    lines.pop()  # the empty piece after the final line break
    n = len(lines)
    counts = list(map(bytes.count, lines, itertools.repeat(DELIMITER, n)))
    bad = {i for i, c in enumerate(counts) if c != COMMAS}
    if not block.isascii() and not _is_utf8(block):
        bad.update(i for i, line in enumerate(lines) if not _is_utf8(line))
    if b"\x00" in block:
        bad.update(i for i, line in enumerate(lines) if b"\x00" in line)
    rejects = [
        Reject(first_line_no + i, raw_text(lines[i]), describe(lines[i], counts[i]))
        for i in sorted(bad)
    ]
    keep = [i for i in range(n) if i not in bad]
    payload = _format_rows([first_line_no + i for i in keep], [lines[i] for i in keep])
    return Batch(payload, len(keep), rejects, n)


def _is_utf8(line: bytes) -> bool:
    try:
        line.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _read_header(fh: BinaryIO, uri: str, block_size: int,
                 check=check_header) -> tuple[bytes, int]:
    """Consume and check the header line; return the bytes read after it and the bytes read."""
    buf = b""
    while True:
        chunk = fh.read(block_size)
        buf += chunk
        nl = buf.find(b"\n")
        if nl >= 0 or not chunk or len(buf) > MAX_LINE_BYTES:
            break
    if not buf:
        raise BronzeFormatError(f"{uri} is empty: expected a CSV header line, then one flight per line")
    if nl < 0 and len(buf) > MAX_LINE_BYTES:
        raise BronzeFormatError(
            f"{uri}: no line break in the first {MAX_LINE_BYTES} bytes; expected a CSV file "
            "with LF or CRLF line endings"
        )
    header, rest = (buf[:nl], buf[nl + 1:]) if nl >= 0 else (buf, b"")
    header = header.removeprefix(UTF8_BOM)
    check(header.removesuffix(b"\r"), uri)
    return rest, len(buf)


def read_batches(fh: BinaryIO, uri: str, block_size: int = BLOCK_SIZE,
                 first_line_no: int | None = None, *, line_base: int = 0,
                 check=check_header, process=process_block, fields: int = FIELDS,
                 ) -> Iterator[Batch]:
    """Stream `fh` (a bronze CSV) as Batches; memory stays ~ a few blocks whatever the size.

    Raises BronzeFormatError for an empty file or a header `check` refuses. Every data line
    (numbered line_base + 1, 2, ...; the header is line 0) ends up in exactly one Batch as a
    row or a Reject. With `first_line_no`, `fh` is a later piece of the file that starts at a
    line boundary with that line (no header): how the loader reads one file in parallel
    pieces. Another input format passes its own header `check`, block `process`or (complete
    lines, the first line's number -> Batch) and number of `fields` (loaders/bts_lines.py).
    """
    if first_line_no is None:
        carry, bytes_read = _read_header(fh, uri, block_size, check)
        line_no = line_base + 1
    else:
        carry, bytes_read, line_no = b"", 0, first_line_no
    skipping = False  # inside an over-long line already rejected: drop bytes up to its end
    while True:
        chunk = fh.read(block_size)
        if not chunk:
            break
        bytes_read += len(chunk)
        if skipping:
            nl = chunk.find(b"\n")
            if nl < 0:
                continue
            chunk, skipping = chunk[nl + 1:], False
        data = carry + chunk if carry else chunk
        cut = data.rfind(b"\n") + 1
        if cut == 0:
            carry = data
            if len(carry) > MAX_LINE_BYTES:
                yield _too_long(carry, line_no, bytes_read, fields)
                bytes_read, carry, skipping, line_no = 0, b"", True, line_no + 1
            continue
        carry = data[cut:]
        batch = process(data[:cut], line_no)
        batch.bytes_read, bytes_read = bytes_read, 0
        line_no += batch.lines
        yield batch
    if skipping:
        carry = b""
    if carry:
        # What is left: lines the header read took along (a small file), and a last line
        # without a line break, which is still a data line.
        batch = process(carry if carry.endswith(b"\n") else carry + b"\n", line_no)
        batch.bytes_read, bytes_read = bytes_read, 0
        yield batch
    elif bytes_read:
        yield Batch(b"", 0, [], 0, bytes_read)


def _too_long(prefix: bytes, line_no: int, bytes_read: int, fields: int) -> Batch:
    reason = (f"no line break within {MAX_LINE_BYTES} bytes (raw_line keeps the first "
              f"{MAX_LINE_BYTES} bytes); expected one flight of {fields} fields per line")
    return Batch(b"", 0, [Reject(line_no, raw_text(prefix[:MAX_LINE_BYTES]), reason)], 1, bytes_read)
