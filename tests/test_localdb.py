"""The local cluster helper: start is idempotent, env points at a live server, stop stops it."""

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import psycopg
import pytest
from conftest import path_without_postgres

from devtools import localdb

REPO = Path(__file__).resolve().parents[1]


def test_start_is_idempotent_and_env_connects(tmp_path):
    base = Path(tempfile.mkdtemp(prefix="lakehouse-localdb-"))
    os.chmod(base, 0o755)
    try:
        first = localdb.start(base / "pg")
        second = localdb.start(base / "pg")
        assert first == second
        out = subprocess.run(
            [sys.executable, "-m", "devtools.localdb", "env", "--dir", str(base / "pg")],
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


def _hide_system_binaries(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", path_without_postgres(tmp_path))
    monkeypatch.setattr(localdb.glob, "glob", lambda pattern: [])
    monkeypatch.delenv("PG_BIN", raising=False)
    monkeypatch.delenv("LAKEHOUSE_PG", raising=False)


def test_without_system_binaries_the_embedded_ones_are_used(monkeypatch, tmp_path):
    _hide_system_binaries(monkeypatch, tmp_path)
    bins = localdb.find_binaries()
    assert bins.kind == "embedded"
    assert Path(sys.prefix) in bins.bindir.parents
    assert int(localdb.server_major(bins)) >= 15


def test_system_binaries_come_first_and_either_kind_can_be_forced(monkeypatch):
    if localdb.system_bindir() is None:
        pytest.skip("no system PostgreSQL server binaries on this machine")
    monkeypatch.delenv("LAKEHOUSE_PG", raising=False)
    assert localdb.find_binaries().kind == "system"
    monkeypatch.setenv("LAKEHOUSE_PG", "embedded")
    assert localdb.find_binaries().kind == "embedded"
    monkeypatch.setenv("LAKEHOUSE_PG", "system")
    assert localdb.find_binaries().kind == "system"


def test_forced_system_binaries_that_are_missing_give_a_clear_message(monkeypatch, tmp_path):
    _hide_system_binaries(monkeypatch, tmp_path)
    monkeypatch.setenv("LAKEHOUSE_PG", "system")
    with pytest.raises(localdb.LocalDbError, match="no system PostgreSQL.*PG_BIN.*PGHOST"):
        localdb.find_binaries()


def test_missing_binaries_give_a_clear_message(monkeypatch, tmp_path):
    _hide_system_binaries(monkeypatch, tmp_path)
    monkeypatch.setattr(localdb, "EMBEDDED_PACKAGE", "no_such_package_here")
    with pytest.raises(localdb.LocalDbError, match="make venv.*PGHOST"):
        localdb.find_binaries()
    monkeypatch.setenv("LAKEHOUSE_PG", "embedded")
    with pytest.raises(localdb.LocalDbError, match="LAKEHOUSE_PG=embedded.*make venv"):
        localdb.find_binaries()


def test_an_unknown_choice_is_refused(monkeypatch):
    monkeypatch.setenv("LAKEHOUSE_PG", "docker")
    with pytest.raises(localdb.LocalDbError, match="LAKEHOUSE_PG='docker'.*system.*embedded"):
        localdb.find_binaries()
