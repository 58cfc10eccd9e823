{#- Casts that never raise: a value that does not parse becomes NULL, and `is_unparsable`
    tells the models why, so a bad token (`N/A`, `#VALUE!`, `2018-02-30`) is reported instead
    of failing the whole build or vanishing. PostgreSQL 15 has no pg_input_is_valid(), so the
    checks are written out; `translate` is used instead of a regex because it is about twice
    as fast on 7 M rows x 17 columns (measured). Inputs are already trimmed, '' -> NULL. -#}

{#- A plain decimal: optional leading '-', digits, at most one '.', at least one digit. -#}
{% macro is_decimal(col) -%}
    (translate({{ col }}, '0123456789', '') in ('', '.', '-', '-.')
     and strpos({{ col }}, '-') <= 1
     and {{ col }} not in ('-', '.', '-.')
     and length({{ col }}) <= 30)
{%- endmacro %}

{% macro safe_float(col) -%}
    (case when {{ is_decimal(col) }} then {{ col }}::double precision end)
{%- endmacro %}

{#- Integers may be written as floats (`1100` or `1100.0`); a fraction makes them invalid. -#}
{% macro is_integral(col) -%}
    ({{ is_decimal(col) }} and length({{ col }}) <= 12
     and split_part({{ col }}, '.', 1) not in ('', '-')
     and rtrim(split_part({{ col }}, '.', 2), '0') = '')
{%- endmacro %}

{% macro safe_int(col) -%}
    (case when {{ is_integral(col) }} then split_part({{ col }}, '.', 1)::integer end)
{%- endmacro %}

{#- `0`/`1`/`0.0`/`1.0` -> boolean. -#}
{% macro safe_flag(col) -%}
    (case when {{ col }} in ('0', '0.0', '0.00') then false
          when {{ col }} in ('1', '1.0', '1.00') then true end)
{%- endmacro %}

{#- A clock time HHMM (`1058`, `1058.0`, `2400.0`) -> minutes after midnight, 0..1440.
    2400 is a real value in the BTS data (midnight at the end of the day): it maps to 1440,
    so `fl_date + minutes` lands on 00:00 of the next day. -#}
{% macro safe_hhmm_minutes(col) -%}
    (case when {{ is_integral(col) }} and strpos({{ col }}, '-') = 0 then
        case when split_part({{ col }}, '.', 1)::integer <= 2400
              and split_part({{ col }}, '.', 1)::integer % 100 < 60
             then (split_part({{ col }}, '.', 1)::integer / 100) * 60
                  + split_part({{ col }}, '.', 1)::integer % 100
        end
    end)
{%- endmacro %}

{#- `YYYY-MM-DD` that names a real day (rejects 2018-02-30, 2018-13-01, 0000-01-01).
    Nested CASEs because SQL does not promise the evaluation order of AND, and make_date
    raises on a bad month. -#}
{% macro safe_date(col) -%}
    (case when length({{ col }}) = 10
           and translate({{ col }}, '0123456789', '') = '--'
           and substr({{ col }}, 5, 1) = '-' and substr({{ col }}, 8, 1) = '-' then
        case when substr({{ col }}, 6, 2)::integer between 1 and 12
              and substr({{ col }}, 1, 4)::integer >= 1 then
            case when substr({{ col }}, 9, 2)::integer between 1 and extract(day from
                      make_date(substr({{ col }}, 1, 4)::integer, substr({{ col }}, 6, 2)::integer, 1)
                      + interval '1 month' - interval '1 day')
                 then {{ col }}::date
            end
        end
    end)
{%- endmacro %}

{#- True when the text is present but its typed value came out NULL (i.e. it did not parse). -#}
{% macro is_unparsable(raw, typed) -%}
    ({{ raw }} is not null and {{ typed }} is null)
{%- endmacro %}
