{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='year',
        incremental_predicates=year_predicates(),
        on_schema_change='append_new_columns',
        indexes=[{'columns': ['year'], 'type': 'brin'}],
        tags=['silver'],
        post_hook=['analyze {{ this }}'],
    )
}}
{#- One row per distinct accepted flight line of the year(s) being built. Exact duplicate
    lines are collapsed onto the first (lowest line_no); `duplicates_removed` counts the
    copies dropped, so staging = silver + duplicates + rejects always reconciles. -#}
with

accepted as (
    select * from {{ ref('stg_flights') }}
    where {{ year_condition() }}
      and reject_reason is null
),

ranked as (
    select
        *,
        row_number() over (partition by year, raw_fields order by line_no) as copy_no,
        count(*) over (partition by year, raw_fields) as copies
    from accepted
),

final as (
    select
        year,
        load_id,
        line_no,
        fl_date,
        op_carrier,
        op_carrier_fl_num,
        origin,
        dest,
        crs_dep_time,
        dep_time,
        scheduled_dep_at,
        dep_at,
        dep_delay,
        is_delayed_15,
        taxi_out,
        wheels_off_minutes,
        wheels_on_minutes,
        taxi_in,
        crs_arr_time,
        arr_time,
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
        cast_warnings,
        (copies - 1)::integer as duplicates_removed
    from ranked
    where copy_no = 1
)

select * from final
