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
    {{ return([] if y is none else ['DBT_INTERNAL_DEST.year = ' ~ y]) }}
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
