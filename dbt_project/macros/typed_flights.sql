{#- The typed flights of a staging.flights row set: one SELECT over the relation (or CTE)
    named `source_relation`, layered as nested subqueries `renamed`, `typed`, `converted`,
    `checked` and the final projection. Shared by silver.stg_flights (every row of the year)
    and silver.flights_rejected (only the rows silver.flights did not take), so one definition
    decides what is accepted and why the rest is not.

    Why nested subqueries and not CTEs: `renamed` and `typed` must stay separate plan levels
    (each guarded cast then runs once per row; flattened, every reference to a typed column
    repeats its cast, ~3x slower) while still running in the parallel workers. A volatile call
    in a subquery's select list is what stops PostgreSQL from flattening it, and
    clock_timestamp() is volatile, parallel safe and nearly free. But PostgreSQL materializes,
    serially, any CTE that contains a volatile call, so these layers cannot be CTEs, and a
    model must read this SELECT (or the stg_flights view) from its main query, not from a CTE.
    Measured on 7.2 M rows (silver.flights, parallel): 21.4 s, against 37.5 s with
    set-returning-function fences (generate_series / unnest), whose ProjectSet nodes evaluate
    each of ~60 columns as a separate expression. -#}
{% macro typed_flights(source_relation) -%}
{%- set renamed %}
    -- Numeric fields are not NULLIF'ed: the loader's COPY already makes empty fields NULL, and
    -- a NULLIF here would be re-evaluated at every one of the value's uses in the casts below.
    select
        year as load_year,
        load_id,
        line_no,
        nullif(fl_date, '') as fl_date,
        nullif(op_carrier, '') as op_carrier,
        op_carrier_fl_num,
        nullif(origin, '') as origin,
        nullif(dest, '') as dest,
        crs_dep_time,
        dep_time,
        dep_delay,
        taxi_out,
        wheels_off,
        wheels_on,
        taxi_in,
        crs_arr_time,
        arr_time,
        arr_delay,
        nullif(cancelled, '') as cancelled,
        nullif(cancellation_code, '') as cancellation_code,
        nullif(diverted, '') as diverted,
        crs_elapsed_time,
        actual_elapsed_time,
        air_time,
        distance,
        carrier_delay,
        weather_delay,
        nas_delay,
        security_delay,
        late_aircraft_delay,
        -- Read once per row here (the fence keeps it a column for `typed`); as a scalar
        -- subquery (an InitPlan) it kept the layers above out of the parallel workers, and
        -- inlined it would be re-evaluated at each of its ~20 uses.
        {{ plain_casts_setting() }} as plain_casts,
        {{ subquery_fence() }} as renamed_fence
    from {{ source_relation }}
{%- endset %}

{%- set typed %}
    select
        load_year,
        load_id,
        line_no,
        {{ safe_date('fl_date', 'plain_casts') }} as fl_date,
        {{ safe_code('op_carrier', 2) }} as op_carrier,
        {{ safe_float('op_carrier_fl_num', 'plain_casts') }} as op_carrier_fl_num_number,
        {{ safe_code('origin', 3) }} as origin,
        {{ safe_code('dest', 3) }} as dest,
        {{ safe_float('crs_dep_time', 'plain_casts') }} as crs_dep_time_number,
        {{ safe_float('dep_time', 'plain_casts') }} as dep_time_number,
        {{ safe_float('dep_delay', 'plain_casts') }} as dep_delay_number,
        {{ safe_float('taxi_out', 'plain_casts') }} as taxi_out_number,
        {{ safe_float('wheels_off', 'plain_casts') }} as wheels_off_number,
        {{ safe_float('wheels_on', 'plain_casts') }} as wheels_on_number,
        {{ safe_float('taxi_in', 'plain_casts') }} as taxi_in_number,
        {{ safe_float('crs_arr_time', 'plain_casts') }} as crs_arr_time_number,
        {{ safe_float('arr_time', 'plain_casts') }} as arr_time_number,
        {{ safe_float('arr_delay', 'plain_casts') }} as arr_delay_number,
        {{ safe_flag('cancelled') }} as is_cancelled,
        case when cancellation_code in ('A', 'B', 'C', 'D') then cancellation_code end
            as cancellation_code,
        {{ safe_flag('diverted') }} as is_diverted,
        {{ safe_float('crs_elapsed_time', 'plain_casts') }} as crs_elapsed_time_number,
        {{ safe_float('actual_elapsed_time', 'plain_casts') }} as actual_elapsed_time_number,
        {{ safe_float('air_time', 'plain_casts') }} as air_time_number,
        {{ safe_float('distance', 'plain_casts') }} as distance_number,
        {{ safe_float('carrier_delay', 'plain_casts') }} as carrier_delay_number,
        {{ safe_float('weather_delay', 'plain_casts') }} as weather_delay_number,
        {{ safe_float('nas_delay', 'plain_casts') }} as nas_delay_number,
        {{ safe_float('security_delay', 'plain_casts') }} as security_delay_number,
        {{ safe_float('late_aircraft_delay', 'plain_casts') }} as late_aircraft_delay_number,
        -- the raw text, kept so rejects and cast warnings can say what was there
        fl_date as fl_date_raw,
        op_carrier as op_carrier_raw,
        op_carrier_fl_num as op_carrier_fl_num_raw,
        origin as origin_raw,
        dest as dest_raw,
        crs_dep_time as crs_dep_time_raw,
        dep_time as dep_time_raw,
        dep_delay as dep_delay_raw,
        taxi_out as taxi_out_raw,
        wheels_off as wheels_off_raw,
        wheels_on as wheels_on_raw,
        taxi_in as taxi_in_raw,
        crs_arr_time as crs_arr_time_raw,
        arr_time as arr_time_raw,
        arr_delay as arr_delay_raw,
        cancelled as cancelled_raw,
        cancellation_code as cancellation_code_raw,
        diverted as diverted_raw,
        crs_elapsed_time as crs_elapsed_time_raw,
        actual_elapsed_time as actual_elapsed_time_raw,
        air_time as air_time_raw,
        distance as distance_raw,
        carrier_delay as carrier_delay_raw,
        weather_delay as weather_delay_raw,
        nas_delay as nas_delay_raw,
        security_delay as security_delay_raw,
        late_aircraft_delay as late_aircraft_delay_raw,
        plain_casts,
        -- The days the line's file covers: its load year (a yearly file), or its month (a BTS
        -- monthly file: macros/year_filter.sql, month_line_base). Every accepted flight is in
        -- its file's period, so a month's flights are its line range.
        {{ load_period_start() }} as period_start,
        case when line_no >= {{ month_line_base() }}
             then ({{ load_period_start() }} + interval '1 month')::date
             else make_date(load_year + 1, 1, 1) end as period_end,
        -- Keeps this layer from being flattened into the ones above (see the macro's comment).
        -- OFFSET 0 would fence too, but it pins everything above it to the leader process.
        {{ subquery_fence() }} as typed_fence
    from ({{ renamed }}) as renamed
{%- endset %}

{%- set converted %}
    -- Everything read above is a Var here, so these rules are cheap arithmetic on values
    -- computed once: NaN/Infinity out, clock times checked as HHMM, the flight number to an
    -- integer.
    select
        *,
        {{ float_to_int('op_carrier_fl_num_number') }} as op_carrier_fl_num,
        {%- for col in ['crs_dep_time', 'dep_time', 'wheels_off', 'wheels_on', 'crs_arr_time', 'arr_time'] %}
        {{ float_to_hhmm(col ~ '_number') }} as {{ col }}_hhmm,
        {%- endfor %}
        {%- for col in ['dep_delay', 'taxi_out', 'taxi_in', 'arr_delay', 'crs_elapsed_time', 'actual_elapsed_time', 'air_time', 'distance', 'carrier_delay', 'weather_delay', 'nas_delay', 'security_delay', 'late_aircraft_delay'] %}
        {{ finite(col ~ '_number') }} as {{ col }}{{ ',' if not loop.last }}
        {%- endfor %}
    from ({{ typed }}) as typed
{%- endset %}

{%- set checked %}
    select
        *,
        -- Values the gold aggregate or the row's identity depend on: a bad one rejects the row.
        -- The reasons are only assembled for a row with a problem (concat_ws over NULLs still
        -- costs ~1 us per row).
        case when fl_date >= period_start and fl_date < period_end
                  and op_carrier is not null and origin is not null and dest is not null
                  and crs_dep_time_hhmm is not null and is_cancelled is not null
                  and is_diverted is not null
                  and not {{ is_unparsable('dep_delay_raw', 'dep_delay') }}
                  and not {{ is_unparsable('arr_delay_raw', 'arr_delay') }}
             then null
             else nullif(concat_ws('; ',
            case when fl_date_raw is null then 'fl_date is missing'
                 when fl_date is null then format('fl_date %s is not a real YYYY-MM-DD date', fl_date_raw)
                 when not (fl_date >= period_start and fl_date < period_end)
                     then case when line_no >= {{ month_line_base() }}
                               then format('fl_date %s is outside the load month %s', fl_date_raw, to_char(period_start, 'YYYY-MM'))
                               else format('fl_date %s is outside the load year %s', fl_date_raw, load_year) end
            end,
            case when op_carrier is null then format('op_carrier %s is not a 2-character carrier code', coalesce(op_carrier_raw, '(missing)')) end,
            case when origin is null then format('origin %s is not a 3-character airport code', coalesce(origin_raw, '(missing)')) end,
            case when dest is null then format('dest %s is not a 3-character airport code', coalesce(dest_raw, '(missing)')) end,
            case when crs_dep_time_hhmm is null then format('crs_dep_time %s is not an HHMM time', coalesce(crs_dep_time_raw, '(missing)')) end,
            case when is_cancelled is null then format('cancelled %s is not 0 or 1', coalesce(cancelled_raw, '(missing)')) end,
            case when is_diverted is null then format('diverted %s is not 0 or 1', coalesce(diverted_raw, '(missing)')) end,
            case when {{ is_unparsable('dep_delay_raw', 'dep_delay') }} then format('dep_delay %s is not a number', dep_delay_raw) end,
            case when {{ is_unparsable('arr_delay_raw', 'arr_delay') }} then format('arr_delay %s is not a number', arr_delay_raw) end
        ), '') end as reject_reason,
        -- Descriptive values: a bad one becomes NULL and is listed here (the row is kept).
        {%- set descriptive = ['op_carrier_fl_num', 'dep_time', 'taxi_out', 'wheels_off', 'wheels_on', 'taxi_in',
                               'crs_arr_time', 'arr_time', 'cancellation_code', 'crs_elapsed_time',
                               'actual_elapsed_time', 'air_time', 'distance', 'carrier_delay',
                               'weather_delay', 'nas_delay', 'security_delay', 'late_aircraft_delay'] %}
        {%- set typed_name = {'dep_time': 'dep_time_hhmm', 'wheels_off': 'wheels_off_hhmm', 'wheels_on': 'wheels_on_hhmm',
                              'crs_arr_time': 'crs_arr_time_hhmm', 'arr_time': 'arr_time_hhmm'} %}
        case when
            {%- for col in descriptive %}
            not {{ is_unparsable(col ~ '_raw', typed_name.get(col, col)) }}{{ ' and' if not loop.last }}
            {%- endfor %}
             then null
             else nullif(concat_ws(', ',
            {%- for col in descriptive %}
            case when {{ is_unparsable(col ~ '_raw', typed_name.get(col, col)) }} then '{{ col }}' end{{ ',' if not loop.last }}
            {%- endfor %}
        ), '') end as cast_warnings,
        -- minutes after midnight, for the columns that need them (crs_dep twice, below)
        {{ hhmm_to_minutes('crs_dep_time_hhmm') }} as crs_dep_minutes,
        {{ hhmm_to_minutes('wheels_off_hhmm') }} as wheels_off_minutes,
        {{ hhmm_to_minutes('wheels_on_hhmm') }} as wheels_on_minutes
    from ({{ converted }}) as converted
{%- endset %}

select
        load_year as year,
        load_id,
        line_no,
        fl_date,
        op_carrier,
        op_carrier_fl_num,
        origin,
        dest,
        -- HHMM as in the source (2400 stays 2400); the timestamps below resolve midnight
        crs_dep_time_hhmm as crs_dep_time,
        dep_time_hhmm as dep_time,
        -- Local wall-clock times. 2400 means midnight at the END of fl_date, i.e. 00:00 the next
        -- day. The actual departure is the schedule plus the delay when the delay is known,
        -- because DEP_TIME alone wraps at midnight for flights delayed into the next day.
        fl_date + make_interval(mins => crs_dep_minutes) as scheduled_dep_at,
        case
            when is_cancelled then null
            when dep_delay is not null
                then fl_date + make_interval(mins => crs_dep_minutes) + dep_delay * interval '1 minute'
            when dep_time_hhmm is not null then fl_date + make_interval(mins => {{ hhmm_to_minutes('dep_time_hhmm') }})
        end as dep_at,
        dep_delay,
        dep_delay >= 15 as is_delayed_15,
        taxi_out,
        wheels_off_minutes,
        wheels_on_minutes,
        taxi_in,
        crs_arr_time_hhmm as crs_arr_time,
        arr_time_hhmm as arr_time,
        arr_delay,
        is_cancelled,
        cancellation_code,
        is_diverted,
        crs_elapsed_time,
        actual_elapsed_time,
        air_time,
        distance,
        carrier_delay,
        weather_delay,
        nas_delay,
        security_delay,
        late_aircraft_delay,
        reject_reason,
        cast_warnings,
        -- The 27 data fields as they were in the file, comma-separated (what a reject shows).
        -- Empty and missing both print as '' because the bronze format cannot tell them apart.
        concat_ws(',',
            {%- for col in flight_fields() %}
            coalesce({{ col }}_raw, ''){{ ',' if not loop.last }}
            {%- endfor %}
        ) as raw_fields
from ({{ checked }}) as checked
-- OFFSET 0 keeps a filter on these columns (`reject_reason is null`) from being pushed down
-- into the layers, which would evaluate the checks twice: once in the pushed filter and once
-- for the output. Everything below still runs in the parallel workers.
offset 0
{%- endmacro %}

{#- A volatile, parallel-safe call: in a subquery's select list it stops PostgreSQL from
    flattening that subquery into its parent, and it costs ~20 ns a row (see typed_flights). -#}
{% macro subquery_fence() -%}
    clock_timestamp()
{%- endmacro %}


{#- The 27 data fields of a bronze line, in file order (staging.flights column names). -#}
{% macro flight_fields() -%}
    {{ return(['fl_date', 'op_carrier', 'op_carrier_fl_num', 'origin', 'dest', 'crs_dep_time',
               'dep_time', 'dep_delay', 'taxi_out', 'wheels_off', 'wheels_on', 'taxi_in',
               'crs_arr_time', 'arr_time', 'arr_delay', 'cancelled', 'cancellation_code',
               'diverted', 'crs_elapsed_time', 'actual_elapsed_time', 'air_time', 'distance',
               'carrier_delay', 'weather_delay', 'nas_delay', 'security_delay',
               'late_aircraft_delay']) }}
{%- endmacro %}

{#- The first day of the period a staging line's file covers (`load_year`, `line_no` in scope):
    the month of a BTS monthly file's line, else January 1 of the load year. -#}
{% macro load_period_start() -%}
    make_date(load_year, greatest(line_no / {{ month_line_base() }}, 1)::integer, 1)
{%- endmacro %}

{#- Run inside a model's transaction before its CREATE TABLE AS. PostgreSQL's default
    parallel_tuple_cost prices sending each of 7 M wide rows from a worker to the leader so
    high that it plans the casts serially; measured, the parallel plan is ~1.7x faster on 2
    cores (silver.flights, 7.2 M rows: 40 s against 69 s). The larger work_mem keeps the
    duplicate-candidate sort in memory. -#}
{% macro parallel_plan_settings(work_mem='256MB') -%}
    set local parallel_tuple_cost = 0.001; set local work_mem = '{{ work_mem }}'
{%- endmacro %}

{#- The short key exact duplicates must share, hashed (NULL when a key field is missing). -#}
{% macro duplicate_key_hash() -%}
    hashtextextended(fl_date || '|' || op_carrier || '|' || coalesce(op_carrier_fl_num, '')
                     || '|' || origin || '|' || crs_dep_time, year)
{%- endmacro %}
