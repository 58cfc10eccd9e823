{{
    config(
        materialized='year_partitioned',
        tags=['silver'],
        pre_hook=["{{ parallel_plan_settings() }}"],
        plain_casts_first=true,
        month_partitions=true,
        month_indexes=['fl_date'],
    )
}}
{#- One row per distinct accepted flight line of the year(s) being built. Exact duplicate
    lines are collapsed onto the first (lowest line_no); `duplicates_removed` counts the
    copies dropped, so staging = silver + duplicates + rejects always reconciles. -#}
{#- Declared, not read: the relationship test of origin to the airports seed then runs in this
    model's build, after the seed (the DAG's indirect selection is `buildable`). -#}
-- depends_on: {{ ref('airports') }}
with

duplicates as (
    select * from {{ ref('flights_duplicates') }}
    where {{ year_condition() }} and {{ month_lines_condition() }}
)

-- stg_flights is read from the main query, not from a CTE: its typing layers are fenced by a
-- volatile call, and PostgreSQL materializes (serially) a CTE that contains one
-- (macros/typed_flights.sql).
select
    accepted.year,
    accepted.load_id,
    accepted.line_no,
    accepted.fl_date,
    accepted.op_carrier,
    accepted.op_carrier_fl_num,
    accepted.origin,
    accepted.dest,
    accepted.crs_dep_time,
    accepted.dep_time,
    accepted.scheduled_dep_at,
    accepted.dep_at,
    accepted.dep_delay,
    accepted.is_delayed_15,
    accepted.taxi_out,
    accepted.wheels_off_minutes,
    accepted.wheels_on_minutes,
    accepted.taxi_in,
    accepted.crs_arr_time,
    accepted.arr_time,
    accepted.arr_delay,
    accepted.is_cancelled,
    accepted.cancellation_code,
    accepted.is_diverted,
    accepted.crs_elapsed_time,
    accepted.actual_elapsed_time,
    accepted.air_time,
    accepted.distance,
    accepted.carrier_delay,
    accepted.weather_delay,
    accepted.nas_delay,
    accepted.security_delay,
    accepted.late_aircraft_delay,
    accepted.cast_warnings,
    (coalesce(duplicates.copies, 1) - 1)::integer as duplicates_removed
from {{ ref('stg_flights') }} as accepted
left join duplicates
    on duplicates.year = accepted.year
    and duplicates.line_no = accepted.line_no
where {{ year_condition('accepted.year') }}
  and {{ month_lines_condition('accepted.line_no') }}
  and accepted.reject_reason is null
  and coalesce(duplicates.copy_no, 1) = 1
