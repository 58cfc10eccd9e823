{{ config(tags=['reconciliation']) }}
-- Gold adds up to silver, per year: every silver flight is counted once in
-- scheduled_flights, the delay population and its sum match, and so do cancellations.
-- Sums are compared in numeric, exactly; the only tolerance is for gold's per-day
-- total_dep_delay being stored as double precision (rounded from an exact numeric sum).
-- Silver's whole-minute delays are summed in float8, exact for integers while the sum stays
-- below 10^15 (a year's is below 10^11), and only fractional ones in numeric: converting
-- all 7 M delays to numeric was most of this test's time.
with

silver as (
    select
        year,
        count(*) as scheduled_flights,
        count(*) filter (where is_cancelled) as cancelled_flights,
        count(*) filter (where not is_cancelled and dep_delay is not null) as flights,
        coalesce(sum(dep_delay) filter (where not is_cancelled and dep_delay = trunc(dep_delay)), 0)::numeric
            + coalesce(sum(dep_delay::numeric) filter (where not is_cancelled and dep_delay <> trunc(dep_delay)), 0)
            as total_dep_delay
    from {{ ref('flights') }}
    where {{ year_condition() }} and {{ month_lines_condition() }}
    group by year
),

gold as (
    select
        year,
        sum(scheduled_flights) as scheduled_flights,
        sum(cancelled_flights) as cancelled_flights,
        sum(flights) as flights,
        sum(total_dep_delay::numeric) as total_dep_delay
    from {{ ref('agg_dep_delay_by_date') }}
    where {{ year_condition() }} and {{ month_dates_condition() }}
    group by year
)

select silver.*, gold.scheduled_flights as gold_scheduled, gold.cancelled_flights as gold_cancelled,
       gold.flights as gold_flights, gold.total_dep_delay as gold_total_dep_delay
from silver
full join gold using (year)
where gold.year is null or silver.year is null
   or silver.scheduled_flights <> gold.scheduled_flights
   or silver.cancelled_flights <> gold.cancelled_flights
   or silver.flights <> gold.flights
   or abs(silver.total_dep_delay - gold.total_dep_delay) > 1e-9 * greatest(abs(silver.total_dep_delay), 1)
