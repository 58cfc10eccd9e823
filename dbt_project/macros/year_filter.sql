{#- The year being built: `--vars '{year: 2018}'` builds one year; without the var every
    year present in staging is (re)built. Incremental models replace whole years, so building
    year B never touches the rows of year A. -#}
{% macro build_year() -%}
    {%- set raw = var('year', none) -%}
    {%- if raw is none or raw == '' -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set text = raw | string | trim -%}
    {%- if not (text | length == 4 and text.isdigit()) -%}
        {{ exceptions.raise_compiler_error("var 'year' must be a four-digit year such as 2018, got '" ~ raw ~ "': pass --vars '{year: 2018}'") }}
    {%- endif -%}
    {{ return(text | int) }}
{%- endmacro %}

{#- A WHERE condition restricting `column` to the year being built (or to every year). -#}
{% macro year_condition(column='year') -%}
    {%- set y = build_year() -%}
    {%- if y is none -%} true {%- else -%} {{ column }} = {{ y }} {%- endif -%}
{%- endmacro %}

{#- incremental_predicates for the delete+insert of one year (gold): with the year as a
    literal the delete is limited to that year's rows instead of matching the new rows
    against every year the table holds. (The silver models are year partitions instead: see
    materializations/year_partitioned.sql.) -#}
{% macro year_predicates() -%}
    {%- set y = build_year() -%}
    {%- if y is none -%}{{ return([]) }}{%- endif -%}
    {%- set m = build_month() -%}
    {{ return(['DBT_INTERNAL_DEST.year = ' ~ y] if m is none
              else ['DBT_INTERNAL_DEST.year = ' ~ y, month_dates_condition('DBT_INTERNAL_DEST.fl_date')]) }}
{%- endmacro %}


{#- The BTS month being built: `--vars '{year: 2019, month: 1}'` builds that month of the
    year only (it needs the year var); without it the whole year is built. A month's staging
    lines are line_no month * 100 000 000 + 1, 2, ... (loaders/bts_format.py), so its rows are
    one line_no range in staging and silver, and its days one date range in gold. -#}
{% macro build_month() -%}
    {%- set raw = var('month', none) -%}
    {%- if raw is none or raw == '' or (raw | string | trim) in ('', 'None') -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set text = raw | string | trim -%}
    {%- if not (text.isdigit() and 1 <= (text | int) <= 12) -%}
        {{ exceptions.raise_compiler_error("var 'month' must be a month 1-12, got '" ~ raw ~ "': pass --vars '{year: 2019, month: 1}'") }}
    {%- endif -%}
    {%- if build_year() is none -%}
        {{ exceptions.raise_compiler_error("var 'month' needs the year var too: pass --vars '{year: 2019, month: " ~ text ~ "}'") }}
    {%- endif -%}
    {{ return(text | int) }}
{%- endmacro %}

{% macro month_line_range() -%}
    {%- set m = build_month() -%}
    {{ return(none if m is none else [m * 100000000, (m + 1) * 100000000]) }}
{%- endmacro %}

{#- A WHERE condition restricting `column` (a staging/silver line_no) to the month being built. -#}
{% macro month_lines_condition(column='line_no') -%}
    {%- set r = month_line_range() -%}
    {%- if r is none -%} true {%- else -%} ({{ column }} >= {{ r[0] }} and {{ column }} < {{ r[1] }}) {%- endif -%}
{%- endmacro %}

{#- A WHERE condition restricting `column` (a flight date) to the month being built. -#}
{% macro month_dates_condition(column='fl_date') -%}
    {%- set m = build_month() -%}
    {%- if m is none -%} true {%- else -%}
    ({{ column }} >= make_date({{ build_year() }}, {{ m }}, 1) and {{ column }} < make_date({{ build_year() }}, {{ m }}, 1) + interval '1 month')
    {%- endif -%}
{%- endmacro %}

{#- A pre_hook for incremental models that are rebuilt one year at a time: deletes the rows
    of the year being built (every row without the var) inside the model's transaction, so
    the insert that follows replaces the year even when it brings no row for it. On the
    first build (no table yet) there is nothing to delete. -#}
{% macro delete_build_year(column='year') -%}
    {%- if is_incremental() -%}
        delete from {{ this }} where {{ year_condition(column) }}
    {%- else -%}
        select 'first build: nothing to delete'
    {%- endif -%}
{%- endmacro %}
