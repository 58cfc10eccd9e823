"""Least-privilege roles: each part can do its own job and nothing else.

Roles are cluster-wide and `warehouse.connect(part=...)` switches to a part's role whenever it
exists, so these tests run in a cluster of their own: creating the roles in the session's
shared cluster would change what every later test's connections may do.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from lakehouse import roles
from lakehouse.warehouse import connect

REPO = Path(__file__).resolve().parents[1]
STAGING_SQL = REPO / "loaders" / "sql" / "staging_schema.sql"
DENIED = psycopg.errors.InsufficientPrivilege


@pytest.fixture
def db(roles_cluster, monkeypatch, request):
    """A fresh database in the roles cluster, PG* pointing at it, roles not yet applied."""
    name = "r_" + request.node.name[:40].lower().replace("[", "_").replace("]", "")
    env = roles_cluster.env()
    with psycopg.connect(host=env["PGHOST"], port=env["PGPORT"], user=env["PGUSER"],
                         dbname="postgres", autocommit=True) as admin:
        admin.execute(f'drop database if exists "{name}"')
        admin.execute(f'create database "{name}"')
    monkeypatch.delenv("PGPASSWORD", raising=False)
    for key, value in {**env, "PGDATABASE": name}.items():
        monkeypatch.setenv(key, value)
    return name


def _part(part: str) -> psycopg.Connection:
    conn = connect(part=part, autocommit=True)
    assert conn.execute("select current_user").fetchone()[0] == f"lakehouse_{part}"
    return conn


def _build_all_parts():
    """Each part creates its own tables as its own role, the way the pipeline does."""
    with _part("loader") as c:
        c.execute(STAGING_SQL.read_text())
        c.execute("insert into staging.load_audit (load_id, year, source_uri, status) "
                  "values (gen_random_uuid(), 2018, 'x', 'running')")
    with _part("transform") as c:
        c.execute("create table silver.flights as select 1 as id")
        c.execute("create table gold.agg_dep_delay_by_date as "
                  "select count(*) as n from staging.load_audit")
    with _part("ml") as c:
        c.execute("create table ml.dep_delay_anomalies as "
                  "select n, true as is_anomaly from gold.agg_dep_delay_by_date")
    with _part("transform") as c:
        c.execute("create view gold.daily_delay_anomalies as select g.n, a.is_anomaly "
                  "from gold.agg_dep_delay_by_date g join ml.dep_delay_anomalies a using (n)")


def test_apply_is_idempotent_and_schemas_belong_to_their_part(db):
    for _ in range(2):
        assert roles.apply() == ["lakehouse_loader", "lakehouse_ml", "lakehouse_reader",
                                 "lakehouse_transform"]
    with connect(autocommit=True) as c:
        owners = dict(c.execute(
            "select nspname, pg_get_userbyid(nspowner) from pg_namespace "
            "where nspname in ('staging', 'silver', 'gold', 'ml')").fetchall())
        assert owners == {"staging": "lakehouse_loader", "silver": "lakehouse_transform",
                          "gold": "lakehouse_transform", "ml": "lakehouse_ml"}
        logins = dict(c.execute("select rolname, rolcanlogin from pg_roles "
                                "where rolname like 'lakehouse\\_%'").fetchall())
        assert logins == dict.fromkeys(roles.PART_ROLES.values(), False)
        members = {r for (r,) in c.execute(
            "select m.roleid::regrole::text from pg_auth_members m "
            "where m.member = current_user::regrole").fetchall()}
        assert members == set(roles.PART_ROLES.values())


def test_reader_reads_gold_and_ml_but_cannot_write_or_read_staging(db):
    roles.apply()
    _build_all_parts()
    with _part("reader") as c:
        assert c.execute("select n from gold.agg_dep_delay_by_date").fetchone() == (1,)
        assert c.execute("select count(*) from ml.dep_delay_anomalies").fetchone() == (1,)
        assert c.execute("select is_anomaly from gold.daily_delay_anomalies").fetchone() == (True,)
        for stmt in (
            "select * from staging.load_audit",
            "select * from silver.flights",
            "insert into gold.agg_dep_delay_by_date values (2)",
            "update ml.dep_delay_anomalies set is_anomaly = false",
            "delete from gold.agg_dep_delay_by_date",
            "create table gold.sneaky (a int)",
            "create table ml.sneaky (a int)",
            "create table public.sneaky (a int)",
            "drop view gold.daily_delay_anomalies",
            "create schema sneaky",
        ):
            with pytest.raises(DENIED):
                c.execute(stmt)


def test_loader_cannot_touch_silver_or_gold(db):
    roles.apply()
    _build_all_parts()
    with _part("loader") as c:
        c.execute("insert into staging.load_audit (load_id, year, source_uri, status) "
                  "values (gen_random_uuid(), 2019, 'y', 'running')")
        for stmt in (
            "select * from silver.flights",
            "select * from gold.agg_dep_delay_by_date",
            "insert into gold.agg_dep_delay_by_date values (2)",
            "create table silver.sneaky (a int)",
            "create table gold.sneaky (a int)",
            "drop table gold.agg_dep_delay_by_date",
            "select * from ml.dep_delay_anomalies",
        ):
            with pytest.raises(DENIED):
                c.execute(stmt)
    with _part("ml") as c:
        c.execute("insert into ml.dep_delay_anomalies values (5, false)")
        for stmt in ("select * from staging.flights", "select * from silver.flights",
                     "insert into gold.agg_dep_delay_by_date values (2)"):
            with pytest.raises(DENIED):
                c.execute(stmt)
    with _part("transform") as c:
        # dbt's table swap: replace a gold table it owns, and later readers still see it.
        c.execute("drop view gold.daily_delay_anomalies")
        c.execute("drop table gold.agg_dep_delay_by_date")
        c.execute("create table gold.agg_dep_delay_by_date as select 7 as n")
        with pytest.raises(DENIED):
            c.execute("insert into staging.load_audit (load_id, year, source_uri, status) "
                      "values (gen_random_uuid(), 2020, 'z', 'running')")
    with _part("reader") as c:
        assert c.execute("select n from gold.agg_dep_delay_by_date").fetchone() == (7,)


def test_tables_made_before_the_roles_are_handed_to_their_part(db):
    with connect(autocommit=True) as c:  # the session user, before any role exists
        c.execute(STAGING_SQL.read_text())
        c.execute("create schema gold")
        c.execute("create table gold.agg_dep_delay_by_date (n int)")
        # a partitioned table with a generated column and a partition (as staging.flights is),
        # and a serial column's sequence, which follows its table
        c.execute("create table staging.parted (year int, n int, "
                  "twice int generated always as (n * 2) stored, id serial) "
                  "partition by list (year)")
        c.execute("create table staging.parted_2018 partition of staging.parted "
                  "for values in (2018)")
    roles.apply()
    with connect(autocommit=True) as c:
        left = c.execute(
            "select n.nspname || '.' || c.relname, pg_get_userbyid(c.relowner) from pg_class c "
            "join pg_namespace n on n.oid = c.relnamespace where n.nspname in ('staging', 'gold') "
            "and c.relkind in ('r', 'p', 'v', 'S') and c.relowner <> n.nspowner").fetchall()
    assert left == []
    with _part("loader") as c:
        c.execute("insert into staging.parted (year, n) values (2018, 21)")
        assert c.execute("select twice from staging.parted").fetchone() == (42,)
        c.execute("drop table staging.parted_2018")  # only an owner may
    with _part("loader") as c:
        c.execute("drop table staging.load_audit")  # only an owner may
        c.execute(STAGING_SQL.read_text())
    with _part("reader") as c:
        assert c.execute("select count(*) from gold.agg_dep_delay_by_date").fetchone() == (0,)
    with connect(autocommit=True) as c:  # session user without SET ROLE, e.g. dbt sans DBT_ROLE
        c.execute("create table gold.made_by_session_user as select 1 as n")
        c.execute("create table silver.made_by_session_user as select 2 as n")
    with _part("reader") as c:
        assert c.execute("select n from gold.made_by_session_user").fetchone() == (1,)
    # the exporter reads silver and gold as the transform part (loaders/export.py): dbt built
    # them as the session user after `make superset` had applied the roles
    with _part("transform") as c:
        assert c.execute("select current_user").fetchone() == ("lakehouse_transform",)
        assert c.execute("select n from gold.made_by_session_user").fetchone() == (1,)
        assert c.execute("select n from silver.made_by_session_user").fetchone() == (2,)


def test_superset_login_is_read_only_and_password_is_stored_hashed(db, monkeypatch):
    monkeypatch.setenv("LAKEHOUSE_SUPERSET_PASSWORD", "only-in-the-environment")
    out = subprocess.run(
        [sys.executable, "-m", "lakehouse.roles", "apply", "--superset-login"],
        check=False, capture_output=True, text=True, cwd=REPO,
    )
    assert out.returncode == 0, out.stderr
    _build_all_parts()
    with connect(autocommit=True) as c:
        stored = c.execute("select rolpassword from pg_authid "
                           "where rolname = 'lakehouse_superset'").fetchone()[0]
        assert stored.startswith("SCRAM-SHA-256$") and "only-in" not in stored
    env = {k: os.environ[k] for k in ("PGHOST", "PGPORT", "PGDATABASE")}
    with psycopg.connect(host=env["PGHOST"], port=env["PGPORT"], dbname=env["PGDATABASE"],
                         user="lakehouse_superset", autocommit=True) as c:
        assert c.execute("select count(*) from gold.daily_delay_anomalies").fetchone() == (1,)
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            c.execute("create temp table t (a int)")
        c.execute("set default_transaction_read_only = off")  # the grants still hold
        with pytest.raises(DENIED):
            c.execute("insert into gold.agg_dep_delay_by_date values (3)")


def test_cli_error_is_one_line(db, monkeypatch):
    monkeypatch.setenv("PGDATABASE", "no_such_database")
    out = subprocess.run([sys.executable, "-m", "lakehouse.roles", "apply"],
                         check=False, capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and "no_such_database" in out.stderr
    assert "PGDATABASE" in out.stderr


def test_part_logins_each_reach_only_their_part(db, monkeypatch):
    """A server's login per part: the owner's credential stays with the init step."""
    for part in roles.LOGIN_PARTS:
        monkeypatch.setenv(f"LAKEHOUSE_{part.upper()}_PASSWORD", f"{part}-only-in-the-env")
    for _ in range(2):  # idempotent, as the compose init runs it on every start
        out = subprocess.run(
            [sys.executable, "-m", "lakehouse.roles", "apply", "--part-logins"],
            check=False, capture_output=True, text=True, cwd=REPO,
        )
        assert out.returncode == 0, out.stderr
    with connect(autocommit=True) as c:
        rows = c.execute(
            "select r.rolname, r.rolcanlogin, r.rolsuper or r.rolcreaterole or r.rolcreatedb, "
            "a.rolpassword, array(select m.roleid::regrole::text from pg_auth_members m "
            "where m.member = r.oid) from pg_roles r join pg_authid a on a.oid = r.oid "
            "where r.rolname like 'lakehouse\\_%\\_login' order by 1").fetchall()
    assert [r[0] for r in rows] == ["lakehouse_loader_login", "lakehouse_ml_login",
                                   "lakehouse_transform_login"]
    for name, can_login, powerful, stored, member_of in rows:
        part = name.removeprefix("lakehouse_").removesuffix("_login")
        assert can_login and not powerful, name
        assert stored.startswith("SCRAM-SHA-256$") and "only-in" not in stored, name
        assert member_of == [roles.PART_ROLES[part]], name
    # Every part's code logs in as its own login when LAKEHOUSE_<PART>_DB_USER is set, and
    # acts as its group role; the owner's PGUSER is then used by nobody.
    for part in roles.LOGIN_PARTS:
        monkeypatch.setenv(f"LAKEHOUSE_{part.upper()}_DB_USER", f"lakehouse_{part}_login")
    _build_all_parts()
    with _part("loader") as c:
        assert c.execute("select session_user").fetchone() == ("lakehouse_loader_login",)
        for stmt in ("select * from gold.agg_dep_delay_by_date",
                     "create table ml.sneaky (a int)", "set role lakehouse_transform"):
            with pytest.raises(DENIED):
                c.execute(stmt)
    with _part("ml") as c:
        assert c.execute("select session_user").fetchone() == ("lakehouse_ml_login",)
        assert c.execute("select count(*) from ml.dep_delay_anomalies").fetchone() == (1,)
        with pytest.raises(DENIED):
            c.execute("select * from staging.load_audit")
    with _part("transform") as c:
        assert c.execute("select session_user").fetchone() == ("lakehouse_transform_login",)
        with pytest.raises(DENIED):
            c.execute("create role sneaky")
    with connect(autocommit=True) as c:
        owners = {r for (r,) in c.execute(
            "select distinct pg_get_userbyid(c.relowner) from pg_class c join pg_namespace n "
            "on n.oid = c.relnamespace where n.nspname in ('staging', 'silver', 'gold', 'ml') "
            "and c.relkind in ('r', 'p', 'v')").fetchall()}
    assert owners == {"lakehouse_loader", "lakehouse_transform", "lakehouse_ml"}
