"""The embedded PostgreSQL (the wheel uv.lock installs) on a machine without server binaries:
the system's PostgreSQL programs are hidden from PATH, the cluster is started the way
`make db-start` does (`python -m devtools.localdb start`, LAKEHOUSE_PG=embedded so the
/usr/lib/postgresql search is skipped too), then the loader and a real `dbt build` run on it.
A broken embedded path fails here even on a machine that has the system binaries."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import psycopg
import pytest
from conftest import free_port, path_without_postgres
from test_dbt import bronze_rows, dbt, expected_gold, gold_rows, make_dbt_dir

REPO = Path(__file__).resolve().parents[1]
YEAR = 2017

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def embedded_env():
    """PG* variables of an embedded cluster, with PATH free of PostgreSQL programs."""
    base = Path(tempfile.mkdtemp(prefix="lakehouse-test-embedded-"))
    os.chmod(base, 0o755)
    env = {**os.environ, "PATH": path_without_postgres(base / "shadow"),
           "LAKEHOUSE_PG": "embedded", "LAKEHOUSE_PG_DIR": str(base / "pg")}
    env.pop("PGHOST", None)
    for program in ("initdb", "pg_ctl", "postgres", "psql", "pg_config"):
        assert shutil.which(program, path=env["PATH"]) is None, program
    cli = [sys.executable, "-m", "devtools.localdb"]
    try:
        started = subprocess.run(
            [*cli, "start", "--dir", str(base / "pg"), "--port", str(free_port())],
            env=env, cwd=REPO, capture_output=True, text=True, timeout=180, check=False)
        assert started.returncode == 0, started.stderr
        out = subprocess.run([*cli, "env", "--dir", str(base / "pg")], env=env, cwd=REPO,
                             capture_output=True, text=True, check=True).stdout
        pg = dict(line.removeprefix("export ").split("=", 1) for line in out.splitlines())
        yield {**env, **pg}
    finally:
        subprocess.run([*cli, "stop", "--dir", str(base / "pg")], env=env, cwd=REPO,
                       capture_output=True, check=False)
        shutil.rmtree(base, ignore_errors=True)


def test_the_server_is_the_embedded_one(embedded_env):
    base = Path(embedded_env["LAKEHOUSE_PG_DIR"])
    assert (base / "binaries").read_text().strip() == "embedded"
    postmaster_pid = int((base / "data" / "postmaster.pid").read_text().split()[0])
    executable = Path(os.readlink(f"/proc/{postmaster_pid}/exe"))
    assert Path(sys.prefix).resolve() in executable.parents, executable
    with psycopg.connect(host=embedded_env["PGHOST"], port=embedded_env["PGPORT"],
                         user=embedded_env["PGUSER"], dbname=embedded_env["PGDATABASE"]) as conn:
        assert int(conn.execute("show server_version_num").fetchone()[0]) >= 150000
        assert conn.execute("show wal_level").fetchone()[0] == "minimal"
    status = subprocess.run([sys.executable, "-m", "devtools.localdb", "status", "--dir",
                             str(base)], env=embedded_env, cwd=REPO, capture_output=True,
                            text=True, check=True).stdout
    assert status.startswith("running") and "embedded" in status
    # The cluster keeps the kind that created it: asking for the other one is a clear error.
    other = subprocess.run([sys.executable, "-m", "devtools.localdb", "start", "--dir",
                            str(base)], env={**embedded_env, "LAKEHOUSE_PG": "system"}, cwd=REPO,
                           capture_output=True, text=True, check=False)
    assert other.returncode == 2
    assert other.stderr.startswith("error: LAKEHOUSE_PG=system but the cluster in ")
    assert "created with the embedded binaries" in other.stderr
    assert len(other.stderr.strip().splitlines()) == 1


def test_loader_roles_and_dbt_build_on_the_embedded_server(embedded_env, tmp_path, monkeypatch):
    for key in ("PATH", "LAKEHOUSE_PG", "LAKEHOUSE_PG_DIR", "PGHOST", "PGPORT", "PGUSER",
                "PGDATABASE"):
        monkeypatch.setenv(key, embedded_env[key])
    monkeypatch.delenv("PGPASSWORD", raising=False)
    lake = tmp_path / "lake"
    monkeypatch.setenv("LAKE_URL", str(lake))

    def cli(*args: str) -> str:
        proc = subprocess.run([sys.executable, "-m", *args], cwd=REPO, capture_output=True,
                              text=True, timeout=600, check=False)
        assert proc.returncode == 0, f"{args}: {proc.stderr[-3000:]}"
        return proc.stdout

    cli("loaders", "generate", "--year", str(YEAR), "--rows", "20000", "--seed", "3")
    loaded = json.loads(cli("loaders", "load", "--year", str(YEAR), "--json"))
    assert loaded["rows_loaded"] == loaded["lines_read"] == 20_000
    cli("lakehouse.roles", "apply", "--superset-login")

    dbt(make_dbt_dir(tmp_path), "build", year=YEAR)

    with psycopg.connect(autocommit=True) as conn:
        expected = expected_gold(bronze_rows(lake, YEAR))
        actual = gold_rows(conn, YEAR)
        assert len(actual) == len(expected) > 500
        assert actual == expected
        assert conn.execute("select count(*) from pg_roles where rolname = 'lakehouse_loader'"
                            ).fetchone()[0] == 1
