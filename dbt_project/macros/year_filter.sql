{#- The period being built. From the command line: `--vars '{year: 2018}'` builds one year,
    `--vars '{year: 2019, month: 1}'` one BTS month of it; without the var every year present
    in staging is (re)built. Incremental models replace whole years (or the month), so
    building one period never touches the rows of another.

    Programs that run dbt again and again with a different period (the Airflow DAG,
    bench/bench_month.py) set the environment variables LAKEHOUSE_BUILD_YEAR and
    LAKEHOUSE_BUILD_MONTH instead: dbt re-parses the whole project when `--vars` change
    (dbt-core issues 6323 and 10578; ~5 s here), and these are read only while executing
    (`execute`), never while parsing, so partial parsing survives a new period. That is also
    why nothing read at parse time (a model's `config()`) may depend on the period: the
    models delete the period in a pre_hook (delete_build_period) instead of
    `incremental_predicates`. The period comes from the vars when either var is set (unit tests
    set them in their `overrides`), else from the environment. -#}
{% macro build_period_value(name) -%}
    {%- set from_vars = (var('year', none) | string | trim) not in ('', 'None')
                        or (var('month', none) | string | trim) not in ('', 'None') -%}
    {%- if from_vars or not execute -%}
        {%- set raw = var(name, none) -%}
    {%- else -%}
        {%- set raw = env_var('LAKEHOUSE_BUILD_' ~ (name | upper), '') -%}
    {%- endif -%}
    {{ return(none if raw is none or (raw | string | trim) in ('', 'None') else raw | string | trim) }}
{%- endmacro %}

{% macro build_year() -%}
    {%- set text = build_period_value('year') -%}
    {%- if text is none -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set first, last = var('first_year'), var('last_year') -%}
    {%- if not (text.isdigit() and first <= (text | int) <= last) -%}
        {{ exceptions.raise_compiler_error("var 'year' must be a year " ~ first ~ "-" ~ last ~ " such as 2018, got '" ~ text ~ "': pass --vars '{year: 2018}' (or LAKEHOUSE_BUILD_YEAR=2018)") }}
    {%- endif -%}
    {{ return(text | int) }}
{%- endmacro %}

{#- A WHERE condition restricting `column` to the year being built (or to every year). -#}
{% macro year_condition(column='year') -%}
    {%- set y = build_year() -%}
    {%- if y is none -%} true {%- else -%} {{ column }} = {{ y }} {%- endif -%}
{%- endmacro %}

{#- The BTS month being built: `--vars '{year: 2019, month: 1}'` builds that month of the
    year only (it needs the year var); without it the whole year is built. A month's staging
    lines are line_no month * 100 000 000 + 1, 2, ... (loaders/bts_format.py), so its rows are
    one line_no range in staging and silver, and its days one date range in gold. -#}
{% macro build_month() -%}
    {%- set text = build_period_value('month') -%}
    {%- if text is none -%}
        {{ return(none) }}
    {%- endif -%}
    {%- if not (text.isdigit() and 1 <= (text | int) <= 12) -%}
        {{ exceptions.raise_compiler_error("var 'month' must be a month 1-12, got '" ~ text ~ "': pass --vars '{year: 2019, month: 1}' (or LAKEHOUSE_BUILD_MONTH=1)") }}
    {%- endif -%}
    {%- if build_year() is none -%}
        {{ exceptions.raise_compiler_error("var 'month' needs the year var too: pass --vars '{year: 2019, month: " ~ text ~ "}'") }}
    {%- endif -%}
    {{ return(text | int) }}
{%- endmacro %}

{#- A BTS month's staging lines are month * month_line_base() + 1, 2, ... (MONTH_LINE_BASE in
    loaders/bts_format.py); a yearly file's lines are all below it. -#}
{% macro month_line_base() -%}
    {{ return(100000000) }}
{%- endmacro %}

{% macro month_line_range() -%}
    {%- set m = build_month() -%}
    {{ return(none if m is none else [m * month_line_base(), (m + 1) * month_line_base()]) }}
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

{#- A pre_hook for incremental models that are rebuilt one period at a time: deletes the rows
    of the year being built (every row without the var; with `dates`, a date column, only the
    BTS month's days when a month is built) inside the model's transaction, so the insert that
    follows replaces the period even when it brings no row for it. On the first build (no
    table yet) there is nothing to delete. Rendered when the hook runs, so it sees the period
    of this invocation (see build_period_value). -#}
{% macro delete_build_period(column='year', dates=none) -%}
    {%- if is_incremental() -%}
        delete from {{ this }} where {{ year_condition(column) }}
        {%- if dates is not none %} and {{ month_dates_condition(dates) }}{% endif %}
    {%- else -%}
        select 'first build: nothing to delete'
    {%- endif -%}
{%- endmacro %}
