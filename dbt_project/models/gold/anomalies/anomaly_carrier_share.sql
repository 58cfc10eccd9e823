{{ config(materialized='incremental', incremental_strategy='append',
          tags=['ml'], indexes=[{'columns': ['id']}, {'columns': ['year']}],
          pre_hook=["{{ delete_build_period() }}"], post_hook=['analyze {{ this }}']) }}
{#- The "why" of an anomalous airport-day: how much of its excess departure delay and of its
    cancellations each carrier accounts for. Excess delay is measured against the airport's
    expected mean delay for that day (the scorer's baseline), so a carrier that flew late all
    day carries a large share and one that flew as usual a share near zero (or below zero
    when it was early). Only anomalous days are kept: a few hundred rows a year, read by the
    dashboard one airport-day at a time.
    Built one year at a time (`--vars '{year: 2018}'`, as the DAG runs it; all years without
    the var): the year's rows are deleted first, in the same transaction, then rebuilt from
    that year's anomalies and flights alone, so the cost of a year does not grow with the years
    already loaded (docs/dbt.md), and a year re-scored with no anomaly left keeps no stale row. -#}
with

flights as (
    select * from {{ ref('flights') }}
    where {{ year_condition('year') }}
),

anomalies as (
    select * from {{ source('ml', 'dep_delay_anomalies') }}
    where is_anomaly and {{ year_condition('year') }}
),

by_carrier as (
    select
        anomalies.id,
        flights.origin,
        flights.fl_date,
        flights.year,
        flights.op_carrier,
        count(*) as scheduled_flights,
        count(*) filter (where flights.is_cancelled) as cancelled_flights,
        count(*) filter (where not flights.is_cancelled and flights.dep_delay is not null)
            as flights,
        avg(flights.dep_delay) filter (where not flights.is_cancelled) as mean_dep_delay,
        sum(flights.dep_delay - anomalies.expected_dep_delay)
            filter (where not flights.is_cancelled) as excess_delay_minutes,
        count(*) * anomalies.expected_cancel_rate as expected_cancelled_flights,
        anomalies.expected_dep_delay,
        anomalies.anomaly_kind
    from anomalies
    inner join flights
        on flights.origin = anomalies.origin
        and flights.fl_date = anomalies.fl_date
    group by
        anomalies.id, flights.origin, flights.fl_date, flights.year, flights.op_carrier,
        anomalies.expected_dep_delay, anomalies.expected_cancel_rate, anomalies.anomaly_kind
),

shares as (
    select
        *,
        origin || ' ' || to_char(fl_date, 'YYYY-MM-DD') as airport_day,
        excess_delay_minutes
            / nullif(sum(greatest(excess_delay_minutes, 0)) over (partition by id), 0)
            as share_of_excess_delay,
        cancelled_flights::float8
            / nullif(sum(cancelled_flights) over (partition by id), 0) as share_of_cancelled,
        cancelled_flights - expected_cancelled_flights as excess_cancelled_flights
    from by_carrier
)

select
    id,
    airport_day,
    origin,
    fl_date,
    year,
    op_carrier,
    anomaly_kind,
    scheduled_flights,
    flights,
    cancelled_flights,
    mean_dep_delay,
    expected_dep_delay,
    excess_delay_minutes,
    share_of_excess_delay,
    expected_cancelled_flights,
    excess_cancelled_flights,
    share_of_cancelled
from shares
