"""Who wrote each bronze object: the generator (sample data) or `ingest` (the user's real data).

Beside `01_bronze/{year}.csv` the writer leaves `01_bronze/_provenance/{year}.json`:
`{"origin": "generated" | "ingested", "bytes", "sha256", "fingerprint", "written_at", ...}`.
A sidecar works the same on a local folder and on S3 (object metadata would need a second
copy of the object on S3, and a local file has none). A record describes the object only
while the object's size and fingerprint (S3 ETag, local mtime) still match it, or, when only
the fingerprint moved (a copied folder), while its SHA-256 does. Anything else -- no record,
a stale one, an unreadable one -- counts as data of unknown origin: real data, which the
generator never overwrites.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import sys
from dataclasses import dataclass
from typing import BinaryIO

from lakehouse.errors import UserError
from lakehouse.lake import Lake, LakeObjectMissing, ObjectInfo, period_bronze_key, provenance_key

GENERATED = "generated"
INGESTED = "ingested"
HASH_CHUNK = 1 << 20


class HashingReader:
    """A reader that hashes and counts what passes through it (and can report progress)."""

    def __init__(self, raw: BinaryIO, on_read=None):
        self.raw = raw
        self.sha256 = hashlib.sha256()
        self.bytes = 0
        self._on_read = on_read

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n)
        self.sha256.update(data)
        self.bytes += len(data)
        if self._on_read is not None and data:
            self._on_read(len(data))
        return data


class HashingWriter:
    """A writer that hashes and counts what passes through it."""

    def __init__(self, raw: BinaryIO):
        self.raw = raw
        self.sha256 = hashlib.sha256()
        self.bytes = 0

    def write(self, data) -> int:
        self.sha256.update(data)
        self.bytes += len(data)
        return self.raw.write(data)


def sha256_of(reader: BinaryIO, on_read=None) -> str:
    h = HashingReader(reader, on_read)
    while h.read(HASH_CHUNK):
        pass
    return h.sha256.hexdigest()


@dataclass(frozen=True)
class BronzeState:
    """The year's bronze object (None when absent) and its provenance record when it holds."""

    year: int
    info: ObjectInfo | None
    record: dict | None
    month: int | None = None  # a BTS month's object, else the Kaggle year's

    @property
    def exists(self) -> bool:
        return self.info is not None

    @property
    def origin(self) -> str | None:
        return self.record["origin"] if self.record else None

    @property
    def is_generated(self) -> bool:
        return self.origin == GENERATED


def _read_record(lake: Lake, year: int, month: int | None) -> dict | None:
    try:
        with lake.open_read(provenance_key(year, month)) as fh:
            record = json.loads(fh.read())
    except LakeObjectMissing:
        return None
    except ValueError:
        return None  # unreadable: the object's origin is unknown
    if not isinstance(record, dict) or not {"origin", "bytes", "sha256", "fingerprint"} <= record.keys():
        return None
    return record


def bronze_state(lake: Lake, year: int, month: int | None = None) -> BronzeState:
    key = period_bronze_key(year, month)
    try:
        info = lake.head(key)
    except LakeObjectMissing:
        return BronzeState(year, None, None, month)
    record = _read_record(lake, year, month)
    if record is None or record["bytes"] != info.size:
        return BronzeState(year, info, None, month)
    if record["fingerprint"] != info.fingerprint:
        with lake.open_read(key) as fh:
            if sha256_of(fh) != record["sha256"]:
                return BronzeState(year, info, None, month)
        record = {**record, "fingerprint": info.fingerprint}  # same bytes, e.g. a copied lake
        _store(lake, year, month, record)
    return BronzeState(year, info, record, month)


def _store(lake: Lake, year: int, month: int | None, record: dict) -> None:
    with lake.open_write(provenance_key(year, month)) as fh:
        fh.write(json.dumps(record, indent=1).encode())


def write_record(lake: Lake, year: int, origin: str, sha256: str, month: int | None = None,
                 **extra) -> dict:
    """Record who wrote the bronze object now under the year's (or BTS month's) key (call
    right after writing)."""
    info = lake.head(period_bronze_key(year, month))
    record = {"year": year, **({"month": month} if month is not None else {}), "origin": origin,
              "bytes": info.size, "sha256": sha256, "fingerprint": info.fingerprint,
              "written_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), **extra}
    _store(lake, year, month, record)
    return record


def require_generator_may_write(lake: Lake, year: int, month: int | None = None) -> None:
    """Raise unless the bronze object is absent or was written by the generator."""
    state = bronze_state(lake, year, month)
    if not state.exists or state.is_generated:
        return
    why = ("ingested real data" if state.origin == INGESTED
           else f"no generator record in {lake.uri(provenance_key(year, month))}: it looks like "
                "real data")
    raise UserError(
        f"{lake.uri(period_bronze_key(year, month))} was not written by the generator ({why}); "
        f"it is left as "
        f"it is. Generate a different year (--year, YEAR= for make) or point LAKE_URL at "
        f"another lake"
    )


def demo_year(lake: Lake, year: int, last: int = 2100) -> int:
    """`year` when the generator may write it, else the first later year it may."""
    for candidate in range(year, last + 1):
        state = bronze_state(lake, candidate)
        if not state.exists or state.is_generated:
            return candidate
    raise UserError(f"every year from {year} to {last} in {lake.url} holds real data; point "
                    "LAKE_URL at another lake for the demo")


def cli_demo_year(args) -> int:
    lake = Lake.from_env()
    year = demo_year(lake, args.year)
    if year != args.year:
        print(f"note: {lake.uri(period_bronze_key(args.year))} holds real data, which the demo leaves "
              f"alone; the demo generates {year} instead", file=sys.stderr)
    print(year)
    return 0
