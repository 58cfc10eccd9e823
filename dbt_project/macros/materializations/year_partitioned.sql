{#- `materialized='year_partitioned'`: a table list-partitioned by `year`, one partition per
    year (`<model>_<year>`), replaced whole by each build of that year.

    Why not `incremental` + delete+insert: that writes every row of the year three times (a
    temp table, then the delete, then the insert) and leaves the deleted rows as bloat. Here
    the year is written once, by CREATE TABLE AS into a fresh table (no WAL with
    wal_level=minimal, since the table is new in this transaction), then swapped in: the old
    partition is dropped and the new one attached in the same transaction, so readers see the
    old year or the new one, never a mix, and a failed build leaves the old year in place.

    - `--vars '{year: Y}'`: builds year Y only; other years' partitions are not touched.
    - `--vars '{year: Y, month: M}'` (a BTS month): the model returns that month's rows (its
      line_no range, macros/year_filter.sql). With `month_partitions=true` (silver.flights) the
      year's partition is itself range-partitioned by line_no, one partition per month
      (`<model>_<year>_<MM>`), and the month is swapped in the way a year is; otherwise the
      month's rows replace that range of the year's partition (delete + insert in one
      transaction: right for the small tables of duplicates and rejects).
    - no year var, or `--full-refresh`: rebuilds the whole table from what the model returns
      (one partition per year present), swapped in the same way.
    The model must return a non-null integer `year` column. -#}
{% materialization year_partitioned, adapter='postgres' %}
    {%- set year = build_year() -%}
    {%- set target_relation = this.incorporate(type='table') -%}
    {%- set existing = load_cached_relation(this) -%}
    {%- set grant_config = config.get('grants') -%}

    {{ run_hooks(pre_hooks, inside_transaction=False) }}
    {{ run_hooks(pre_hooks, inside_transaction=True) }}

    {%- set is_partitioned = existing is not none and year_partitioned_relkind(existing) == 'p' -%}
    {%- if existing is not none and not is_partitioned -%}
        {{ log("year_partitioned: " ~ existing ~ " is not a partitioned table (built by an older version); rebuilding it as one. Years other than the ones built now are rebuilt by a build without the year var.", info=True) }}
    {%- endif -%}

    {%- if year is none or should_full_refresh() or not is_partitioned -%}
        {{ year_partitioned_rebuild_all(target_relation, existing, sql) }}
    {%- elif month_line_range() is not none
             and (config.get('month_partitions', false)
                  or year_partitioned_exists(year_partitioned_child(target_relation, year))) -%}
        {{ year_partitioned_replace_month(target_relation, year, month_line_range(), sql) }}
    {%- else -%}
        {{ year_partitioned_replace_year(target_relation, year, sql) }}
    {%- endif -%}

    {% do persist_docs(target_relation, model) %}
    {{ run_hooks(post_hooks, inside_transaction=True) }}
    {% do adapter.commit() %}
    {{ run_hooks(post_hooks, inside_transaction=False) }}
    {% do apply_grants(target_relation, grant_config, should_revoke=True) %}
    {{ return({'relations': [target_relation]}) }}
{% endmaterialization %}


{#- 'p' (partitioned), 'r' (plain table), … or none when `relation` does not exist. -#}
{% macro year_partitioned_relkind(relation) -%}
    {%- set result = run_query("select c.relkind::text from pg_class c where c.oid = to_regclass("
        ~ dbt.string_literal(adapter.quote(relation.schema) ~ "." ~ adapter.quote(relation.identifier)) ~ ")") -%}
    {{ return(result.rows[0][0] if result.rows | length > 0 else none) }}
{%- endmacro %}


{% macro year_partitioned_exists(relation) -%}
    {%- set result = run_query("select to_regclass(" ~ dbt.string_literal(
        adapter.quote(relation.schema) ~ "." ~ adapter.quote(relation.identifier)) ~ ") is not null") -%}
    {{ return(result.rows[0][0]) }}
{%- endmacro %}


{#- A table beside `parent` named `<parent><suffix>`. -#}
{% macro year_partitioned_sibling(parent, suffix) -%}
    {{ return(api.Relation.create(database=parent.database, schema=parent.schema,
                                  identifier=parent.identifier ~ suffix, type='table')) }}
{%- endmacro %}


{% macro year_partitioned_child(parent, year, suffix='') -%}
    {{ return(year_partitioned_sibling(parent, '_' ~ year ~ suffix)) }}
{%- endmacro %}


{#- The model's rows for year Y built into a new sibling table (suffix `suffix`) whose columns
    are checked against the partitioned table's; returns that table. -#}
{% macro year_partitioned_stage(target, year, suffix, sql) -%}
    {%- set staged = year_partitioned_child(target, year, suffix) -%}
    {% call statement('main') -%}
        drop table if exists {{ staged }};
        {{ year_partitioned_create_table_as(staged, sql) }}
    {%- endcall %}
    {{ year_partitioned_check_columns(target, staged) }}
    {{ return(staged) }}
{%- endmacro %}


{#- Build year Y into a new table, check it holds only Y, and swap it in as the partition. -#}
{% macro year_partitioned_replace_year(target, year, sql) -%}
    {%- set staged = year_partitioned_stage(target, year, '__dbt_new', sql) -%}
    {%- set partition = year_partitioned_child(target, year) -%}
    {% call statement('swap_partition') -%}
        -- A named constraint checks the rows are all year {{ year }} (the error names it) and
        -- lets ATTACH PARTITION skip its own validation scan.
        -- (CHECK constraint names are per table, so it can carry its final name already.)
        alter table {{ staged }} add constraint {{ adapter.quote(partition.identifier ~ '_year') }}
            check (year is not null and year = {{ year }});
        drop table if exists {{ partition }};
        alter table {{ staged }} rename to {{ adapter.quote(partition.identifier) }};
        alter table {{ target }} attach partition {{ partition }} for values in ({{ year }});
    {%- endcall %}
    {% call statement('analyze_partition') -%}
        analyze {{ partition }};
    {%- endcall %}
{%- endmacro %}


{#- Build a month (the model's rows of line_no range [first, end)) into a new table, then put
    it in place of that range of the year: as the year's month partition (`month_partitions`),
    else by delete + insert into the year's partition. -#}
{% macro year_partitioned_replace_month(target, year, lines, sql) -%}
    {%- set staged = year_partitioned_stage(target, year, '__dbt_month', sql) -%}
    {%- set partition = year_partitioned_child(target, year) -%}
    {%- if config.get('month_partitions', false) -%}
        {{ year_partitioned_swap_month(target, year, lines, staged) }}
    {%- else -%}
        {% call statement('replace_month') -%}
            delete from {{ partition }} where line_no >= {{ lines[0] }} and line_no < {{ lines[1] }};
            insert into {{ partition }} select * from {{ staged }};
            drop table {{ staged }};
            analyze {{ partition }};
        {%- endcall %}
    {%- endif -%}
{%- endmacro %}


{#- `month_partitions`: the month built in `staged` becomes partition `<model>_<Y>_<MM>` of the
    year's partition, which is range-partitioned by line_no (a month's lines are
    M * 100 000 000 + 1, 2, …; loaders/bts_format.py). A month costs one write of its rows,
    like a year: measured by `make bench-month` (docs/bts.md), where delete + insert into the
    year's table wrote the month twice and maintained the year's indexes. A year built whole
    (`--vars '{year: Y}'`) is one plain partition; the first month built into it lays the year
    out as months once (year_partitioned_split_months). -#}
{% macro year_partitioned_swap_month(target, year, lines, staged) -%}
    {%- set partition = year_partitioned_child(target, year) -%}
    {%- set month_partition = year_partitioned_child(target, year, '_' ~ ('%02d' | format(lines[0] // 100000000))) -%}
    {%- set kind = year_partitioned_relkind(partition) -%}
    {%- if kind is none -%}
        {% call statement('create_year_of_months') -%}
            create table {{ partition }} partition of {{ target }} for values in ({{ year }})
                partition by range (line_no);
            {{ year_partitioned_month_indexes(partition) }}
        {%- endcall %}
    {%- elif kind != 'p' -%}
        {{ year_partitioned_split_months(target, year, partition) }}
    {%- endif -%}
    {% call statement('swap_month') -%}
        -- The named CHECK proves the rows belong to this year and month (the error names it) and
        -- lets ATTACH PARTITION skip its validation scan; ATTACH builds the year's indexes on it.
        alter table {{ staged }} add constraint {{ adapter.quote(month_partition.identifier ~ '_lines') }}
            check (year is not null and year = {{ year }} and line_no is not null
                   and line_no >= {{ lines[0] }} and line_no < {{ lines[1] }});
        drop table if exists {{ month_partition }};
        alter table {{ staged }} rename to {{ adapter.quote(month_partition.identifier) }};
        alter table {{ partition }} attach partition {{ month_partition }}
            for values from ({{ lines[0] }}) to ({{ lines[1] }});
        analyze {{ month_partition }};
    {%- endcall %}
{%- endmacro %}


{#- Lay a year built whole (one plain partition) out as month partitions, once: its rows are
    copied into a new range-partitioned year partition with one partition per month, except the
    month being built (swapped in next). A year that also holds yearly (Kaggle) lines cannot be
    laid out by month: it is rebuilt whole (a month build then says so). -#}
{% macro year_partitioned_split_months(target, year, partition) -%}
    {%- set whole = year_partitioned_child(target, year, '__dbt_whole') -%}
    {%- set probe = run_query("select coalesce(min(line_no) >= " ~ month_line_base() ~ ", true) from " ~ partition) -%}
    {%- if not probe.rows[0][0] -%}
        {{ exceptions.raise_compiler_error(
            partition ~ " holds yearly (Kaggle) lines: it cannot take a BTS month. Build the "
            ~ "whole year instead (`dbt build --vars '{year: " ~ year ~ "}'`).") }}
    {%- endif -%}
    {{ log("year_partitioned: laying " ~ partition ~ " out as month partitions (once per year built whole)", info=True) }}
    {% call statement('split_months') -%}
        drop table if exists {{ whole }};
        alter table {{ target }} detach partition {{ partition }};
        alter table {{ partition }} rename to {{ adapter.quote(whole.identifier) }};
        create table {{ partition }} partition of {{ target }} for values in ({{ year }})
            partition by range (line_no);
        {%- for m in range(1, 13) %}
        create table {{ year_partitioned_child(target, year, '_' ~ ('%02d' | format(m))) }}
            partition of {{ partition }}
            for values from ({{ m * month_line_base() }}) to ({{ (m + 1) * month_line_base() }});
        {%- endfor %}
        insert into {{ partition }} select * from {{ whole }};
        drop table {{ whole }};
        {{ year_partitioned_month_indexes(partition) }}
    {%- endcall %}
{%- endmacro %}


{#- CREATE TABLE `relation` AS the model's SELECT; a model configured with
    `plain_casts_first=true` tries plain casts first (macros/safe_casts.sql). -#}
{% macro year_partitioned_create_table_as(relation, sql) -%}
    {%- if config.get('plain_casts_first', false) -%}
        {{ create_table_as_plain_casts_first(relation, sql) }}
    {%- else -%}
        create table {{ relation }} as (
            {{ sql }}
        );
    {%- endif -%}
{%- endmacro %}


{#- A year's new partition must have exactly the parent's columns; a changed model needs a
    full rebuild, which a year build cannot do without rewriting the other years. -#}
{% macro year_partitioned_check_columns(target, staged) -%}
    {%- set have, new = [], [] -%}
    {%- for col in adapter.get_columns_in_relation(target) %}{% do have.append(col.name ~ ' ' ~ col.data_type) %}{% endfor -%}
    {%- for col in adapter.get_columns_in_relation(staged) %}{% do new.append(col.name ~ ' ' ~ col.data_type) %}{% endfor -%}
    {%- if have != new -%}
        {{ exceptions.raise_compiler_error(
            target ~ " has columns " ~ have ~ " but the model now returns " ~ new
            ~ ": rebuild every year once with `dbt build --full-refresh --select "
            ~ model.name ~ "+` (without the year var), then year builds work again.") }}
    {%- endif -%}
{%- endmacro %}


{#- Build everything the model returns into a new partitioned table and swap it for the old. -#}
{% macro year_partitioned_rebuild_all(target, existing, sql) -%}
    {%- set staged_all = year_partitioned_sibling(target, '__dbt_all') -%}
    {%- set staged_parent = year_partitioned_sibling(target, '__dbt_new') -%}
    {% call statement('main') -%}
        drop table if exists {{ staged_all }};
        drop table if exists {{ staged_parent }} cascade;
        {{ year_partitioned_create_table_as(staged_all, sql) }}
    {%- endcall %}
    {%- set years = run_query("select distinct year from " ~ staged_all ~ " order by 1").columns[0].values() -%}
    {%- for y in years %}
    {%- if y is none %}{{ exceptions.raise_compiler_error(model.name ~ " returned rows with a NULL year") }}{% endif %}
    {%- endfor %}
    {% call statement('rebuild_all') -%}
        create table {{ staged_parent }} (like {{ staged_all }}) partition by list (year);
        {%- if years | length == 1 %}
        {%- set y = years[0] %}
        {%- set staged_child = year_partitioned_child(target, y, '__dbt_new') %}
        -- One year (a first build, or a table holding one year): the table built above becomes
        -- that year's partition as it is, instead of being copied into a new one (7.2 M rows:
        -- 10 s saved). The named CHECK lets ATTACH PARTITION skip its validation scan.
        drop table if exists {{ staged_child }};
        alter table {{ staged_all }} add constraint {{ adapter.quote(target.identifier ~ '_' ~ y ~ '_year') }}
            check (year is not null and year = {{ y }});
        alter table {{ staged_all }} rename to {{ adapter.quote(staged_child.identifier) }};
        alter table {{ staged_parent }} attach partition {{ staged_child }} for values in ({{ y }});
        {%- else %}
        {%- for y in years %}
        drop table if exists {{ year_partitioned_child(target, y, '__dbt_new') }};
        create table {{ year_partitioned_child(target, y, '__dbt_new') }}
            partition of {{ staged_parent }} for values in ({{ y }});
        {%- endfor %}
        insert into {{ staged_parent }} select * from {{ staged_all }};
        drop table {{ staged_all }};
        {%- endif %}
        {%- if existing is not none %}
        drop table {{ existing }} cascade;
        {%- endif %}
        alter table {{ staged_parent }} rename to {{ adapter.quote(target.identifier) }};
        {%- for y in years %}
        alter table {{ year_partitioned_child(target, y, '__dbt_new') }}
            rename to {{ adapter.quote(target.identifier ~ '_' ~ y) }};
        {%- endfor %}
    {%- endcall %}
    {% call statement('analyze_all') -%}
        analyze {{ target }};
    {%- endcall %}
{%- endmacro %}


{#- `month_indexes` (a model config: columns): indexes on a year laid out as month partitions
    (every month partition gets them when attached), for reads of a month that do not go by
    line_no: gold reads a month's flights by fl_date. A year built whole gets none. -#}
{% macro year_partitioned_month_indexes(partition) -%}
    {%- for column in config.get('month_indexes', []) %}
    create index on {{ partition }} ({{ adapter.quote(column) }});
    {%- endfor %}
{%- endmacro %}
