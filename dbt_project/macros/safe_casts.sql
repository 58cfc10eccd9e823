{#- Casts that never raise: a value that does not parse becomes NULL, and `is_unparsable`
    tells the models why, so a bad token (`N/A`, `#VALUE!`, `2018-02-30`) is reported instead
    of failing the whole build or vanishing.

    Two ways to the same result. PostgreSQL 15 has no pg_input_is_valid(), so a guard must
    prove a text parses before it is cast, and a guard (regex or translate) costs ~2 s of CPU
    per column on a 7.2 M-row year: ~50 s for the 21 numeric and date columns, most of
    silver's cost (measured). Real files are clean nearly always, so `plain_casts_check()`
    (a pre-hook) first casts every value of the year plainly in one aggregate (~4 s on 7.2 M
    rows); when nothing raises it sets `lakehouse.plain_casts` for the build's transaction and
    the casts below skip their guards. One value that does not parse sends the whole year down
    the guarded path, which gives the same values.

    Policy for numbers: what PostgreSQL's float8 input reads in decimal notation (optional
    surrounding spaces, sign, fraction, an exponent of at most 2 digits), finite, at most 30 bytes
    (= characters, for digits); NaN and Infinity are invalid. The plain path also reads what the C library
    adds (hex such as 0x1A, 3-digit exponents); the guarded path does not, so those two
    exotic forms are the only values the paths could type differently (neither occurs in BTS
    files). Dates: exactly YYYY-MM-DD naming a real day in both paths. Inputs are already
    '' -> NULL (the loader's COPY makes empty fields NULL). -#}

{#- Columns typed with safe_float (times and the flight number become numbers first). Every
    column typed_flights reads with safe_float must be listed: plain_casts_check only
    vouches for these, and an unlisted bad value would make the plain path raise. -#}
{% macro numeric_fields() -%}
    {{ return(['op_carrier_fl_num', 'crs_dep_time', 'dep_time', 'dep_delay', 'taxi_out',
               'wheels_off', 'wheels_on', 'taxi_in', 'crs_arr_time', 'arr_time', 'arr_delay',
               'crs_elapsed_time', 'actual_elapsed_time', 'air_time', 'distance',
               'carrier_delay', 'weather_delay', 'nas_delay', 'security_delay',
               'late_aircraft_delay']) }}
{%- endmacro %}

{#- True when plain casts are safe for this build (set by plain_casts_check). -#}
{% macro plain_casts_setting() -%}
    coalesce(current_setting('lakehouse.plain_casts', true), '') = 'on'
{%- endmacro %}

{#- Pre-hook: cast every numeric and date value of the year(s) being built, plainly; if
    nothing raises, plain casts are safe for this build (the setting ends with the
    transaction). DateStyle ISO makes date::text the canonical YYYY-MM-DD the date check
    compares with. -#}
{% macro plain_casts_check() -%}
    set local datestyle = 'ISO, MDY';
    set local lakehouse.plain_casts = 'off';
    do $plain_casts_check$
    begin
        perform count({{ adapter.quote('fl_date') }}::date)
            {%- for col in numeric_fields() %}, count({{ adapter.quote(col) }}::double precision){% endfor %}
        from {{ source('staging', 'flights') }}
        where {{ year_condition() }};
        perform set_config('lakehouse.plain_casts', 'on', true);
    exception when data_exception then
        raise notice 'a numeric or date value does not parse: guarded casts for every value';
    end
    $plain_casts_check$
{%- endmacro %}

{#- A decimal number -> double precision, or NULL; NaN/Infinity are removed by `finite`
    (in the CTE above, so the cast runs once). -#}
{% macro safe_float(col, plain) -%}
    (case when {{ plain }} then
              case when octet_length({{ col }}) <= 30 then {{ col }}::double precision end
          when {{ col }} ~ '^\s*[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]{1,2})?\s*$'
               and octet_length({{ col }}) <= 30
              then {{ col }}::double precision
     end)
{%- endmacro %}

{% macro finite(value) -%}
    (case when {{ value }} > '-Infinity' and {{ value }} < 'Infinity' then {{ value }} end)
{%- endmacro %}

{#- From a safe_float value: an integer (1100 and 1100.0 both; a fraction is invalid). -#}
{% macro float_to_int(value) -%}
    (case when {{ value }} = trunc({{ value }}) and abs({{ value }}) < 2147483648
          then {{ value }}::integer end)
{%- endmacro %}

{#- From a safe_float value: a clock time HHMM (`1058`, `0552`, `1058.0`, `2400.0`) -> the
    integer HHMM, or NULL. 2400 is a real value in the BTS data (midnight at the end of the
    day); 1060, 2401, -5 and 12.5 are invalid. The value stays HHMM (what silver shows) and
    only the columns that need minutes convert it (hhmm_to_minutes): six clock columns per row
    make this one of the typing's hot spots, so it does the fewest operations that decide. -#}
{% macro float_to_hhmm(value) -%}
    (case when {{ value }} >= 0 and {{ value }} <= 2400 and {{ value }} = trunc({{ value }})
               and {{ value }}::integer % 100 < 60
          then {{ value }}::integer end)
{%- endmacro %}

{#- A valid HHMM integer -> minutes after midnight, 0..1440 (2400 -> 1440, so
    `fl_date + minutes` lands on 00:00 of the next day). -#}
{% macro hhmm_to_minutes(hhmm) -%}
    ({{ hhmm }} / 100 * 60 + {{ hhmm }} % 100)
{%- endmacro %}

{#- `0`/`1`/`0.0`/`1.0` -> boolean. -#}
{% macro safe_flag(col) -%}
    (case when {{ col }} in ('0', '0.0', '0.00') then false
          when {{ col }} in ('1', '1.0', '1.00') then true end)
{%- endmacro %}

{#- `YYYY-MM-DD` that names a real day (rejects 2018-02-30, 2018-13-01, 0000-01-01).
    Plain path: the cast, kept only if it prints back as the text (DateStyle ISO is set by
    the pre-hook that enables the plain path), so `2018-1-1`, `20180101` and ` 2018-01-01`, which the date input
    function also reads, are not dates here either. Guarded path: the shape by translate(),
    then days 1..28 exist in every month, so only the rare days 29..31 need the month-length
    arithmetic. Nested CASEs because SQL does not promise the evaluation order of AND. -#}
{% macro safe_date(col, plain) -%}
    (case when {{ plain }} then
         case when octet_length({{ col }}) = 10 and {{ col }}::date::text = {{ col }} then {{ col }}::date end
          when octet_length({{ col }}) = 10
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

{#- A carrier (2) or airport (3) code: upper-case letters and digits. -#}
{% macro safe_code(col, length) -%}
    (case when {{ col }} ~ {{ "'^[A-Z0-9]{" ~ length ~ "}$'" }} then {{ col }} end)
{%- endmacro %}

{#- True when the text is present but its typed value came out NULL (i.e. it did not parse). -#}
{% macro is_unparsable(raw, typed) -%}
    ({{ raw }} is not null and {{ typed }} is null)
{%- endmacro %}
