"""The bronze format has one definition, `loaders.bronze_format.HEADER`; every other place that
names its columns must agree with it: the generator's header, the staging DDL, the dbt source
(documented columns), the BTS mapping onto staging, and the dbt typing of silver. No database:
the files are read as text, so a column added in one place and forgotten in another fails here
first (docs/loader.md, "How to add a bronze column")."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from loaders import bronze_format, bts_format
from loaders.generate import HEADER as GENERATED_HEADER
from loaders.staging_tables import SCHEMA_SQL

REPO = Path(__file__).resolve().parents[1]
KEY_COLUMNS = ("year", "load_id", "line_no")  # staging's own columns before the bronze ones
DATA_COLUMNS = tuple(c for c in bronze_format.STAGING_COLUMNS if c != "unnamed_27")


def staging_ddl_columns(table: str) -> tuple[str, ...]:
    text = SCHEMA_SQL.read_text()
    body = re.search(rf"create table if not exists staging\.{table} \((.*?)\n\)", text, re.DOTALL)
    assert body, f"no create table staging.{table} in {SCHEMA_SQL}"
    return tuple(line.split()[0] for line in body.group(1).strip().splitlines()
                 if line.strip() and not line.strip().startswith("--"))


def source_columns(table: str) -> tuple[str, ...]:
    sources = yaml.safe_load((REPO / "dbt_project/models/staging/_sources.yml").read_text())
    staging = next(s for s in sources["sources"] if s["name"] == "staging")
    return tuple(c["name"] for c in next(t for t in staging["tables"] if t["name"] == table)["columns"])


def test_the_staging_names_follow_the_header():
    assert bronze_format.FIELDS == len(bronze_format.HEADER) == 28
    assert bronze_format.STAGING_COLUMNS[0] == "fl_date"
    assert bronze_format.STAGING_COLUMNS[-1] == "unnamed_27"


def test_the_generator_writes_exactly_the_header():
    assert GENERATED_HEADER.split(",") == list(bronze_format.HEADER)


def test_the_staging_table_has_every_bronze_column_in_order():
    assert staging_ddl_columns("flights") == (*KEY_COLUMNS, *bronze_format.STAGING_COLUMNS)


def test_the_dbt_source_documents_every_staging_column_in_order():
    assert source_columns("flights") == (*KEY_COLUMNS, *bronze_format.STAGING_COLUMNS)


def test_the_bts_format_fills_every_staging_column_the_kaggle_one_has():
    assert bts_format.STAGING_COLUMNS == DATA_COLUMNS
    assert set(bts_format.STAGING_SOURCE.values()) <= set(bts_format.COLUMNS)


def test_silver_types_every_bronze_column():
    typing = (REPO / "dbt_project/macros/typed_flights.sql").read_text()
    untyped = [c for c in DATA_COLUMNS if not re.search(rf"\b{c}\b", typing)]
    assert not untyped, f"typed_flights.sql never reads {untyped}"
