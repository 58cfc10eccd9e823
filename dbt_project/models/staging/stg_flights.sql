{#- Bronze lines as typed columns, for the year(s) being built (`--vars '{year: Y}'`; all years
    without it). No row is filtered out: every staging row comes out once, with
    `reject_reason` (why silver will not take it) and `cast_warnings` (which descriptive values
    did not parse and became NULL). silver.flights and silver.flights_rejected split on
    reject_reason. -#}
with

source as (
    select * from {{ source('staging', 'flights') }}
    -- The year is applied here, below the fence in `typed`: PostgreSQL cannot push a filter
    -- from outside through it, and the partition of the year is all that has to be read.
    where {{ year_condition() }}
),

renamed as (
    select
        year as load_year,
        load_id,
        line_no,
        nullif(fl_date, '') as fl_date,
        nullif(op_carrier, '') as op_carrier,
        nullif(op_carrier_fl_num, '') as op_carrier_fl_num,
        nullif(origin, '') as origin,
        nullif(dest, '') as dest,
        nullif(crs_dep_time, '') as crs_dep_time,
        nullif(dep_time, '') as dep_time,
        nullif(dep_delay, '') as dep_delay,
        nullif(taxi_out, '') as taxi_out,
        nullif(wheels_off, '') as wheels_off,
        nullif(wheels_on, '') as wheels_on,
        nullif(taxi_in, '') as taxi_in,
        nullif(crs_arr_time, '') as crs_arr_time,
        nullif(arr_time, '') as arr_time,
        nullif(arr_delay, '') as arr_delay,
        nullif(cancelled, '') as cancelled,
        nullif(cancellation_code, '') as cancellation_code,
        nullif(diverted, '') as diverted,
        nullif(crs_elapsed_time, '') as crs_elapsed_time,
        nullif(actual_elapsed_time, '') as actual_elapsed_time,
        nullif(air_time, '') as air_time,
        nullif(distance, '') as distance,
        nullif(carrier_delay, '') as carrier_delay,
        nullif(weather_delay, '') as weather_delay,
        nullif(nas_delay, '') as nas_delay,
        nullif(security_delay, '') as security_delay,
        nullif(late_aircraft_delay, '') as late_aircraft_delay
    from source
),

typed as (
    select
        load_year,
        load_id,
        line_no,
        {{ safe_date('fl_date') }} as fl_date,
        case when op_carrier ~ '^[A-Z0-9]{2}$' then op_carrier end as op_carrier,
        {{ safe_int('op_carrier_fl_num') }} as op_carrier_fl_num,
        case when origin ~ '^[A-Z0-9]{3}$' then origin end as origin,
        case when dest ~ '^[A-Z0-9]{3}$' then dest end as dest,
        {{ safe_hhmm_minutes('crs_dep_time') }} as crs_dep_minutes,
        {{ safe_hhmm_minutes('dep_time') }} as dep_minutes,
        {{ safe_float('dep_delay') }} as dep_delay,
        {{ safe_float('taxi_out') }} as taxi_out,
        {{ safe_hhmm_minutes('wheels_off') }} as wheels_off_minutes,
        {{ safe_hhmm_minutes('wheels_on') }} as wheels_on_minutes,
        {{ safe_float('taxi_in') }} as taxi_in,
        {{ safe_hhmm_minutes('crs_arr_time') }} as crs_arr_minutes,
        {{ safe_hhmm_minutes('arr_time') }} as arr_minutes,
        {{ safe_float('arr_delay') }} as arr_delay,
        {{ safe_flag('cancelled') }} as is_cancelled,
        case when cancellation_code in ('A', 'B', 'C', 'D') then cancellation_code end
            as cancellation_code,
        {{ safe_flag('diverted') }} as is_diverted,
        {{ safe_float('crs_elapsed_time') }} as crs_elapsed_time,
        {{ safe_float('actual_elapsed_time') }} as actual_elapsed_time,
        {{ safe_float('air_time') }} as air_time,
        {{ safe_float('distance') }} as distance,
        {{ safe_float('carrier_delay') }} as carrier_delay,
        {{ safe_float('weather_delay') }} as weather_delay,
        {{ safe_float('nas_delay') }} as nas_delay,
        {{ safe_float('security_delay') }} as security_delay,
        {{ safe_float('late_aircraft_delay') }} as late_aircraft_delay,
        -- the raw text, kept so rejects can show what was there and duplicates are exact
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
        late_aircraft_delay as late_aircraft_delay_raw
    from renamed
    -- OFFSET 0 keeps this subquery from being flattened into the queries above, so each cast
    -- runs once per row; flattened, every reference to a typed column repeats its cast
    -- expression (measured: ~3x slower on a 300 k-row year).
    offset 0
),

checked as (
    select
        *,
        -- Values the gold aggregate or the row's identity depend on: a bad one rejects the row.
        nullif(concat_ws('; ',
            case when fl_date_raw is null then 'fl_date is missing'
                 when fl_date is null then format('fl_date %s is not a real YYYY-MM-DD date', fl_date_raw)
                 when left(fl_date_raw, 4)::integer <> load_year
                     then format('fl_date %s is outside the load year %s', fl_date_raw, load_year)
            end,
            case when op_carrier is null then format('op_carrier %s is not a 2-character carrier code', coalesce(op_carrier_raw, '(missing)')) end,
            case when origin is null then format('origin %s is not a 3-character airport code', coalesce(origin_raw, '(missing)')) end,
            case when dest is null then format('dest %s is not a 3-character airport code', coalesce(dest_raw, '(missing)')) end,
            case when crs_dep_minutes is null then format('crs_dep_time %s is not an HHMM time', coalesce(crs_dep_time_raw, '(missing)')) end,
            case when is_cancelled is null then format('cancelled %s is not 0 or 1', coalesce(cancelled_raw, '(missing)')) end,
            case when is_diverted is null then format('diverted %s is not 0 or 1', coalesce(diverted_raw, '(missing)')) end,
            case when {{ is_unparsable('dep_delay_raw', 'dep_delay') }} then format('dep_delay %s is not a number', dep_delay_raw) end,
            case when {{ is_unparsable('arr_delay_raw', 'arr_delay') }} then format('arr_delay %s is not a number', arr_delay_raw) end
        ), '') as reject_reason,
        -- Descriptive values: a bad one becomes NULL and is listed here (the row is kept).
        nullif(concat_ws(', ',
            {%- for col in ['op_carrier_fl_num', 'dep_time', 'taxi_out', 'wheels_off', 'wheels_on', 'taxi_in',
                            'crs_arr_time', 'arr_time', 'cancellation_code', 'crs_elapsed_time',
                            'actual_elapsed_time', 'air_time', 'distance', 'carrier_delay',
                            'weather_delay', 'nas_delay', 'security_delay', 'late_aircraft_delay'] %}
            {%- set typed = {'dep_time': 'dep_minutes', 'wheels_off': 'wheels_off_minutes', 'wheels_on': 'wheels_on_minutes',
                             'crs_arr_time': 'crs_arr_minutes', 'arr_time': 'arr_minutes'}.get(col, col) %}
            case when {{ is_unparsable(col ~ '_raw', typed) }} then '{{ col }}' end{{ ',' if not loop.last }}
            {%- endfor %}
        ), '') as cast_warnings
    from typed
),

final as (
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
        case when crs_dep_minutes is not null then crs_dep_minutes / 60 * 100 + crs_dep_minutes % 60 end as crs_dep_time,
        case when dep_minutes is not null then dep_minutes / 60 * 100 + dep_minutes % 60 end as dep_time,
        -- Local wall-clock times. 2400 means midnight at the END of fl_date, i.e. 00:00 the next
        -- day. The actual departure is the schedule plus the delay when the delay is known,
        -- because DEP_TIME alone wraps at midnight for flights delayed into the next day.
        fl_date + make_interval(mins => crs_dep_minutes) as scheduled_dep_at,
        case
            when is_cancelled then null
            when dep_delay is not null
                then fl_date + make_interval(mins => crs_dep_minutes) + dep_delay * interval '1 minute'
            when dep_minutes is not null then fl_date + make_interval(mins => dep_minutes)
        end as dep_at,
        dep_delay,
        dep_delay >= 15 as is_delayed_15,
        taxi_out,
        wheels_off_minutes,
        wheels_on_minutes,
        taxi_in,
        case when crs_arr_minutes is not null then crs_arr_minutes / 60 * 100 + crs_arr_minutes % 60 end as crs_arr_time,
        case when arr_minutes is not null then arr_minutes / 60 * 100 + arr_minutes % 60 end as arr_time,
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
        -- The 27 data fields as they were in the file, joined by the unit separator (which no
        -- field holds): equal exactly for exact duplicate lines. Empty and missing both print
        -- as '' because the bronze format cannot tell them apart either.
        concat_ws(E'\x1f',
            {%- for col in ['fl_date', 'op_carrier', 'op_carrier_fl_num', 'origin', 'dest', 'crs_dep_time',
                            'dep_time', 'dep_delay', 'taxi_out', 'wheels_off', 'wheels_on', 'taxi_in',
                            'crs_arr_time', 'arr_time', 'arr_delay', 'cancelled', 'cancellation_code',
                            'diverted', 'crs_elapsed_time', 'actual_elapsed_time', 'air_time', 'distance',
                            'carrier_delay', 'weather_delay', 'nas_delay', 'security_delay',
                            'late_aircraft_delay'] %}
            coalesce({{ col }}_raw, ''){{ ',' if not loop.last }}
            {%- endfor %}
        ) as raw_fields
    from checked
)

select * from final
