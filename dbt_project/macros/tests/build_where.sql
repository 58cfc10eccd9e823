{#- Every data test checks what the build built, and no more: with `--vars '{year: Y}'` the
    rows of year Y, with `{year: Y, month: M}` that month's rows (its line_no range where the
    tested relation has line_no, as staging and silver do, else its days by fl_date, as gold
    does); without the year var, every row. This override of dbt's get_where_subquery (the
    wrapper dbt puts around the model of every generic test) adds that condition to the
    test's own `where` config, so no test declares it and none scans the years or months it
    did not build: a month's tests cost the month, not the year.
    A relation without a year column (a seed) is tested whole. -#}
{% macro postgres__get_where_subquery(relation) -%}
    {%- if not execute -%}{% do return(relation) %}{%- endif -%}
    {%- set conditions = [] -%}
    {%- set where = config.get('where', '') -%}
    {%- if where %}{% do conditions.append('(' ~ where ~ ')') %}{% endif -%}
    {%- set build = build_where(relation) -%}
    {%- if build %}{% do conditions.append(build) %}{% endif -%}
    {%- if conditions -%}
        {% do return('(select * from ' ~ relation ~ ' where ' ~ conditions | join(' and ') ~ ') dbt_subquery') %}
    {%- else -%}
        {% do return(relation) %}
    {%- endif -%}
{%- endmacro %}


{#- The condition restricting `relation` to the year/month being built ('' for every row). -#}
{% macro build_where(relation) -%}
    {%- if build_year() is none -%}{{ return('') }}{%- endif -%}
    {%- set names = adapter.get_columns_in_relation(relation) | map(attribute='name') | list -%}
    {%- if 'year' not in names -%}{{ return('') }}{%- endif -%}
    {%- set parts = [year_condition('year')] -%}
    {%- if build_month() is not none -%}
        {%- if 'line_no' in names -%}
            {%- do parts.append(month_lines_condition('line_no')) -%}
        {%- elif 'fl_date' in names -%}
            {%- do parts.append(month_dates_condition('fl_date')) -%}
        {%- endif -%}
    {%- endif -%}
    {{ return(parts | join(' and ')) }}
{%- endmacro %}
