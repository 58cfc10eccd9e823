"""The loader under the least-privilege roles: it runs as lakehouse_loader and dbt can read.

Roles are cluster-wide (and `warehouse.connect(part=...)` switches to them whenever they
exist), so this runs in a cluster of its own, like tests/test_roles.py.
"""

from __future__ import annotations

import psycopg
import pytest

from lakehouse import roles
from lakehouse.lake import Lake
from lakehouse.warehouse import connect
from loaders.load import load_year
from tests.test_load import DAMAGED


def test_load_and_reload_as_the_loader_role(roles_cluster, monkeypatch, lake):
    env = {**roles_cluster.env(), "PGDATABASE": "load_roles"}
    with psycopg.connect(host=env["PGHOST"], port=env["PGPORT"], user=env["PGUSER"],
                         dbname="postgres", autocommit=True) as admin:
        admin.execute("drop database if exists load_roles")
        admin.execute("create database load_roles")
    monkeypatch.delenv("PGPASSWORD", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    roles.apply()
    with Lake.from_env().open_write("01_bronze/2018.csv") as fh:
        fh.write(DAMAGED)
    load_year(2018)
    second = load_year(2018)  # drops and replaces the partitions the role created
    with connect(autocommit=True) as conn:
        owners = conn.execute(
            "select c.relname, pg_get_userbyid(c.relowner) from pg_class c "
            "join pg_namespace n on n.oid = c.relnamespace where n.nspname = 'staging' "
            "and c.relkind in ('r', 'p') order by 1").fetchall()
    assert {owner for _, owner in owners} == {"lakehouse_loader"}, owners
    with connect(part="transform", autocommit=True) as dbt:
        assert dbt.execute("select current_user").fetchone() == ("lakehouse_transform",)
        assert dbt.execute("select load_id::text, count(*) from staging.flights group by 1"
                           ).fetchall() == [(second.load_id, 8)]
        assert dbt.execute("select count(*) from staging.flights_rejected").fetchone() == (5,)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            dbt.execute("delete from staging.flights")
