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

{#- Integers may be written as floats (`1100` or `1100.0`); a fraction makes them invalid.
    Parsing as float8 and checking is cheaper than splitting the text (measured). -#}
{% macro safe_int(col) -%}
    (case when {{ is_decimal(col) }} and length({{ col }}) <= 12 then
        case when {{ col }}::double precision = trunc({{ col }}::double precision)
              and abs({{ col }}::double precision) < 2147483648
             then {{ col }}::double precision::integer
        end
    end)
{%- endmacro %}

{#- `0`/`1`/`0.0`/`1.0` -> boolean. -#}
{% macro safe_flag(col) -%}
    (case when {{ col }} in ('0', '0.0', '0.00') then false
          when {{ col }} in ('1', '1.0', '1.00') then true end)
{%- endmacro %}

{#- A clock time HHMM (`1058`, `1058.0`, `2400.0`) -> minutes after midnight, 0..1440.
    2400 is a real value in the BTS data (midnight at the end of the day): it maps to 1440,
    so `fl_date + minutes` lands on 00:00 of the next day. 1060, 2401, -5 and 12.5 are invalid. -#}
{% macro safe_hhmm_minutes(col) -%}
    (case when {{ is_decimal(col) }} and strpos({{ col }}, '-') = 0 and length({{ col }}) <= 12 then
        case when {{ col }}::double precision <= 2400
              and {{ col }}::double precision = trunc({{ col }}::double precision)
              and {{ col }}::double precision::integer % 100 < 60
             then ({{ col }}::double precision::integer / 100) * 60
                  + {{ col }}::double precision::integer % 100
        end
    end)
{%- endmacro %}

{#- `YYYY-MM-DD` that names a real day (rejects 2018-02-30, 2018-13-01, 0000-01-01).
    Nested CASEs because SQL does not promise the evaluation order of AND. Days 1..28 exist in
    every month, so only the rare days 29..31 need the month-length arithmetic (integer math:
    EXTRACT on dates returns numeric and is several times slower on millions of rows). -#}
{% macro safe_date(col) -%}
    (case when length({{ col }}) = 10
           and translate({{ col }}, '0123456789', '') = '--'
           and substr({{ col }}, 5, 1) = '-' and substr({{ col }}, 8, 1) = '-' then
        case when substr({{ col }}, 6, 2) between '01' and '12'
              and substr({{ col }}, 1, 4) <> '0000'
              and substr({{ col }}, 9, 2) between '01' and '31' then
            case when substr({{ col }}, 9, 2) <= '28'
                   or substr({{ col }}, 9, 2)::integer <= {{ days_in_month('substr(' ~ col ~ ', 1, 4)::integer', 'substr(' ~ col ~ ', 6, 2)::integer') }}
                 then {{ col }}::date
            end
        end
    end)
{%- endmacro %}

{% macro days_in_month(y, m) -%}
    (case when {{ m }} = 2 then
              case when ({{ y }} % 4 = 0 and {{ y }} % 100 <> 0) or {{ y }} % 400 = 0 then 29 else 28 end
          when {{ m }} in (4, 6, 9, 11) then 30
          else 31 end)
{%- endmacro %}

{#- True when the text is present but its typed value came out NULL (i.e. it did not parse). -#}
{% macro is_unparsable(raw, typed) -%}
    ({{ raw }} is not null and {{ typed }} is null)
{%- endmacro %}
