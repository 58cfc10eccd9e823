"""Throw-away places for a benchmark run: a database on the server the PG* variables point at,
and a folder; both removed afterwards unless the run asks to keep them."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
from psycopg import sql


@contextlib.contextmanager
def scratch_database(prefix: str, keep: bool = False) -> Iterator[str]:
    """Create `{prefix}_{pid}` and yield its name; drop it afterwards (with `keep`, say that it
    was kept). The drop connects to the database the PG* variables named on entry."""
    name = f"{prefix}_{os.getpid()}"
    home_db = os.environ.get("PGDATABASE")
    with psycopg.connect(autocommit=True, dbname=home_db) as admin:
        admin.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    try:
        yield name
    finally:
        if keep:
            print(f"kept database {name}")
        else:
            with psycopg.connect(autocommit=True, dbname=home_db) as admin:
                admin.execute(sql.SQL("drop database if exists {} with (force)").format(
                    sql.Identifier(name)))


@contextlib.contextmanager
def scratch_dir(prefix: str, keep: str | Path | None = None, base: Path | None = None,
                ) -> Iterator[Path]:
    """A new temporary folder (removed afterwards), or `keep` as it is (left in place)."""
    path = Path(keep) if keep else Path(tempfile.mkdtemp(prefix=prefix, dir=base))
    try:
        yield path
    finally:
        if not keep:
            shutil.rmtree(path, ignore_errors=True)
