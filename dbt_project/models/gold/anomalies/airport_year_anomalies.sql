{{ config(materialized='incremental', incremental_strategy='append',
          tags=['ml'], indexes=[{'columns': ['year']}],
          pre_hook=["{{ delete_build_period() }}"], post_hook=['analyze {{ this }}']) }}
{#- The dashboard map's dataset: one row per airport and year (~365 a year), so the map reads
    a few thousand rows instead of aggregating every airport-day of every year on each view
    (docs/airflow.md has the figures). Built one year at a time like anomaly_carrier_share
    (`--vars '{year: 2018}'` replaces that year's rows; no var rebuilds every year, e.g. after
    `python -m ml score --years`). -#}
with

daily as (
    select * from {{ ref('agg_dep_delay_by_date') }}
    where {{ year_condition('year') }}
),

anomalies as (
    select id, is_anomaly from {{ source('ml', 'dep_delay_anomalies') }}
    where {{ year_condition('year') }}
),

airports as (
    select * from {{ ref('airports') }}
),

per_airport_year as (
    select
        daily.origin,
        daily.year,
        sum(daily.scheduled_flights) as scheduled_flights,
        sum(daily.cancelled_flights) as cancelled_flights,
        count(*) filter (where anomalies.is_anomaly) as anomalies
    from daily
    left join anomalies on anomalies.id = daily.id
    group by daily.origin, daily.year
),

final as (
    select
        per_airport_year.origin,
        per_airport_year.year,
        airports.name as airport_name,
        airports.city,
        airports.state,
        airports.latitude,
        airports.longitude,
        per_airport_year.scheduled_flights,
        per_airport_year.cancelled_flights,
        per_airport_year.anomalies,
        case
            when per_airport_year.anomalies = 0 then '0 anomalous days'
            when per_airport_year.anomalies <= 2 then '1-2 anomalous days'
            when per_airport_year.anomalies <= 5 then '3-5 anomalous days'
            else '6+ anomalous days'
        end as anomaly_band
    from per_airport_year
    inner join airports on airports.iata = per_airport_year.origin
)

select * from final
