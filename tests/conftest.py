"""Shared fixtures: the real services every test runs against.

- `pg_cluster` (session): a throw-away PostgreSQL cluster started for this test run (the same
  code as `make db-start`, in a temp folder on a free port), stopped and deleted at the end.
  Tests never touch the user's own warehouse.
- `pg_env` (function): a fresh, empty database in that cluster with the PG* variables pointing
  at it (in os.environ, so subprocesses such as dbt and `python -m loaders` inherit them).
- `lake` (function): an empty local lake folder with LAKE_URL pointing at it.
- `moto_s3` (session) / `s3_lake` (function): moto's standalone S3 server over HTTP, boto3
  configured through the standard AWS variables, and an empty bucket as LAKE_URL.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import sys
import tempfile
import uuid
from pathlib import Path

import psycopg
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # so `pytest` works as well as `python -m pytest`

from devtools import localdb

POSTGRES_PROGRAMS = re.compile(r"^(pg_.*|initdb|postgres|postmaster|psql)$")


def path_without_postgres(shadow_root: Path) -> str:
    """PATH with every PostgreSQL program hidden and everything else kept: each PATH folder
    holding one is replaced by a folder of symlinks to all its other entries (as on a machine
    that never had PostgreSQL installed)."""
    parts = []
    for i, folder in enumerate(os.environ.get("PATH", "").split(os.pathsep)):
        entries = sorted(os.listdir(folder)) if os.path.isdir(folder) else []
        if not any(POSTGRES_PROGRAMS.match(name) for name in entries):
            parts.append(folder)
            continue
        shadow = shadow_root / f"path{i}"
        shadow.mkdir(parents=True)
        for name in entries:
            if not POSTGRES_PROGRAMS.match(name):
                (shadow / name).symlink_to(os.path.join(folder, name))
        parts.append(str(shadow))
    return os.pathsep.join(parts)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def throwaway_cluster(prefix: str):
    """A PostgreSQL cluster in a temp folder on a free port, stopped and deleted afterwards."""
    base = Path(tempfile.mkdtemp(prefix=prefix))
    os.chmod(base, 0o755)
    cluster = localdb.start(base / "pg", port=free_port())
    try:
        yield cluster
    finally:
        localdb.destroy(base / "pg")
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_cluster():
    with throwaway_cluster("lakehouse-test-pg-") as cluster:
        yield cluster


@pytest.fixture(scope="module")
def roles_cluster():
    """A cluster of the module's own: roles are cluster-wide, so role tests keep them apart."""
    with throwaway_cluster("lakehouse-test-roles-") as cluster:
        yield cluster


@pytest.fixture
def pg_env(pg_cluster, monkeypatch):
    dbname = f"t_{uuid.uuid4().hex[:12]}"
    admin = {**pg_cluster.env(), "PGDATABASE": "postgres"}
    with psycopg.connect(
        host=admin["PGHOST"], port=admin["PGPORT"], user=admin["PGUSER"], dbname="postgres",
        autocommit=True,
    ) as conn:
        conn.execute(f'create database "{dbname}"')
    env = {**pg_cluster.env(), "PGDATABASE": dbname}
    monkeypatch.delenv("PGPASSWORD", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    yield env


@pytest.fixture
def pg_conn(pg_env):
    with psycopg.connect(
        host=pg_env["PGHOST"], port=pg_env["PGPORT"], user=pg_env["PGUSER"],
        dbname=pg_env["PGDATABASE"], autocommit=True,
    ) as conn:
        yield conn


@pytest.fixture
def lake(tmp_path, monkeypatch):
    root = tmp_path / "lake"
    root.mkdir()
    monkeypatch.setenv("LAKE_URL", str(root))
    return root


@pytest.fixture(scope="session")
def moto_s3():
    """moto's S3 server over HTTP on a free port, in a thread of the test process: the code
    under test (and the DAG runs' subprocesses) reach it through AWS_ENDPOINT_URL like a real S3."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3_lake(moto_s3, monkeypatch):
    import boto3

    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_s3)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    bucket = f"lake-{uuid.uuid4().hex[:10]}"
    boto3.client("s3").create_bucket(Bucket=bucket)
    url = f"s3://{bucket}/lake"
    monkeypatch.setenv("LAKE_URL", url)
    return url
