{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='append_new_columns',
        tags=['gold'],
        indexes=[{'columns': ['origin', 'fl_date'], 'unique': true}, {'columns': ['fl_date']}],
        pre_hook=["{{ parallel_plan_settings(work_mem='64MB') }}",
                  "{{ delete_build_period(dates='fl_date') }}"],
        post_hook=['analyze {{ this }}'],
    )
}}
{#- Departure delay per airport and day. The delay sum is exact and independent of row order
    (float addition is not associative in general, and parallel plans change the order): delays
    that are whole minutes -- every BTS delay -- are summed in float8, which is exact for
    integers while the sum stays below 2^53 (a day's is below 10^7); any fractional delay is
    summed in numeric. Converting every delay to numeric instead cost 1.9 s of the 7.7 s
    aggregate on a 7.2 M-row year, all of it in the leader process (measured). The mean is then
    one float division, reproducible anywhere as float(sum) / n. The standard deviation comes
    from the same exact sums (and sums of squares, exact in float8 for whole minutes) in
    numeric, so it too is identical on every rebuild; stddev_samp's float accumulation differed
    in its last bits between parallel plans. -#}
with

-- A month's flights are its lines (silver rejects a line dated outside its file's month), so
-- a month build reads the month's partition alone, not every month's for its days.
flights as (
    select * from {{ ref('flights') }}
    where {{ year_condition() }} and {{ month_lines_condition() }}
),

daily as (
    select
        year,
        origin,
        fl_date,
        count(*) as scheduled_flights,
        count(*) filter (where is_cancelled) as cancelled_flights,
        count(*) filter (where is_diverted) as diverted_flights,
        count(*) filter (where not is_cancelled and dep_delay is not null) as flights,
        sum(dep_delay) filter (where not is_cancelled and dep_delay = trunc(dep_delay))
            as whole_minutes_delay,
        sum(dep_delay::numeric) filter (where not is_cancelled and dep_delay <> trunc(dep_delay))
            as fractional_delay,
        count(*) filter (where not is_cancelled and dep_delay >= 15) as delayed_15_flights,
        max(dep_delay) filter (where not is_cancelled) as max_dep_delay,
        sum(dep_delay * dep_delay) filter (where not is_cancelled and dep_delay = trunc(dep_delay))
            as whole_minutes_squares,
        sum((dep_delay::numeric) ^ 2)
            filter (where not is_cancelled and dep_delay <> trunc(dep_delay))
            as fractional_squares,
        percentile_cont(array[0.5, 0.9]) within group (order by dep_delay)
            filter (where not is_cancelled and dep_delay is not null) as dep_delay_percentiles
    from flights
    group by year, origin, fl_date
),

totals as (
    select
        *,
        coalesce(whole_minutes_delay::numeric, 0) + coalesce(fractional_delay, 0)
            as total_dep_delay,
        coalesce(whole_minutes_squares::numeric, 0) + coalesce(fractional_squares, 0)
            as total_squares
    from daily
),

final as (
    select
        origin || to_char(fl_date, 'YYYYMMDD') as id,
        origin,
        fl_date,
        year::integer as year,
        flights::integer as flights,
        (total_dep_delay::double precision / nullif(flights, 0)::double precision)
            as mean_dep_delay,
        total_dep_delay::double precision as total_dep_delay,
        scheduled_flights::integer as scheduled_flights,
        cancelled_flights::integer as cancelled_flights,
        (cancelled_flights::double precision / scheduled_flights::double precision) as cancel_rate,
        diverted_flights::integer as diverted_flights,
        dep_delay_percentiles[1] as p50_dep_delay,
        dep_delay_percentiles[2] as p90_dep_delay,
        delayed_15_flights::integer as delayed_15_flights,
        (delayed_15_flights::double precision / nullif(flights, 0)::double precision)
            as share_delayed_15,
        max_dep_delay,
        case when flights > 1 then sqrt(greatest(
            (total_squares - total_dep_delay * total_dep_delay / flights) / (flights - 1), 0)
        )::double precision end as sd_dep_delay
    from totals
)

select * from final
