{#- Casts that never raise: a value that does not parse becomes NULL, and `is_unparsable`
    tells the models why, so a bad token (`N/A`, `#VALUE!`, `2018-02-30`) is reported instead
    of failing the whole build or vanishing.

    Two ways to the same result. PostgreSQL 15 has no pg_input_is_valid(), so a guard must
    prove a text parses before it is cast, and a guard (regex or translate) costs ~2 s of CPU
    per column on a 7.2 M-row year: ~50 s for the 21 numeric and date columns, most of
    silver's cost (measured). Real files are clean nearly always, so silver.flights is built
    with `lakehouse.plain_casts` on first, where the casts below skip their guards
    (create_table_as_plain_casts_first); one value that does not parse raises, and the whole
    year is built again down the guarded path, which gives the same values.

    Policy for numbers: what PostgreSQL's float8 input reads in decimal notation (optional
    surrounding spaces, sign, fraction, an exponent of at most 2 digits), finite, at most 30 bytes
    (= characters, for digits); NaN and Infinity are invalid. The plain path also reads what the C library
    adds (hex such as 0x1A, 3-digit exponents); the guarded path does not, so those two
    exotic forms are the only values the paths could type differently (neither occurs in BTS
    files). Dates: exactly YYYY-MM-DD naming a real day in both paths. Inputs are already
    '' -> NULL (the loader's COPY makes empty fields NULL). -#}

{#- True while a build tries plain casts (create_table_as_plain_casts_first). -#}
{% macro plain_casts_setting() -%}
    coalesce(current_setting('lakehouse.plain_casts', true), '') = 'on'
{%- endmacro %}

{#- CREATE TABLE `relation` AS `sql`, with plain casts first. The plain attempt runs in a
    PL/pgSQL block (a subtransaction; the CREATE TABLE AS still runs in parallel there): if a
    value does not parse, the cast raises, the block rolls the half-built table back and
    builds it again with every guard on, which types every value the same way. A clean year
    (nearly always) thus pays its casts once; a dirty one pays the aborted attempt on top of
    the guarded build. Deciding up front instead (a pre-hook casting every value once) costs
    ~4 s of a 7.2 M-row year's silver.flights (measured). DateStyle ISO makes date::text the
    canonical YYYY-MM-DD the date check compares with. -#}
{% macro create_table_as_plain_casts_first(relation, sql) -%}
    {%- set tag = '$lakehouse_plain_casts_first$' -%}
    {%- for quote in [tag, '$plain_casts_first$'] if quote in sql -%}
        {{ exceptions.raise_compiler_error(model.name ~ " contains " ~ quote ~ ", which quotes its SQL in create_table_as_plain_casts_first") }}
    {%- endfor -%}
    set local datestyle = 'ISO, MDY';
    do $plain_casts_first$
    declare
        create_as constant text := {{ tag }}create table {{ relation }} as (
            {{ sql }}
        ){{ tag }};
    begin
        perform set_config('lakehouse.plain_casts', 'on', true);
        execute create_as;
    exception when data_exception then
        raise notice 'a numeric or date value does not parse (%): guarded casts for every value', sqlerrm;
        perform set_config('lakehouse.plain_casts', 'off', true);
        execute create_as;
    end
    $plain_casts_first$;
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
