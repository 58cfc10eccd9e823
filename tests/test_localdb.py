"""The local cluster helper: start is idempotent, env points at a live server, stop stops it."""

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import psycopg
import pytest

from lakehouse import localdb

REPO = Path(__file__).resolve().parents[1]


def test_start_is_idempotent_and_env_connects(tmp_path):
    base = Path(tempfile.mkdtemp(prefix="lakehouse-localdb-"))
    os.chmod(base, 0o755)
    try:
        first = localdb.start(base / "pg")
        second = localdb.start(base / "pg")
        assert first == second
        out = subprocess.run(
            [sys.executable, "-m", "lakehouse.localdb", "env", "--dir", str(base / "pg")],
            capture_output=True, text=True, check=True, cwd=REPO,
        ).stdout
        env = dict(line.removeprefix("export ").split("=", 1) for line in out.splitlines())
        assert env["PGPORT"] == str(first.port)
        with psycopg.connect(host=env["PGHOST"], port=env["PGPORT"], user=env["PGUSER"],
                             dbname=env["PGDATABASE"]) as conn:
            assert conn.execute("show wal_level").fetchone()[0] == "minimal"
        assert localdb.stop(base / "pg") is True
        assert localdb.stop(base / "pg") is False
        assert not localdb.is_running(first)
    finally:
        localdb.destroy(base / "pg")


def test_missing_binaries_give_a_clear_message(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setattr(localdb.glob, "glob", lambda pattern: [])
    monkeypatch.delenv("PG_BIN", raising=False)
    with pytest.raises(localdb.LocalDbError, match="PGHOST"):
        localdb.find_pg_bin()
