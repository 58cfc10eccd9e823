"""Ingest benchmark: `python -m loaders ingest` of a Kaggle-style zip into a local and an S3 lake.

    .venv/bin/python bench/bench_ingest.py [--rows 7200000] [--keep DIR]

Generates a full-size year (and a quarter-size one, to show memory does not grow with the
file) with the project's generator, zips each as `archive/2018.csv` (Deflate, level 6, like
the Kaggle download), then runs, each as its own subprocess (wall time outside, peak RSS =
the child's VmHWM):

1. the floor: Python's zipfile decompressing the member to nowhere;
2. `ingest` into an empty local lake, then again (identical: skipped after a hash pass);
3. `ingest` into moto's S3 server over HTTP (started here), then again (skipped: the
   provenance record holds the SHA-256, nothing is downloaded).

MB are 10^6 bytes of uncompressed CSV. With --keep DIR the zips are kept there and reused.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench_load import loadavg, run_child  # bench/ is on sys.path

from lakehouse.lake import bronze_key

YEAR = 2018
FLOOR = """
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as zf, zf.open(zf.namelist()[0]) as fh:
    while fh.read(1 << 20):
        pass
"""


def make_zip(rows: int, folder: Path) -> Path:
    archive = folder / f"kaggle-{rows}.zip"
    if archive.exists():
        return archive
    scratch = folder / f"gen-{rows}"
    env = {**os.environ, "LAKE_URL": str(scratch)}
    subprocess.run([sys.executable, "-m", "loaders", "generate", "--year", str(YEAR),
                    "--rows", str(rows), "--seed", "42"], env=env, cwd=REPO, check=True,
                   stdout=subprocess.DEVNULL)
    tmp = archive.with_suffix(".zip.tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
        zf.write(scratch / bronze_key(YEAR), f"archive/{YEAR}.csv")
    tmp.rename(archive)
    shutil.rmtree(scratch)
    return archive


def start_moto():
    """moto's S3 server over HTTP on a free port, in a thread of this process."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = {"AWS_ENDPOINT_URL": f"http://{host}:{port}", "AWS_ACCESS_KEY_ID": "bench",
           "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1"}  # pragma: allowlist secret
    return server, env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=7_200_000)
    parser.add_argument("--keep", type=Path, help="keep (and reuse) the generated zips here")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    zips_dir = args.keep or work
    zips_dir.mkdir(parents=True, exist_ok=True)
    moto, aws = start_moto()
    try:
        print(f"load average before: {loadavg()}", flush=True)
        sizes = {}
        lines = []
        for rows in (args.rows, args.rows // 4):
            archive = make_zip(rows, zips_dir)
            with zipfile.ZipFile(archive) as zf:
                sizes[rows] = zf.infolist()[0].file_size
            mb = sizes[rows] / 1e6
            label = f"{rows:,} rows ({mb:,.0f} MB, zip {archive.stat().st_size / 1e6:,.0f} MB)"
            env = {**os.environ, **aws}

            def run(name: str, cmd: list[str], lake_url: str, label=label, mb=mb, env=env) -> None:
                wall, rss, _ = run_child(cmd, {**env, "LAKE_URL": lake_url})
                lines.append((label, name, wall, mb / wall, rss))
                print(f"  {label:<40} {name:<34} {wall:7.1f} s {mb / wall:7.1f} MB/s "
                      f"{rss:7.0f} MB", flush=True)

            ingest = [sys.executable, "-m", "loaders", "ingest", str(archive), "--json"]
            run("floor: zipfile decompress only", [sys.executable, "-c", FLOOR, str(archive)],
                str(work / "unused"))
            local = work / f"lake-{rows}"
            run("ingest -> local lake", ingest, str(local))
            run("ingest again -> local (skipped)", ingest, str(local))
            import boto3

            bucket = f"bench-{uuid.uuid4().hex[:8]}"
            boto3.client("s3", endpoint_url=aws["AWS_ENDPOINT_URL"], region_name="us-east-1",
                         aws_access_key_id="bench", aws_secret_access_key="bench"
                         ).create_bucket(Bucket=bucket)
            run("ingest -> S3 (moto server)", ingest, f"s3://{bucket}/lake")
            run("ingest again -> S3 (skipped)", ingest, f"s3://{bucket}/lake")
            shutil.rmtree(local)
        print(f"load average after: {loadavg()}\n")
        print(f"{'file':<40} {'contender':<34} {'wall s':>7} {'MB/s':>7} {'peak RSS MB':>11}")
        for label, name, wall, rate, rss in lines:
            print(f"{label:<40} {name:<34} {wall:7.1f} {rate:7.1f} {rss:11.0f}")
        full = {name: rss for label, name, _, _, rss in lines if label.startswith(f"{args.rows:,}")}
        quarter = {name: rss for label, name, _, _, rss in lines
                   if label.startswith(f"{args.rows // 4:,}")}
        for name in ("ingest -> local lake", "ingest -> S3 (moto server)"):
            print(f"memory flat, {name}: 4x the bytes -> {full[name] / quarter[name]:.2f}x the "
                  f"peak RSS ({quarter[name]:.0f} MB -> {full[name]:.0f} MB)")
    finally:
        moto.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
