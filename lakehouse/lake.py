"""The one way every part reaches the data lake: `LAKE_URL`.

`LAKE_URL` is a local folder (default `data/lake`) or `s3://bucket/prefix`. S3 goes through
boto3's own configuration chain (AWS_ACCESS_KEY_ID, AWS_DEFAULT_REGION, AWS_ENDPOINT_URL, ...),
so MinIO and moto's server work unchanged. Keys are lake-relative paths such as
`01_bronze/2018.csv`; the zone layout lives in `bronze_key` & co.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from lakehouse.errors import UserError

DEFAULT_LAKE_URL = "data/lake"


def bronze_key(year: int) -> str:
    return f"01_bronze/{year}.csv"


def bts_bronze_key(year: int, month: int) -> str:
    """One BTS month as TranStats ships it, under its year so a year's months list together."""
    return f"01_bronze/bts/{year}/{month:02d}.csv"


def period_bronze_key(year: int, month: int | None = None) -> str:
    """The Kaggle year's object, or with `month` the BTS month's."""
    return bronze_key(year) if month is None else bts_bronze_key(year, month)


def provenance_key(year: int, month: int | None = None) -> str:
    """Who wrote `01_bronze/{year}.csv` (or a BTS month), with its size and SHA-256."""
    if month is not None:
        return f"01_bronze/_provenance/bts/{year}/{month:02d}.json"
    return f"01_bronze/_provenance/{year}.json"


def labels_key(year: int) -> str:
    return f"00_labels/{year}.json"


def silver_key(year: int) -> str:
    return f"02_silver/year/{year}/{year}_02_silver.parquet"


def gold_key(year: int) -> str:
    return f"03_gold/agg_dep_delay_by_date/year/{year}/{year}_03_gold.parquet"


def silver_month_key(year: int, month: int) -> str:
    """One month of a year exported on its own (a BTS month run), beside where the year's file
    would be: a year's Parquet is either its year file or its month files (loaders/export.py)."""
    return f"02_silver/year/{year}/month/{month:02d}/{year}_{month:02d}_02_silver.parquet"


def gold_month_key(year: int, month: int) -> str:
    return (f"03_gold/agg_dep_delay_by_date/year/{year}/month/{month:02d}/"
            f"{year}_{month:02d}_03_gold.parquet")


# A streamed S3 upload holds the parts read ahead plus those in flight in memory: the part
# size times these counts bounds it, whatever the object's size.
STREAM_TRANSFER = {"multipart_threshold": 8 << 20, "multipart_chunksize": 8 << 20,
                   "max_concurrency": 4, "max_in_memory_upload_chunks": 4}


@dataclass(frozen=True)
class ObjectInfo:
    size: int
    # Changes whenever the object is rewritten: the S3 ETag, or a local file's mtime in ns.
    fingerprint: str


class LakeObjectMissing(FileNotFoundError):
    def __init__(self, uri: str):
        super().__init__(f"{uri} does not exist in the lake")
        self.uri = uri


@contextlib.contextmanager
def lake_write_errors(lake: Lake, key: str) -> Iterator[None]:
    """A lake that cannot be written is a configuration problem: say so in one line."""
    failures: tuple[type[BaseException], ...] = (OSError,)
    if lake.is_s3:
        import boto3.exceptions
        import botocore.exceptions

        failures += (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError,
                     boto3.exceptions.S3UploadFailedError)
    try:
        yield
    except failures as exc:
        raise UserError(f"cannot write {lake.uri(key)}: {' '.join(str(exc).split())}; check "
                        "LAKE_URL (an existing, writable folder or s3://bucket/prefix) and the "
                        "AWS_* settings") from exc


@dataclass(frozen=True)
class Lake:
    url: str

    @classmethod
    def from_env(cls) -> Lake:
        return cls(os.environ.get("LAKE_URL") or DEFAULT_LAKE_URL)

    @property
    def is_s3(self) -> bool:
        return self.url.startswith("s3://")

    def _bucket_prefix(self) -> tuple[str, str]:
        rest = self.url[len("s3://"):]
        bucket, _, prefix = rest.partition("/")
        return bucket, prefix.strip("/")

    def _s3_key(self, key: str) -> str:
        _, prefix = self._bucket_prefix()
        return f"{prefix}/{key}" if prefix else key

    def _path(self, key: str) -> Path:
        return Path(self.url) / key

    def uri(self, key: str) -> str:
        if self.is_s3:
            bucket, _ = self._bucket_prefix()
            return f"s3://{bucket}/{self._s3_key(key)}"
        return str(self._path(key))

    @staticmethod
    def _client():
        import boto3  # imported lazily: local lakes never pay for it

        return boto3.client("s3")

    def head(self, key: str) -> ObjectInfo:
        """Size and fingerprint; raises LakeObjectMissing when the object is not there."""
        if self.is_s3:
            import botocore.exceptions

            bucket, _ = self._bucket_prefix()
            try:
                head = self._client().head_object(Bucket=bucket, Key=self._s3_key(key))
            except botocore.exceptions.ClientError as exc:
                if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                    raise LakeObjectMissing(self.uri(key)) from None
                raise
            return ObjectInfo(int(head["ContentLength"]), str(head.get("ETag", "")))
        path = self._path(key)
        if not path.is_file():
            raise LakeObjectMissing(self.uri(key))
        st = path.stat()
        return ObjectInfo(st.st_size, str(st.st_mtime_ns))

    def size(self, key: str) -> int:
        """Object size in bytes; raises LakeObjectMissing when it is not there."""
        return self.head(key).size

    def exists(self, key: str) -> bool:
        try:
            self.size(key)
        except LakeObjectMissing:
            return False
        return True

    def local_path(self, key: str) -> Path | None:
        """The object's file for a local lake (which can be read at any offset), else None."""
        return None if self.is_s3 else self._path(key)

    @contextlib.contextmanager
    def open_read(self, key: str) -> Iterator[BinaryIO]:
        """A streaming binary reader; never downloads the whole object first."""
        if self.is_s3:
            import botocore.exceptions

            bucket, _ = self._bucket_prefix()
            try:
                obj = self._client().get_object(Bucket=bucket, Key=self._s3_key(key))
            except botocore.exceptions.ClientError as exc:
                if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                    raise LakeObjectMissing(self.uri(key)) from None
                raise
            body = obj["Body"]
            try:
                yield body
            finally:
                body.close()
        else:
            path = self._path(key)
            if not path.is_file():
                raise LakeObjectMissing(self.uri(key))
            with open(path, "rb") as fh:
                yield fh

    @contextlib.contextmanager
    def open_write(self, key: str) -> Iterator[BinaryIO]:
        """A binary writer that publishes the object only when the block succeeds.

        Local: a temp file in the target folder renamed into place (atomic). S3: a temp file
        uploaded with boto3's multipart transfer on success (S3 PUTs are atomic per object).
        """
        if self.is_s3:
            bucket, _ = self._bucket_prefix()
            with tempfile.TemporaryFile() as tmp:
                yield tmp
                tmp.flush()
                tmp.seek(0)
                self._client().upload_fileobj(tmp, bucket, self._s3_key(key))
        else:
            path = self._path(key)
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
            try:
                with os.fdopen(fd, "wb") as tmp:
                    yield tmp
                os.replace(tmp_name, path)
            except BaseException:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp_name)
                raise

    def write_stream(self, key: str, reader: BinaryIO) -> None:
        """Publish everything `reader.read()` returns under `key`, streaming, all or nothing.

        Local: a temp file beside the target, fsynced, then renamed over it. S3: boto3's
        managed upload (multipart above 8 MiB, parts read one by one from `reader`); if
        `reader` raises, the multipart upload is aborted and no object appears. Either way an
        exception leaves the previous object, or none, under `key`.
        """
        if self.is_s3:
            from boto3.s3.transfer import TransferConfig

            bucket, _ = self._bucket_prefix()
            config = TransferConfig(**{k: v for k, v in STREAM_TRANSFER.items()
                                       if k != "max_in_memory_upload_chunks"})
            # s3transfer's own setting (boto3's constructor does not take it): how many parts
            # read from a stream that cannot seek may wait in memory for an upload thread.
            config.max_in_memory_upload_chunks = STREAM_TRANSFER["max_in_memory_upload_chunks"]
            self._client().upload_fileobj(reader, bucket, self._s3_key(key), Config=config)
            return
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as tmp:
                shutil.copyfileobj(reader, tmp, 1 << 20)
                tmp.flush()
                os.fsync(tmp.fileno())
            os.replace(tmp_name, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp_name)
            raise

    def put_file(self, local_path: str | os.PathLike, key: str) -> None:
        with open(local_path, "rb") as src, self.open_write(key) as dst:
            shutil.copyfileobj(src, dst, 1 << 20)

    def delete(self, key: str) -> None:
        if self.is_s3:
            bucket, _ = self._bucket_prefix()
            self._client().delete_object(Bucket=bucket, Key=self._s3_key(key))
        else:
            with contextlib.suppress(FileNotFoundError):
                self._path(key).unlink()
